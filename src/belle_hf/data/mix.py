"""One clean, deduplicated mix of several corpora, as parquet shards ``belle train`` and ``belle data publish`` take.

:func:`mix` normalizes every source (any BELLE schema), applies the cleaning rules, then removes
exact and near duplicates *across* all sources, keeping the first occurrence in the order the
sources are given, and writes ``OUT/data/train-NNNNN-of-NNNNN.parquet`` with ``messages``,
``id`` and ``source`` (each row keeps the corpus it came from). It is the clean and dedup
pipelines chained in one work folder (:mod:`belle_hf.data.pipeline`), so it runs on the same
executors and resumes the same way.

>>> from belle_hf.data.mix import mix
>>> report = mix(["train_2M_CN.json", "multiturn_chat_0.8M.json"], "belle-mix")
>>> report.rows_per_source
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from belle_hf.data.clean import CleanReport, clean_report, clean_stages, select_rules
from belle_hf.data.dedup import DedupConfig, DedupReport, dedup_report, dedup_stages
from belle_hf.data.files import dump_json
from belle_hf.io import atomic_dir, atomic_write_text

SPLIT = "train"


@dataclass
class MixReport:
    """What :func:`mix` did: the cleaning and deduplication reports, and rows kept per source."""

    output: str
    clean: CleanReport
    dedup: DedupReport
    shards: int = 0
    rows_per_source: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"output": self.output, "shards": self.shards, "rows_per_source": self.rows_per_source,
                "clean": self.clean.to_dict(), "dedup": self.dedup.to_dict()}

    def summary(self) -> str:
        per_source = ", ".join(f"{name}: {rows}" for name, rows in self.rows_per_source.items())
        return "\n".join([self.clean.summary(), self.dedup.summary(),
                          f"{self.output}: {self.dedup.rows_kept} rows in {self.shards} parquet shards ({per_source})"])


def _finish_mix(work_path: str, source: str, output: str, rules: list[str], config: dict,
                report_path: str | None) -> None:
    import pyarrow.parquet as pq

    from belle_hf.data.pipeline.run import RESULT
    from belle_hf.data.pipeline.steps import write_json

    work = Path(work_path)
    cleaned = clean_report(work_path, source, output, rules)
    deduped = dedup_report(work_path, source, output, config)
    shards = [path for path in sorted((work / "out").glob("*.parquet")) if pq.ParquetFile(path).metadata.num_rows]
    shards = shards or sorted((work / "out").glob("*.parquet"))[:1]  # all empty: one empty shard
    rows_per_source: dict[str, int] = {}
    with atomic_dir(output) as staging:
        (staging / "data").mkdir()
        for index, shard in enumerate(shards):
            for name in pq.read_table(shard, columns=["source"]).column("source").to_pylist():
                rows_per_source[str(name)] = rows_per_source.get(str(name), 0) + 1
            os.replace(shard, staging / "data" / f"{SPLIT}-{index:05d}-of-{len(shards):05d}.parquet")
    report = MixReport(output=output, clean=cleaned, dedup=deduped, shards=len(shards),
                       rows_per_source=rows_per_source)
    if report_path is not None:
        atomic_write_text(Path(report_path), dump_json(report.to_dict()))
    write_json(work / RESULT, {"clean": asdict(cleaned), "dedup": asdict(deduped), "shards": len(shards),
                               "rows_per_source": rows_per_source})


def mix(
    sources: Iterable[str | os.PathLike],
    output: str | os.PathLike,
    rules: Iterable[str] | None = None,
    config: DedupConfig | None = None,
    schema: str = "auto",
    report_path: str | os.PathLike | None = None,
    executor=None,
) -> MixReport | None:
    """Normalize, clean (``rules``: default all) and deduplicate (``config``) ``sources`` together
    into the parquet dataset folder ``output`` (replaced atomically).

    ``executor`` (an :class:`~belle_hf.data.pipeline.ExecutorConfig`) sets where and how wide the
    stages run. Returns ``None`` when the stages were submitted to Slurm.
    """
    from belle_hf.data.pipeline.inputs import expand_sources
    from belle_hf.data.pipeline.run import Stage, run_pipeline
    from belle_hf.data.pipeline.steps import ReadRecords, ReadShards, RunOnce

    config = config or DedupConfig()
    selected = list(select_rules(rules))
    given = [str(source) for source in sources]
    expanded = expand_sources(given)
    label = ", ".join(given)

    def build(work, plan, tasks):
        finish = RunOnce(_finish_mix, work_path=str(work.path), source=label, output=str(output), rules=selected,
                         config=asdict(config), report_path=None if report_path is None else str(report_path))
        return (clean_stages(ReadRecords(plan, schema=schema, keep_bad=True), selected, work, out="cleaned",
                             with_location=True)
                + dedup_stages(ReadShards(work.sub("cleaned")), tasks, config, work, out_suffix=".parquet")
                + [Stage("finish", [finish])])

    settings = {"rules": selected, "config": asdict(config), "schema": schema}
    result = run_pipeline("mix", expanded, output, settings, build, executor, report_path=report_path)
    if result is None:
        return None
    return MixReport(output=str(output), clean=CleanReport(**result["clean"]), dedup=DedupReport(**result["dedup"]),
                     shards=result["shards"], rows_per_source=result["rows_per_source"])
