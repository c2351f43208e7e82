"""Load any BELLE corpus, Hub dataset or local file as a ``datasets`` dataset in ``messages`` format."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from belle_hf.data.registry import resolve_corpus
from belle_hf.data.schemas import detect_schema, get_normalizer
from belle_hf.errors import BelleError, DataFormatError
from belle_hf.models import is_hub_id

_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
_RECORD_SUFFIXES = (".json", ".jsonl", ".parquet")
# Rows per columnar normalization (and per written Arrow batch): large enough that the per-batch
# Python overhead vanishes, small enough to keep memory flat (tens of MB).
BATCH_ROWS = 10_000
ROWS_PER_PROCESS = 250_000
"""Normalizing runs at ~200k rows/s a process: below this many rows a second process costs more
than it saves."""


def _builder_for(path: str) -> str:
    suffix = Path(path.split("?")[0]).suffix.lower()
    if suffix not in _BUILDERS:
        raise BelleError(f"{path}: cannot load files ending in {suffix!r}; use .json, .jsonl, .parquet or .csv")
    return _BUILDERS[suffix]


def _is_hub_style_folder(path: Path) -> bool:
    return (path / "README.md").is_file() or any(path.glob("**/*.parquet"))


def _local_record_files(name_or_path: str) -> list[Path] | None:
    """The local record files behind ``name_or_path``, in load order; ``None`` when it is not such a source.

    These are the sources whose records :mod:`belle_hf.data.files` can read one by one, so an
    error can name its file and line (``datasets`` cannot).
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return [path] if path.suffix.lower() in _RECORD_SUFFIXES else None
    if path.is_dir() and not _is_hub_style_folder(path):
        return [Path(p) for p in sorted(str(p) for p in path.rglob("*") if p.suffix in (".json", ".jsonl"))] or None
    return None


def _load_raw(name_or_path: str, split: str, streaming: bool, config_name: str | None, **kwargs: Any):
    import datasets

    path = Path(name_or_path).expanduser()
    if path.is_file():
        return datasets.load_dataset(_builder_for(path.name), data_files={split: str(path)}, split=split,
                                     streaming=streaming, **kwargs)
    if path.is_dir():
        if _is_hub_style_folder(path):
            # A Hub-style dataset folder (card with ``configs``, or parquet shards). datasets keys its
            # cache for such a folder on the card's file *patterns*, not on the files they match, so a
            # folder rewritten in place (a rerun of `belle data mix`/`publish --local`) would load the
            # old rows. Resolve the config's files with datasets itself, then load them as plain data
            # files, whose cache key includes each file's size and modification time.
            builder = datasets.load_dataset_builder(str(path), config_name)
            files = {name: [str(f) for f in found] for name, found in (builder.config.data_files or {}).items()}
            if split not in files:
                raise BelleError(f"{path}: no '{split}' split in this dataset folder (it has {', '.join(files) or 'none'})")
            return datasets.load_dataset(_builder_for(files[split][0]), data_files={split: files[split]}, split=split,
                                         streaming=streaming, **kwargs)
        files = _local_record_files(str(path))
        if not files:
            raise BelleError(f"{path}: no .json, .jsonl or .parquet files in this folder")
        return datasets.load_dataset("json", data_files={split: [str(f) for f in files]}, split=split,
                                     streaming=streaming, **kwargs)
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
        num_proc: processes for the normalizing ``map`` (non-streaming only); default: one per
            :data:`ROWS_PER_PROCESS` rows, at most the cores (``1``: in this process).

    Returns:
        A ``datasets.Dataset`` (or ``IterableDataset``) with columns ``messages``, ``id`` and
        ``source``. Ids are strings, exactly as written in the file.

    Raises:
        DataFormatError: a record that is not JSON, not UTF-8 or does not fit the schema, naming
            its file and line (``file[index]`` for parquet, JSON arrays and remote data).
        BelleError: an empty file or split, or a Hub that cannot be reached.
    """
    name_or_path = str(name_or_path)
    files = _local_record_files(name_or_path)
    if files is not None:
        _refuse_empty(name_or_path, files)
    if schema is None and resolve_corpus(name_or_path) is not None:
        schema = default_schema(name_or_path)
    source_name = resolve_corpus(name_or_path).name if resolve_corpus(name_or_path) else Path(name_or_path).stem
    if normalize and streaming and files is not None:
        # Read record by record: flat memory, and errors name their file and line as they come.
        return _stream_files(files, _first_schema(files, schema), source_name)
    try:
        with _quiet_json_reader(files is not None):
            raw = _load_raw(name_or_path, split, streaming, config_name, **load_kwargs)
    except BelleError:
        raise
    except Exception as error:
        if _hub_unreachable(error):
            raise BelleError(_unreachable_message(name_or_path, error)) from None
        if files is None:
            raise
        # ``datasets`` could not read a local file (truncated, not UTF-8, mixed types): find the line.
        _raise_first_bad_record(files, _first_schema(files, schema), source_name)
        raise BelleError(f"{name_or_path}: cannot load it ({error})") from None
    if not normalize:
        return raw
    if streaming:
        return _normalize_streaming(raw, name_or_path, split, schema, source_name)
    if len(raw) == 0:
        raise BelleError(f"{name_or_path}: the '{split}' split is empty")
    if files is not None:
        schema = _first_schema(files, schema)
        raw = _exact_ids(raw, files)
    elif schema is None:
        schema = detect_schema(_present_fields(raw[0]))
    from belle_hf.cores import keep_tokenizer_threads, processes_for

    try:
        with keep_tokenizer_threads():
            return _normalize_dataset(raw, name_or_path, schema, source_name,
                                      processes_for(len(raw), ROWS_PER_PROCESS, requested=num_proc))
    except DataFormatError:
        if files is not None:
            _raise_first_bad_record(files, schema, source_name)
        raise


@contextlib.contextmanager
def _quiet_json_reader(quiet: bool):
    """Silence the JSON reader's own error log: a local file's error is reported with its line instead."""
    logger = logging.getLogger("datasets.packaged_modules.json.json")
    level = logger.level
    if quiet:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _refuse_empty(name_or_path: str, files: list[Path]) -> None:
    from belle_hf.data.files import is_empty_file

    if all(is_empty_file(path) for path in files):
        what = "the file is empty" if len(files) == 1 else f"all {len(files)} data files are empty"
        raise BelleError(f"{name_or_path}: {what}, there are no records to load")


def _first_schema(files: list[Path], schema: str | None) -> str:
    """``schema``, or when ``None`` the schema of the first record (``auto`` detects per record)."""
    if schema is not None:
        return schema
    from belle_hf.data.files import iter_records

    for path in files:
        for location, record in iter_records(path):
            if not isinstance(record, dict):
                raise DataFormatError(f"expected a JSON object, got {type(record).__name__}", location=location)
            try:
                return detect_schema(record)
            except DataFormatError as error:
                raise error.at(location) from None
    return "auto"


def _present_fields(record: dict) -> dict:
    # ``datasets`` gives every row every column of the file, ``None`` where a record lacks it;
    # the normalizers read the record as it was written.
    return {key: value for key, value in record.items() if value is not None}


def _raise_first_bad_record(files: list[Path], schema: str, source_name: str) -> None:
    """Read ``files`` record by record with the per-record normalizer and raise the first error, located."""
    from belle_hf.data.stream import iter_normalized

    for path in files:
        for _ in iter_normalized(path, schema, source_name=source_name):
            pass


def _messages_features():
    import datasets

    message = {"role": datasets.Value("string"), "content": datasets.Value("string")}
    return datasets.Features({"messages": datasets.List(message), "id": datasets.Value("string"),
                              "source": datasets.Value("string")})


def _normalized_records(paths: list[str], schema: str, source_name: str):
    from belle_hf.data.stream import iter_normalized

    for path in paths:
        for _, record in iter_normalized(path, schema, source_name=source_name):
            yield record


def _stream_files(files: list[Path], schema: str, source_name: str):
    import datasets

    return datasets.IterableDataset.from_generator(
        _normalized_records, features=_messages_features(),
        gen_kwargs={"paths": [str(path) for path in files], "schema": schema, "source_name": source_name})


def _reference_batch(rows: list[dict], first_index: int, normalizer, source_name: str, name: str) -> dict:
    """Normalize rows one by one with the per-record normalizer (the reference, and the slow path)."""
    columns: dict[str, list] = {"messages": [], "id": [], "source": []}
    for offset, row in enumerate(rows):
        try:
            normalized = normalizer(_present_fields(row))
        except DataFormatError as error:
            raise error.at(f"{name}[{first_index + offset}]") from None
        for key in columns:
            columns[key].append(normalized[key])
        if normalized["source"] is None:
            columns["source"][-1] = source_name
    return columns


def _normalize_streaming(raw, name: str, split: str, schema: str, source_name: str):
    first = next(iter(raw.take(1)), None)
    if first is None:
        raise BelleError(f"{name}: the '{split}' split is empty")
    if schema is None:
        schema = detect_schema(_present_fields(first))
    normalizer = get_normalizer(schema)

    def to_messages(batch: dict, indices: list[int]) -> dict:
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        return _reference_batch(rows, indices[0] if indices else 0, normalizer, source_name, name)

    return raw.map(to_messages, batched=True, with_indices=True, remove_columns=list(first.keys()),
                   features=_messages_features())


def _plain_features(features) -> bool:
    """Whether every column is a plain value or list of objects (no JSON-encoded mixed types)."""
    import datasets

    def plain(feature) -> bool:
        if isinstance(feature, datasets.Value):
            return True
        if isinstance(feature, dict):
            return all(plain(value) for value in feature.values())
        if isinstance(feature, (datasets.List, datasets.LargeList)):
            return plain(feature.feature)
        return False

    return all(plain(feature) for feature in features.values())


def _normalize_dataset(raw, name: str, schema: str, source_name: str, num_proc: int | None):
    from belle_hf.data import columnar

    normalizer = get_normalizer(schema)
    features = _messages_features()
    columns = raw.column_names
    if not _plain_features(raw.features):
        # Columns that ``datasets`` stored as JSON text (mixed types): decode them row by row.
        def reference(batch: dict, indices: list[int]) -> dict:
            rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
            return _reference_batch(rows, indices[0], normalizer, source_name, name)

        return raw.map(reference, batched=True, with_indices=True, remove_columns=columns, features=features,
                       num_proc=num_proc, desc=f"Normalizing ({schema})")

    def fast(table, indices: list[int]):
        try:
            return columnar.normalize_table(table, schema, source_name)
        except columnar.BadRow as bad:
            # The reference names the field and the reason; run it up to the refused row, so the
            # first refused row is reported (the columnar checks run check by check, not row by row).
            _reference_batch(table.slice(0, bad.index + 1).to_pylist(), indices[0], normalizer, source_name, name)
            raise DataFormatError(f"row refused by the columnar check but not by the reference ({schema})",
                                  location=f"{name}[{indices[bad.index]}]") from None
        except columnar.Unsupported:
            return _reference_table(table, indices, normalizer, source_name, name)

    normalized = raw.with_format("arrow").map(fast, batched=True, batch_size=BATCH_ROWS, with_indices=True,
                                              remove_columns=columns, features=features, num_proc=num_proc,
                                              writer_batch_size=BATCH_ROWS, desc=f"Normalizing ({schema})",
                                              new_fingerprint=_fingerprint(raw, schema, source_name, name))
    return normalized.with_format(None)


def _fingerprint(raw, *settings: str) -> str:
    """The cache key of a normalization: the raw data, the settings and the normalizers' own code.

    ``datasets`` hashes the mapped function but not the module functions it calls, so a changed
    normalizer would otherwise reuse the old result from the cache.
    """
    from datasets.fingerprint import Hasher

    from belle_hf.data import columnar, schemas

    code = [Path(module.__file__).read_bytes() for module in (columnar, schemas)]
    return Hasher.hash([raw._fingerprint, *settings, *code])


def _reference_table(table, indices, normalizer, source_name: str, name: str):
    import pyarrow as pa

    from belle_hf.data.columnar import OUTPUT_SCHEMA

    try:
        rows = table.to_pylist()
    except UnicodeDecodeError:
        raise DataFormatError("not UTF-8", location=f"{name}[{indices[0]}..{indices[-1]}]") from None
    return pa.Table.from_pydict(_reference_batch(rows, indices[0], normalizer, source_name, name),
                                schema=OUTPUT_SCHEMA)


def _exact_ids(raw, files: list[Path]):
    """Replace ids that the JSON reader turned into floats with their text as written."""
    import datasets

    feature = raw.features.get("id")
    if not isinstance(feature, datasets.Value) or not feature.dtype.startswith("float"):
        return raw
    from belle_hf.data.files import iter_records

    ids = [None if record.get("id") is None else str(record.get("id"))
           for path in files for _, record in iter_records(path) if isinstance(record, dict)]
    if len(ids) != len(raw):
        return raw
    return raw.remove_columns("id").add_column("id", ids, feature=datasets.Value("string"))


def _hub_unreachable(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is a failed connection rather than an answer from the Hub."""
    network: list[type] = [ConnectionError, TimeoutError]
    for module in ("httpx2", "httpx"):
        try:
            network.append(__import__(module).TransportError)
        except (ImportError, AttributeError):
            pass
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, tuple(network)):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _unreachable_message(name: str, error: BaseException) -> str:
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    endpoint = urlsplit(constants.ENDPOINT)
    if endpoint.username or endpoint.password:  # never print credentials written into the endpoint
        endpoint = endpoint._replace(netloc=endpoint.hostname + (f":{endpoint.port}" if endpoint.port else ""))
    return (f"{name}: cannot reach the Hub at {endpoint.geturl()} ({type(error).__name__}); "
            "set HF_ENDPOINT to a reachable Hub or mirror, or use a local file")
