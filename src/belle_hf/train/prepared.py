"""Where tokenized training data is kept, and under which key, so a corpus is tokenized once.

``belle data prepare`` and ``belle train`` save the tokenized splits of a recipe (``datasets``'
``save_to_disk``: Arrow files, loaded back memory-mapped) in ``<cache>/prepared/<key>``. The cache
root is ``$BELLE_CACHE`` when set, else ``$XDG_CACHE_HOME/belle_hf``, else ``~/.cache/belle_hf``
(beside ``~/.cache/huggingface``, which holds the Hub's and ``datasets``' own caches).

The key hashes everything that changes the prepared rows: each source (path, split, schema,
``max_samples``, weight) with a fingerprint of its content (local files: size, modification time
and a hash of the first and last MiB; Hub datasets: the commit of the revision), the mixing and
split settings, the seed, the tokenizer's full definition, the chat template, ``max_length``, the
truncation policy and mode, packing, and the format of this module. A changed input gives a new
key, never a stale hit. A source whose content cannot be fingerprinted (a Hub dataset while
offline) makes the recipe uncacheable: it is tokenized every time, as before.

``datasets``' own map cache is no substitute: its fingerprints hash the tokenizing function and
its tokenizer object (slow for a 150k vocabulary, and different on each rank) and it cannot say
"prepared by another process, wait for it".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CACHE_ENV = "BELLE_CACHE"
PREPARED_FORMAT = 2
"""Bump when the prepared rows change for the same inputs (tokenization, columns, preflight).
2: ``input_ids`` stored as int32 and ``assistant_masks`` as int8 (were int64: a third of the disk)."""
INFO_FILE = "prepared.json"
DATA_DIR = "data"
HEAD_BYTES = 1 << 20


def cache_root() -> Path:
    """``$BELLE_CACHE``, else ``$XDG_CACHE_HOME/belle_hf``, else ``~/.cache/belle_hf``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "belle_hf"


def prepared_root() -> Path:
    return cache_root() / "prepared"


def file_fingerprint(path: Path) -> dict[str, Any]:
    """Size, modification time and a hash of the first and last MiB: cheap on a 10 GB corpus, and a
    rewrite that keeps size and time is as good as impossible by accident."""
    stat = path.stat()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        digest.update(handle.read(HEAD_BYTES))
        if stat.st_size > 2 * HEAD_BYTES:
            handle.seek(-HEAD_BYTES, os.SEEK_END)
            digest.update(handle.read(HEAD_BYTES))
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest()}


def hub_revision(repo_id: str, revision: str | None = None) -> str | None:
    """The commit a Hub dataset's revision points to now, or ``None`` when the Hub cannot be asked."""
    from huggingface_hub import HfApi

    try:
        return HfApi().dataset_info(repo_id, revision=revision).sha
    except Exception as error:  # offline, not found, no access: the source is just not cacheable
        logger.info("cannot read the Hub revision of %s (%s)", repo_id, type(error).__name__)
        return None


def source_fingerprint(path: str) -> dict[str, Any] | None:
    """A fingerprint of what :func:`belle_hf.data.load` would read for ``path``; ``None`` if unknown."""
    from belle_hf.data.registry import resolve_corpus

    local = Path(path).expanduser()
    if local.is_file():
        return {"file": file_fingerprint(local)}
    if local.is_dir():
        files = sorted(p for p in local.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(local).parts))
        return {"folder": {str(p.relative_to(local)): file_fingerprint(p) for p in files}}
    corpus = resolve_corpus(path)
    if corpus is not None:
        repo_id, revision = corpus.repo_id, None
    elif path.startswith("hf://datasets/"):
        owner, name = path[len("hf://datasets/"):].split("/")[:2]
        name, _, revision = name.partition("@")
        repo_id, revision = f"{owner}/{name}", revision or None
    elif path.count("/") == 1 and not path.startswith((".", "/")):
        repo_id, revision = path, None
    else:
        return None
    commit = hub_revision(repo_id, revision)
    return {"hub": repo_id, "commit": commit} if commit else None


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of the tokenizer's full definition (vocabulary, merges, normalizer, special tokens)."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode())
    digest.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def prepared_key(inputs: dict[str, Any]) -> str:
    """The cache key of ``inputs`` (plain JSON values)."""
    text = json.dumps({"format": PREPARED_FORMAT, **inputs}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def is_complete(folder: Path) -> bool:
    """A prepared folder is complete once it has its info file: the folder is renamed into place
    only after everything in it is written (:func:`belle_hf.io.atomic_dir`)."""
    return (folder / INFO_FILE).is_file()


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack", ".onnx")
"""Model files that hold weights: left out of :func:`model_files_fingerprint` (gigabytes, and no
part of the tokenizer)."""
RECALL_DIR = "prepared-recipes"
"""Beside ``prepared/``: which prepared folder each recipe's files were prepared under."""


def model_files_fingerprint(folder: Path) -> dict[str, Any]:
    """Fingerprints of every file of a model folder but its weights: the tokenizer, its chat
    template, the configs and any remote code are all among them."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(WEIGHT_SUFFIXES)
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    return {str(p.relative_to(folder)): file_fingerprint(p) for p in files}


def remember(files_key: str, key: str) -> None:
    """Record that the recipe with ``files_key`` (see ``belle_hf.train.dataset.recipe_files_key``)
    was prepared under ``key``."""
    from belle_hf.io import atomic_write_text

    try:
        atomic_write_text(cache_root() / RECALL_DIR / files_key, key)
    except OSError as error:  # only costs a later `belle data prepare` the tokenizer load
        logger.info("cannot record the prepared key: %s", error)


def recall(files_key: str) -> Path | None:
    """The complete prepared folder recorded for ``files_key``, if any."""
    try:
        key = (cache_root() / RECALL_DIR / files_key).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    folder = prepared_root() / key
    if not key.isalnum() or not is_complete(folder):  # a stray record never points outside the cache
        return None
    return folder


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
