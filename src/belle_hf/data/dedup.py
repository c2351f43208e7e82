"""Remove duplicate conversations: exact duplicates and near duplicates (MinHash-LSH), keeping the first.

Generated corpora repeat themselves: the same instruction asked twice, or the same answer with
a few characters changed. :func:`dedup_file` keeps the first occurrence of each:

* **exact**: two rows with the same roles and contents (whitespace collapsed; a 16-byte BLAKE2
  digest, :func:`exact_key`);
* **near**: rows whose character ``ngram`` shingles have an estimated Jaccard similarity of at
  least ``threshold`` (MinHash signatures, LSH bands to find candidates). Every candidate is
  confirmed against the stored signatures before a row is dropped, so LSH's false positives
  never remove a row, and a row is dropped only for matching an earlier row that is kept.

It runs as datatrove pipeline stages (see :mod:`belle_hf.data.pipeline.minhash`) on a local
process pool, Slurm or Ray: signatures, buckets and candidate pairs live on disk in a work
folder, so memory stays flat whatever the row count, and a rerun after a kill continues from
the finished tasks.

>>> from belle_hf.data.dedup import dedup_file
>>> report = dedup_file("train.jsonl", "train.dedup.jsonl", threshold=0.8)
>>> report.exact_duplicates, report.near_duplicates
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import orjson

from belle_hf.data.files import dump_json
from belle_hf.errors import BelleError
from belle_hf.io import atomic_write_text


@dataclass
class DedupConfig:
    """How :func:`dedup_file` decides that two conversations are duplicates."""

    threshold: float = 0.8
    """Estimated Jaccard similarity of character n-gram sets above which rows are near duplicates."""
    ngram: int = 5
    """Length of the character shingles (Chinese has no spaces, so characters, not words)."""
    num_perm: int = 128
    """MinHash hash functions: more is more precise, slower and bigger. They are cut into LSH
    bands of rows (datasketch's optimum for ``threshold``), which may leave a few unused."""
    near: bool = True
    """Also remove near duplicates (``False``: exact duplicates only)."""

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0:
            raise BelleError(f"threshold must be in (0, 1], not {self.threshold}")
        if self.ngram < 1:
            raise BelleError(f"ngram must be at least 1, not {self.ngram}")
        if self.num_perm < 16:
            raise BelleError(f"num_perm must be at least 16, not {self.num_perm}")

    def lsh_bands(self) -> tuple[int, int]:
        """``(bands, rows per band)``: datasketch's optimum for ``threshold``; one band of the four
        32-bit words of the exact digest when ``near`` is off."""
        if not self.near:
            return 1, 4
        from datasketch.lsh import _optimal_param

        # Every candidate is confirmed against its signature, so a false positive costs one
        # comparison and a false negative a missed duplicate: weight recall (at 0.8 and 128
        # hashes: 14 bands of 9, datatrove's own default layout).
        return _optimal_param(self.threshold, self.num_perm, 0.1, 0.9)


@dataclass
class DedupReport:
    """What a deduplication pass did, with a few example pairs."""

    source: str
    output: str
    config: dict
    rows_in: int = 0
    rows_kept: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    examples: list[dict] = field(default_factory=list)
    """The first :attr:`MAX_EXAMPLES` duplicates: ``{"kind", "duplicate", "kept", "similarity"}``."""

    MAX_EXAMPLES = 10

    def add_example(self, kind: str, duplicate: str, kept: str, similarity: float) -> None:
        if len(self.examples) < self.MAX_EXAMPLES:
            self.examples.append({"kind": kind, "duplicate": duplicate, "kept": kept,
                                  "similarity": round(similarity, 4)})

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [f"{self.source} -> {self.output}: {self.rows_in} rows in, {self.rows_kept} kept, "
                 f"{self.exact_duplicates} exact and {self.near_duplicates} near duplicates removed"]
        for example in self.examples[:5]:
            lines.append(f"  {example['kind']:5} {example['duplicate']} ~ {example['kept']} "
                         f"({example['similarity']:.2f})")
        return "\n".join(lines)


def conversation_text(messages: Iterable[dict]) -> str:
    """The text MinHash sees: every message's content, whitespace collapsed, lower-cased."""
    return "\n".join(" ".join(m["content"].split()).lower() for m in messages)


def exact_key(messages: Iterable[dict]) -> bytes:
    """A 16-byte digest of the roles and contents (whitespace collapsed)."""
    canonical = orjson.dumps([[m["role"], " ".join(m["content"].split())] for m in messages])
    return hashlib.blake2b(canonical, digest_size=16).digest()


def shingles(text: str, ngram: int) -> set[str]:
    """The set of character ``ngram``-grams of ``text`` (the whole text when shorter): what the
    MinHash signatures estimate the Jaccard similarity of (they hash these n-grams)."""
    if len(text) <= ngram:
        return {text}
    return {text[i : i + ngram] for i in range(len(text) - ngram + 1)}


def dedup_stages(reader, tasks: int, config: DedupConfig, work, out_suffix: str = ".jsonl") -> list:
    """The datatrove stages that deduplicate what ``reader`` yields, leaving shards in ``work/out``."""
    from copy import deepcopy

    from datatrove.pipeline.dedup.minhash import MinhashDedupBuckets, MinhashDedupFilter

    from belle_hf.data.pipeline.minhash import (CharNgramSignatures, ConfirmCandidates, KeepFirstOccurrence,
                                                minhash_config)
    from belle_hf.data.pipeline.run import Stage
    from belle_hf.data.pipeline.steps import WriteShards

    bands, rows = config.lsh_bands()
    minhash = minhash_config(bands, rows)
    signatures, rows_folder = work.sub("signatures"), work.sub("rows")
    return [
        Stage("signatures", [reader, CharNgramSignatures(signatures, rows_folder, minhash, config.ngram,
                                                         exact_only=not config.near)], tasks),
        # The later stages are cheap per task: no wider than the first, so a one-task input runs in-process.
        Stage("buckets", [MinhashDedupBuckets(signatures, work.sub("buckets"), config=minhash)], bands,
              max_workers=tasks),
        Stage("confirm", [ConfirmCandidates(work.sub("buckets"), rows_folder, work.sub("edges"), config.threshold,
                                            bands * rows, exact_only=not config.near)], bands, max_workers=tasks),
        Stage("keep-first", [KeepFirstOccurrence(rows_folder, work.sub("edges"), work.sub("remove"),
                                                 str(work.path / "dedup_result.json"))], 1),
        Stage("filter", [deepcopy(reader), MinhashDedupFilter(work.sub("remove")),
                         WriteShards(work.sub("out"), out_suffix)], tasks),
    ]


def dedup_report(work_path: str, source: str, output: str, config: dict) -> DedupReport:
    """The :class:`DedupReport` of a finished dedup stage, example rows located (``file:line``)."""
    from belle_hf.data.pipeline.steps import read_json

    work = Path(work_path)
    result = read_json(work / "dedup_result.json")
    report = DedupReport(source=source, output=output, config=config, rows_in=result["rows"],
                         rows_kept=result["rows"] - result["exact"] - result["near"],
                         exact_duplicates=result["exact"], near_duplicates=result["near"])
    for example in result["examples"]:
        report.add_example(example["kind"], _location(work / "rows", *example["duplicate"]),
                           _location(work / "rows", *example["kept"]), example["similarity"])
    return report


def _location(rows_folder: Path, task: int, index: int) -> str:
    from itertools import islice

    with open(rows_folder / f"{task:05d}.loc", "rb") as handle:
        line = next(islice(handle, index, None), b"")
    return line.decode().rstrip("\n")


def _finish_dedup(work_path: str, source: str, output: str, config: dict, report_path: str | None) -> None:
    from belle_hf.data.pipeline.run import RESULT
    from belle_hf.data.pipeline.steps import merge_shards, write_json

    report = dedup_report(work_path, source, output, config)
    merge_shards(Path(work_path) / "out", output)
    if report_path is not None:
        atomic_write_text(Path(report_path), dump_json(report.to_dict()))
    write_json(Path(work_path) / RESULT, report.to_dict())


def dedup_file(
    source: str | os.PathLike | list[str | os.PathLike],
    output: str | os.PathLike,
    config: DedupConfig | None = None,
    schema: str = "auto",
    report_path: str | os.PathLike | None = None,
    executor=None,
    **config_kwargs,
) -> DedupReport | None:
    """Write the rows of ``source`` (a file, folder, corpus, or a list of them; any BELLE schema,
    normalized) to ``output`` without duplicates.

    The first occurrence of each duplicate group is kept, in input order, across files.
    ``config`` (or its fields as keyword arguments: ``threshold``, ``ngram``, ``num_perm``,
    ``near``) sets the near-duplicate test; ``executor`` (an
    :class:`~belle_hf.data.pipeline.ExecutorConfig`) where and how wide the stages run.
    ``output`` and ``report_path`` are written atomically. A malformed record raises
    :class:`~belle_hf.errors.DataFormatError` naming its file and line. Returns ``None`` when
    the stages were submitted to Slurm (the output appears when the last job ends).
    """
    from belle_hf.data.pipeline.inputs import expand_sources
    from belle_hf.data.pipeline.run import Stage, run_pipeline
    from belle_hf.data.pipeline.steps import ReadRecords, RunOnce

    config = config or DedupConfig(**config_kwargs)
    sources = expand_sources(source if isinstance(source, (list, tuple)) else [source])
    label = ", ".join(str(s) for s in (source if isinstance(source, (list, tuple)) else [source]))
    settings = {"config": asdict(config), "schema": schema}

    def build(work, plan, tasks):
        finish = RunOnce(_finish_dedup, work_path=str(work.path), source=label, output=str(output),
                         config=asdict(config), report_path=None if report_path is None else str(report_path))
        return dedup_stages(ReadRecords(plan, schema=schema), tasks, config, work) + [Stage("finish", [finish])]

    result = run_pipeline("dedup", sources, output, settings, build, executor, report_path=report_path)
    if result is None:
        return None
    result["examples"] = result.get("examples", [])
    return DedupReport(**result)
