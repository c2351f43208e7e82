"""Dataset statistics: rows, turns, characters and, with a tokenizer, token-length percentiles.

>>> from belle_hf.data.stats import dataset_stats
>>> stats = dataset_stats("train.jsonl", tokenizer="path/to/model")
>>> stats.rows, stats.tokens["p90"]
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import Any

import numpy as np

from belle_hf.data.stream import iter_normalized

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


def _load_tokenizer(tokenizer):
    if tokenizer is None or not isinstance(tokenizer, (str, os.PathLike)):
        return tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer))


def _texts_for_tokenizer(tokenizer, batch: list[list[dict]]) -> list[str]:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(batch, tokenize=False)
    return ["\n".join(m["content"] for m in messages) for messages in batch]


def dataset_stats(
    source: str | os.PathLike,
    tokenizer=None,
    schema: str = "auto",
    batch_size: int = 1000,
    limit: int | None = None,
) -> DatasetStats:
    """Count rows, turns and characters of ``source`` (any BELLE schema, streamed) and, when a
    ``tokenizer`` (a path, a Hub id or a tokenizer object) is given, token-length percentiles.

    Token lengths are those of each conversation rendered with the tokenizer's chat template,
    as a trainer sees it; tokenization runs in batches of ``batch_size`` with the fast
    tokenizer. ``limit`` stops after that many rows.
    """
    tok = _load_tokenizer(tokenizer)
    stats = DatasetStats(source=str(source), tokenizer=None if tokenizer is None else str(
        tokenizer if isinstance(tokenizer, (str, os.PathLike)) else getattr(tokenizer, "name_or_path", tokenizer)))
    turns = Counter()
    by_role = Counter()
    lengths: list[np.ndarray] = []
    records = iter_normalized(source, schema=schema)
    if limit is not None:
        records = islice(records, limit)
    while batch := [record["messages"] for _, record in islice(records, batch_size)]:
        for messages in batch:
            turns[len(messages)] += 1
            for message in messages:
                by_role[message["role"]] += len(message["content"])
        if tok is not None:
            encoded = tok(_texts_for_tokenizer(tok, batch), add_special_tokens=False)["input_ids"]
            lengths.append(np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded)))
    stats.rows = sum(turns.values())
    stats.turns = sum(k * v for k, v in turns.items())
    stats.turns_per_row = dict(sorted(turns.items()))
    stats.characters = sum(by_role.values())
    stats.characters_by_role = {role: by_role[role] for role in ("system", "user", "assistant") if role in by_role}
    if tok is not None:
        all_lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
        stats.tokens = token_summary(all_lengths)
    return stats


def token_summary(lengths: np.ndarray) -> dict[str, float]:
    """``p50``/``p90``/``p99`` (nearest rank, so real lengths), ``max``, ``mean`` and ``total``."""
    if len(lengths) == 0:
        return {f"p{p}": 0 for p in PERCENTILES} | {"max": 0, "mean": 0.0, "total": 0}
    summary: dict[str, float] = {f"p{p}": int(np.percentile(lengths, p, method="inverted_cdf")) for p in PERCENTILES}
    summary["max"] = int(lengths.max())
    summary["mean"] = float(lengths.mean())
    summary["total"] = int(lengths.sum())
    return summary
