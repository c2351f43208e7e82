"""Dataset statistics: rows, turns, characters and, with a tokenizer, token-length percentiles.

>>> from belle_hf.data.stats import dataset_stats
>>> stats = dataset_stats("train.jsonl", tokenizer="path/to/model")
>>> stats.rows, stats.tokens["p90"]
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from belle_hf.errors import BelleError

PERCENTILES = (50, 90, 99)


@dataclass
class DatasetStats:
    """Sizes of a conversational dataset."""

    source: str
    rows: int = 0
    turns: int = 0
    """Messages of all rows (system, user and assistant)."""
    turns_per_row: dict[int, int] = field(default_factory=dict)
    """``{number of messages: rows with that many}``, ascending."""
    characters: int = 0
    """Characters of all message contents."""
    characters_by_role: dict[str, int] = field(default_factory=dict)
    tokenizer: str | None = None
    tokens: dict[str, float] | None = None
    """Per-row token length (the chat template applied, when the tokenizer has one): ``p50``,
    ``p90``, ``p99``, ``max``, ``mean`` and ``total``; ``None`` without a tokenizer."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["turns_per_row"] = {str(k): v for k, v in self.turns_per_row.items()}
        return data

    def table_rows(self) -> list[tuple[str, str]]:
        """``(name, value)`` pairs for a two-column table."""
        rows = [("rows", f"{self.rows:,}"), ("turns", f"{self.turns:,}"),
                ("turns per row", ", ".join(f"{k}: {v:,}" for k, v in self.turns_per_row.items())),
                ("characters", f"{self.characters:,}")]
        rows += [(f"characters ({role})", f"{count:,}") for role, count in self.characters_by_role.items()]
        if self.tokens is not None:
            rows.append(("tokenizer", str(self.tokenizer)))
            rows += [(f"tokens {key}", f"{value:,.0f}" if key != "mean" else f"{value:,.1f}")
                     for key, value in self.tokens.items()]
        return rows


def texts_for_tokenizer(tokenizer, batch: list[list[dict]]) -> list[str]:
    """The texts a trainer sees: the chat template applied when the tokenizer has one."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(batch, tokenize=False)
    return ["\n".join(m["content"] for m in messages) for messages in batch]


def dataset_stats(
    source: str | os.PathLike | list[str | os.PathLike],
    tokenizer: str | os.PathLike | None = None,
    schema: str = "auto",
    batch_size: int = 1000,
    limit: int | None = None,
    executor=None,
) -> DatasetStats | None:
    """Count rows, turns and characters of ``source`` (any BELLE schema, streamed) and, when a
    ``tokenizer`` (a path or a Hub id) is given, token-length percentiles.

    Runs as a datatrove pipeline (``executor``: an :class:`~belle_hf.data.pipeline.ExecutorConfig`);
    each task counts its share and the last stage adds them up, percentiles over every row's
    length. Token lengths are those of each conversation rendered with the tokenizer's chat
    template, as a trainer sees it; tokenization runs in batches of ``batch_size`` with the fast
    tokenizer. ``limit`` stops after that many rows (in one task). Returns ``None`` when the
    stages were submitted to Slurm.
    """
    from belle_hf.data.pipeline.inputs import expand_sources
    from belle_hf.data.pipeline.run import Stage, run_pipeline
    from belle_hf.data.pipeline.steps import CollectStats, ReadRecords, RunOnce

    if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike)):
        raise BelleError("tokenizer must be a model folder or a Hub id, so that every task can load it")
    sources = expand_sources(source if isinstance(source, (list, tuple)) else [source])
    label = ", ".join(str(s) for s in (source if isinstance(source, (list, tuple)) else [source]))
    tokenizer = None if tokenizer is None else str(tokenizer)

    def build(work, plan, tasks):
        collect = CollectStats(work.sub("stats"), tokenizer=tokenizer, batch_size=batch_size)
        finish = RunOnce(_finish_stats, work_path=str(work.path), source=label, tokenizer=tokenizer)
        return [Stage("stats", [ReadRecords(plan, schema=schema, limit=limit), collect], tasks),
                Stage("finish", [finish])]

    settings = {"tokenizer": tokenizer, "schema": schema, "limit": limit}
    result = run_pipeline("stats", sources, None, settings, build, executor, tasks=1 if limit is not None else None)
    if result is None:
        return None
    result["turns_per_row"] = {int(k): v for k, v in result["turns_per_row"].items()}
    return DatasetStats(**result)


def _finish_stats(work_path: str, source: str, tokenizer: str | None) -> None:
    from belle_hf.data.pipeline.run import RESULT
    from belle_hf.data.pipeline.steps import read_json, write_json

    folder = Path(work_path) / "stats"
    turns, by_role = Counter(), Counter()
    for path in sorted(folder.glob("*.json")):
        part = read_json(path)
        turns.update({int(k): v for k, v in part["turns"].items()})
        by_role.update(part["by_role"])
    stats = DatasetStats(source=source, tokenizer=tokenizer)
    stats.rows = sum(turns.values())
    stats.turns = sum(k * v for k, v in turns.items())
    stats.turns_per_row = dict(sorted(turns.items()))
    stats.characters = sum(by_role.values())
    stats.characters_by_role = {role: by_role[role] for role in ("system", "user", "assistant") if role in by_role}
    if tokenizer is not None:
        parts = [np.load(path) for path in sorted(folder.glob("*.npy"))]
        stats.tokens = token_summary(np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))
    write_json(Path(work_path) / RESULT, stats.to_dict())


def token_summary(lengths: np.ndarray) -> dict[str, float]:
    """``p50``/``p90``/``p99`` (nearest rank, so real lengths), ``max``, ``mean`` and ``total``."""
    if len(lengths) == 0:
        return {f"p{p}": 0 for p in PERCENTILES} | {"max": 0, "mean": 0.0, "total": 0}
    summary: dict[str, float] = {f"p{p}": int(np.percentile(lengths, p, method="inverted_cdf")) for p in PERCENTILES}
    summary["max"] = int(lengths.max())
    summary["mean"] = float(lengths.mean())
    summary["total"] = int(lengths.sum())
    return summary
