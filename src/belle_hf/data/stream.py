"""Stream normalized records from any source, one at a time, with their locations.

The cleaning, deduplication, statistics and publishing steps all read the same way: a local
record file of any BELLE schema is read with :func:`~belle_hf.data.files.iter_records` (exact
``file:line`` locations, flat memory), anything else (a corpus name, a Hub id, an ``hf://``
path, a dataset folder) through :func:`belle_hf.data.load` in streaming mode.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

from belle_hf.data.files import iter_records
from belle_hf.data.schemas import get_normalizer
from belle_hf.errors import DataFormatError

OnBadRecord = Callable[[DataFormatError], None]


def iter_normalized(
    source: str | os.PathLike,
    schema: str = "auto",
    on_bad_record: OnBadRecord | None = None,
    byte_range: tuple[int, int, int] | None = None,
    source_name: str | None = None,
) -> Iterator[tuple[str, dict]]:
    """Yield ``(location, record)`` with every record normalized to ``{"messages", "id", "source"}``.

    A record that is not valid JSON or does not fit its schema raises
    :class:`~belle_hf.errors.DataFormatError` naming its file and line, or, when
    ``on_bad_record`` is given, is passed to it (already located) and left out.
    Records without a ``source`` get ``source_name``, by default the file's stem (or the dataset's
    name). ``byte_range`` reads part of a JSON Lines file (see :func:`~belle_hf.data.files.iter_records`).
    """
    path = Path(source).expanduser()
    if not path.is_file():
        yield from _iter_loaded(str(source), schema)
        return
    normalizer = get_normalizer(schema)
    default_source = source_name or path.stem
    for location, record in iter_records(path, on_invalid_json=on_bad_record, byte_range=byte_range):
        try:
            normalized = normalizer(record)
        except DataFormatError as error:
            if on_bad_record is None:
                raise error.at(location) from None
            on_bad_record(error.at(location))
            continue
        if normalized["source"] is None:
            normalized["source"] = default_source
        yield location, normalized


def _iter_loaded(name_or_path: str, schema: str) -> Iterator[tuple[str, dict]]:
    from belle_hf.data.loading import load

    dataset = load(name_or_path, streaming=True, schema=None if schema == "auto" else schema)
    for index, record in enumerate(dataset):
        yield f"{name_or_path}[{index}]", record
