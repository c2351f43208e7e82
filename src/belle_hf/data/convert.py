"""Convert record files of any BELLE schema to TRL's conversational ``messages`` format."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from belle_hf.data.files import RecordWriter, iter_records
from belle_hf.data.schemas import get_normalizer
from belle_hf.errors import DataFormatError
from belle_hf.io import check_output_is_not_input

OnError = Literal["raise", "skip"]


@dataclass
class ConvertReport:
    """What a conversion did: rows written, rows skipped and where."""

    source: str
    output: str
    schema: str
    written: int = 0
    skipped: int = 0
    skipped_at: list[str] = field(default_factory=list)
    """``location: reason`` of each skipped record (the first :attr:`MAX_LOCATIONS`)."""

    MAX_LOCATIONS = 100

    def summary(self) -> str:
        text = f"{self.source} -> {self.output}: {self.written} rows written ({self.schema})"
        if self.skipped:
            text += f", {self.skipped} skipped"
        return text


def convert_file(
    source: str | os.PathLike,
    output: str | os.PathLike,
    schema: str = "auto",
    on_error: OnError = "raise",
    source_name: str | None = None,
) -> ConvertReport:
    """Normalize every record of ``source`` and write them to ``output`` (``.jsonl``/``.parquet``).

    With ``on_error="raise"`` the first bad record raises :class:`DataFormatError` naming the
    file, line and field, and ``output`` is not created (nor an earlier one changed). With
    ``"skip"`` bad records are left out and counted in the report.

    ``source_name`` fills ``source`` in records that carry none (default: the file's stem).
    An ``output`` that is ``source`` (however it is spelled or linked) raises :class:`~belle_hf.errors.BelleError`.
    """
    check_output_is_not_input(output, [source])
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    normalizer = get_normalizer(schema)
    source = Path(source)
    default_source = source_name or source.stem
    report = ConvertReport(source=str(source), output=str(output), schema=schema)
    skip_invalid = None if on_error == "raise" else (lambda error: _record_skip(report, str(error)))
    with RecordWriter(output) as writer:
        for location, record in iter_records(source, on_invalid_json=skip_invalid):
            try:
                normalized = normalizer(record)
            except DataFormatError as error:
                located = error.at(location)
                if on_error == "raise":
                    raise located from None
                _record_skip(report, str(located))
                continue
            if normalized["source"] is None:
                normalized["source"] = default_source
            writer.write(normalized)
        report.written = writer.count
    return report


def _record_skip(report: ConvertReport, reason: str) -> None:
    report.skipped += 1
    if len(report.skipped_at) < report.MAX_LOCATIONS:
        report.skipped_at.append(reason)
