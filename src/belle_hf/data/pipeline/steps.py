"""The datatrove pipeline steps of the data commands: read, clean, collect statistics, write, finish.

Each step is a :class:`datatrove.pipeline.base.PipelineStep`; a task runs its steps on its share
of the input (see :mod:`belle_hf.data.pipeline.inputs`). Documents carry the normalized record
in ``metadata["record"]`` and its location (``file:line``) as their ``id``. Per-task results
(reports, shards) are written atomically under the work folder, so a task that was killed
leaves nothing that looks finished, and datatrove's completion marker is written only after.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path
from typing import IO, Callable, Iterator

import numpy as np
import orjson
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from belle_hf.data.files import RecordWriter
from belle_hf.data.pipeline.inputs import Segment
from belle_hf.data.stream import iter_normalized
from belle_hf.errors import DataFormatError
from belle_hf.io import atomic_path, atomic_write


@contextlib.contextmanager
def work_file(path: str | Path) -> Iterator[IO[bytes]]:
    """Open a work-folder file for writing; it appears under ``path`` only when the block succeeds.

    No fsync (unlike the final outputs): a task's files are trusted only once datatrove has
    marked the task complete, and a task that did not finish is simply run again.
    """
    with atomic_path(path) as tmp, open(tmp, "wb", buffering=1 << 20) as handle:
        yield handle


def write_json(path: str | Path, data) -> None:
    """Write ``data`` as JSON to the work-folder file ``path`` (see :func:`work_file`)."""
    with work_file(path) as handle:
        handle.write(orjson.dumps(data))


def read_json(path: str | Path):
    return orjson.loads(Path(path).read_bytes())


class ReadRecords(PipelineStep):
    """Yield the normalized records of this task's segments as documents.

    Hand-written rather than a datatrove reader: those split work by whole files and know
    neither BELLE's schemas nor ``file:line`` locations. With ``keep_bad=True`` a record that is
    not valid JSON or does not fit its schema comes through as a document with
    ``metadata["error"]`` (cleaning counts it); otherwise it raises, naming its file and line.
    """

    name = "BELLE records"
    type = "📖 - READER"

    def __init__(self, plan: list[list[Segment]], schema: str = "auto", keep_bad: bool = False,
                 limit: int | None = None):
        super().__init__()
        self.plan = plan
        self.schema = schema
        self.keep_bad = keep_bad
        self.limit = limit

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        bad: list[DataFormatError] = []
        on_bad = bad.append if self.keep_bad else None
        count = 0
        for segment in self.plan[rank]:
            for location, record in iter_normalized(segment.source, schema=self.schema, on_bad_record=on_bad,
                                                    byte_range=segment.byte_range):
                while bad:
                    yield Document(text="", id=str(bad[0]), metadata={"error": bad.pop(0)})
                if self.limit is not None and count >= self.limit:
                    return
                count += 1
                self.stat_update("records")
                yield Document(text="", id=location, metadata={"record": record})
            while bad:
                yield Document(text="", id=str(bad[0]), metadata={"error": bad.pop(0)})


class ApplyCleaningRules(PipelineStep):
    """Drop the documents BELLE's cleaning rules reject; write this task's :class:`CleanReport` part."""

    name = "BELLE cleaning rules"
    type = "🔻 - FILTER"

    def __init__(self, rules: list[str], report_folder: str):
        super().__init__()
        self.rules = rules
        self.report_folder = report_folder

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from belle_hf.data.clean import MALFORMED, CleanReport, first_failed_rule, select_rules

        selected = select_rules(self.rules)
        report = CleanReport(source="", output="", rules=list(selected))
        for document in data:
            report.rows_in += 1
            error = document.metadata.get("error")
            if error is not None:
                # The normalizers reject an empty instruction or answer; that is what empty_message drops.
                empty = error.reason == "empty" and "empty_message" in selected
                report.drop("empty_message" if empty else MALFORMED, str(error))
                continue
            failed = first_failed_rule(document.metadata["record"]["messages"], selected)
            if failed is not None:
                report.drop(failed, document.id)
                self.stat_update("dropped")
                continue
            report.rows_kept += 1
            yield document
        write_json(Path(self.report_folder) / f"{rank:05d}.json", report.to_dict())


class WriteShards(PipelineStep):
    """Write this task's records to ``folder/{rank:05d}{suffix}`` (JSON Lines or parquet), atomically.

    ``with_location`` adds each record's location under :data:`LOCATION` for :class:`ReadShards`
    (an intermediate shard, so later stages still report the original ``file:line``).
    """

    name = "BELLE shard writer"
    type = "💽 - WRITER"

    def __init__(self, folder: str, suffix: str = ".jsonl", with_location: bool = False):
        super().__init__()
        self.folder = folder
        self.suffix = suffix
        self.with_location = with_location

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with RecordWriter(Path(self.folder) / f"{rank:05d}{self.suffix}") as writer:
            for document in data:
                record = document.metadata["record"]
                writer.write({**record, LOCATION: document.id} if self.with_location else record)
        return
        yield  # a generator, like every step


LOCATION = "__location__"


class ReadShards(PipelineStep):
    """Read back the intermediate shard ``folder/{rank:05d}.jsonl`` that :class:`WriteShards` wrote
    ``with_location``: records already normalized, locations of the original input."""

    name = "BELLE intermediate shards"
    type = "📖 - READER"

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with open(Path(self.folder) / f"{rank:05d}.jsonl", "rb", buffering=1 << 20) as handle:
            for line in handle:
                record = orjson.loads(line)
                yield Document(text="", id=record.pop(LOCATION), metadata={"record": record})


class CollectStats(PipelineStep):
    """Count rows, turns and characters, and token lengths, of this task's records.

    Writes ``{rank}.json`` (counts) and ``{rank}.npy`` (token lengths, for exact percentiles over
    all tasks) under ``folder``.
    """

    name = "BELLE statistics"
    type = "📊 - STATS"

    def __init__(self, folder: str, tokenizer: str | None = None, batch_size: int = 1000):
        super().__init__()
        self.folder = folder
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from belle_hf.data.stats import texts_for_tokenizer
        from belle_hf.models import load_tokenizer

        tok = None if self.tokenizer is None else load_tokenizer(self.tokenizer)
        turns, by_role = Counter(), Counter()
        lengths: list[np.ndarray] = []
        batch: list[list[dict]] = []

        def tokenize() -> None:
            encoded = tok(texts_for_tokenizer(tok, batch), add_special_tokens=False)["input_ids"]
            lengths.append(np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded)))
            batch.clear()

        for document in data:
            messages = document.metadata["record"]["messages"]
            turns[len(messages)] += 1
            for message in messages:
                by_role[message["role"]] += len(message["content"])
            if tok is not None:
                batch.append(messages)
                if len(batch) >= self.batch_size:
                    tokenize()
        if tok is not None and batch:
            tokenize()
        folder = Path(self.folder)
        if tok is not None:
            with work_file(folder / f"{rank:05d}.npy") as handle:
                np.save(handle, np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64))
        write_json(folder / f"{rank:05d}.json", {"turns": {str(k): v for k, v in turns.items()},
                                                 "by_role": dict(by_role)})
        return
        yield


class RunOnce(PipelineStep):
    """Call ``function(**kwargs)`` in a one-task stage: the step that merges the tasks' results.

    A stage rather than code after ``executor.run()`` so that on Slurm it runs as the last job,
    after the others, without the submitting process waiting.
    """

    name = "BELLE finish"
    type = "🏁 - FINISH"

    def __init__(self, function: Callable[..., None], **kwargs):
        super().__init__()
        self.function = function
        self.kwargs = kwargs

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self.function(**self.kwargs)
        return
        yield


def merge_shards(folder: str | Path, output: str | Path) -> int:
    """Concatenate the JSON Lines shards of ``folder`` (rank order) into ``output`` (``.jsonl`` or
    ``.parquet``), atomically; returns the rows written."""
    import shutil

    from belle_hf.data.files import iter_records

    shards = sorted(Path(folder).glob("*.jsonl"))
    output = Path(output)
    if output.suffix != ".parquet":
        RecordWriter(output)  # checks the suffix
        rows = 0
        with atomic_write(output) as handle:
            for shard in shards:
                with open(shard, "rb") as source:
                    shutil.copyfileobj(source, handle, 1 << 20)
                rows += sum(1 for _ in open(shard, "rb"))
        return rows
    with RecordWriter(output) as writer:
        for shard in shards:
            writer.write_all(record for _, record in iter_records(shard))
    return writer.count
