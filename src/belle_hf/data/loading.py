"""Load any BELLE corpus, Hub dataset or local file as a ``datasets`` dataset in ``messages`` format."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from belle_hf.data.registry import resolve_corpus
from belle_hf.data.schemas import detect_schema, get_normalizer
from belle_hf.errors import BelleError
from belle_hf.models import is_hub_id

_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


def _builder_for(path: str) -> str:
    suffix = Path(path.split("?")[0]).suffix.lower()
    if suffix not in _BUILDERS:
        raise BelleError(f"{path}: cannot load files ending in {suffix!r}; use .json, .jsonl, .parquet or .csv")
    return _BUILDERS[suffix]


def _load_raw(name_or_path: str, split: str, streaming: bool, config_name: str | None, **kwargs: Any):
    import datasets

    path = Path(name_or_path).expanduser()
    if path.is_file():
        return datasets.load_dataset(_builder_for(path.name), data_files={split: str(path)}, split=split,
                                     streaming=streaming, **kwargs)
    if path.is_dir():
        if (path / "README.md").is_file() or any(path.glob("**/*.parquet")):
            # A Hub-style dataset folder (card with ``configs``, or parquet shards).
            return datasets.load_dataset(str(path), config_name, split=split, streaming=streaming, **kwargs)
        files = sorted(str(p) for p in path.rglob("*") if p.suffix in (".json", ".jsonl"))
        if not files:
            raise BelleError(f"{path}: no .json, .jsonl or .parquet files in this folder")
        return datasets.load_dataset("json", data_files={split: files}, split=split, streaming=streaming, **kwargs)
    corpus = resolve_corpus(name_or_path)
    if corpus is not None:
        return datasets.load_dataset("json", data_files={split: corpus.hf_path}, split=split, streaming=streaming,
                                     **kwargs)
    if name_or_path.startswith("hf://"):
        return datasets.load_dataset(_builder_for(name_or_path), data_files={split: name_or_path}, split=split,
                                     streaming=streaming, **kwargs)
    if is_hub_id(name_or_path):
        return datasets.load_dataset(name_or_path, config_name, split=split, streaming=streaming, **kwargs)
    raise BelleError(
        f"{name_or_path!r} is not a local file or folder, a BELLE corpus name, an hf:// path or a Hub dataset id"
    )


def default_schema(name_or_path: str) -> str:
    """The registry's schema for a BELLE corpus name, else ``auto``."""
    corpus = resolve_corpus(str(name_or_path))
    return corpus.schema if corpus is not None else "auto"


def load(
    name_or_path: str | os.PathLike,
    split: str = "train",
    streaming: bool = False,
    schema: str | None = None,
    config_name: str | None = None,
    normalize: bool = True,
    num_proc: int | None = None,
    **load_kwargs: Any,
):
    """Load a dataset and normalize it to TRL's conversational format.

    Args:
        name_or_path: a BELLE corpus name (``train_0.5M_CN`` or ``BelleGroup/train_0.5M_CN``),
            a Hub dataset id, an ``hf://`` path, a local file (JSON Lines, JSON array,
            parquet, csv) or a local folder (Hub-style with a card and parquet shards, or
            plain JSON files). Hub access follows ``HF_ENDPOINT``, so mirrors work.
        split: the split to return.
        streaming: return an ``IterableDataset`` read lazily, so memory stays flat on the
            multi-million corpora.
        schema: the record layout; ``None`` takes the registry's for BELLE corpora and
            detects it from the first record otherwise. ``"auto"`` detects per record.
        config_name: the config of a Hub-style dataset folder or repository.
        normalize: ``False`` returns the raw records.
        num_proc: processes for the normalizing ``map`` (non-streaming only).

    Returns:
        A ``datasets.Dataset`` (or ``IterableDataset``) with columns ``messages``, ``id`` and
        ``source``.
    """
    name_or_path = str(name_or_path)
    raw = _load_raw(name_or_path, split, streaming, config_name, **load_kwargs)
    if not normalize:
        return raw
    if schema is None:
        schema = default_schema(name_or_path)
    first = next(iter(raw.take(1) if streaming else raw.select(range(min(1, len(raw))))), None)
    if first is None:
        raise BelleError(f"{name_or_path}: the '{split}' split is empty")
    if schema == "auto":
        schema = detect_schema(first)
    normalizer = get_normalizer(schema)
    default_source = resolve_corpus(name_or_path).name if resolve_corpus(name_or_path) else Path(name_or_path).stem

    def to_messages(record: dict) -> dict:
        normalized = normalizer(record)
        if normalized["source"] is None:
            normalized["source"] = default_source
        return normalized

    columns = list(first.keys())
    if streaming:
        return raw.map(to_messages, remove_columns=columns)
    return raw.map(to_messages, remove_columns=columns, num_proc=num_proc, desc=f"Normalizing ({schema})")
