"""Remove duplicate conversations: exact duplicates first, then near duplicates with MinHash-LSH.

Generated corpora repeat themselves: the same instruction asked twice, or the same answer with
a few characters changed. :func:`dedup_file` streams the records once, in batches, and keeps the
first occurrence of each:

1. **exact**: a 16-byte BLAKE2 digest of the conversation (roles and contents, whitespace
   collapsed) is looked up in a set;
2. **near**: each conversation's character ``ngram`` shingles get a MinHash signature
   (``datasketch``, computed in batches with :meth:`datasketch.MinHash.bulk`), and a
   :class:`datasketch.MinHashLSH` index of the kept rows proposes candidates whose estimated
   Jaccard similarity is at least ``threshold``; a candidate is confirmed against its stored
   signature before the row is dropped, so LSH's false positives never remove a row.

Memory grows with the number of *kept* rows only: about ``4 * num_perm`` bytes of signature plus
the LSH index (band keys compressed to 8 bytes each) per row, so a few million rows fit in a
few GB. The LSH index can live in Redis instead of memory through datasketch's
``storage_config`` for larger corpora.

>>> from belle_hf.data.dedup import dedup_file
>>> report = dedup_file("train.jsonl", "train.dedup.jsonl", threshold=0.8)
>>> report.exact_duplicates, report.near_duplicates
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import orjson
import xxhash

from belle_hf.data.files import RecordWriter, dump_json
from belle_hf.data.stream import iter_normalized
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
    """MinHash permutations: more is more precise, slower and bigger."""
    near: bool = True
    """Also remove near duplicates (``False``: exact duplicates only)."""
    batch_size: int = 2000
    """Rows hashed together."""
    storage_config: dict | None = None
    """datasketch ``MinHashLSH`` storage (``None``: in memory; ``{"type": "redis", ...}`` for huge sets)."""

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0:
            raise BelleError(f"threshold must be in (0, 1], not {self.threshold}")
        if self.ngram < 1:
            raise BelleError(f"ngram must be at least 1, not {self.ngram}")
        if self.num_perm < 16:
            raise BelleError(f"num_perm must be at least 16, not {self.num_perm}")


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
    """The set of character ``ngram``-grams of ``text`` (the whole text when shorter)."""
    if len(text) <= ngram:
        return {text}
    return {text[i : i + ngram] for i in range(len(text) - ngram + 1)}


def _shingle_hash(shingle: str) -> int:
    # datasketch hashes every shingle with SHA-1 by default; xxhash is ~5x faster and as good here.
    return xxhash.xxh32_intdigest(shingle.encode("utf-8"))


def _band_key(band: bytes) -> bytes:
    # Compresses each LSH band key to 8 bytes (datasketch's ``hashfunc``), which keeps the index small.
    return xxhash.xxh64_digest(band)


class _Signatures:
    """MinHash signatures of the kept rows in a growing uint32 matrix, for confirming candidates.

    Hand-written because datasketch's LSH stores band keys, not signatures, and a list of
    ``MinHash`` objects costs several times more memory.
    """

    BLOCK_ROWS = 65_536

    def __init__(self, num_perm: int):
        self.num_perm = num_perm
        self.blocks: list[np.ndarray] = []
        self.count = 0

    def append(self, signature: np.ndarray) -> int:
        row = self.count % self.BLOCK_ROWS
        if row == 0:
            self.blocks.append(np.empty((self.BLOCK_ROWS, self.num_perm), dtype=np.uint32))
        self.blocks[-1][row] = signature
        self.count += 1
        return self.count - 1

    def similarity(self, index: int, signature: np.ndarray) -> float:
        stored = self.blocks[index // self.BLOCK_ROWS][index % self.BLOCK_ROWS]
        return float(np.count_nonzero(stored == signature)) / self.num_perm


def _batches(iterator: Iterator, size: int) -> Iterator[list]:
    while batch := list(islice(iterator, size)):
        yield batch


def dedup_file(
    source: str | os.PathLike,
    output: str | os.PathLike,
    config: DedupConfig | None = None,
    schema: str = "auto",
    report_path: str | os.PathLike | None = None,
    **config_kwargs,
) -> DedupReport:
    """Write the rows of ``source`` (any BELLE schema, normalized) to ``output`` without duplicates.

    The first occurrence of each duplicate group is kept, in input order. ``config`` (or its
    fields as keyword arguments: ``threshold``, ``ngram``, ``num_perm``, ``near``) sets the
    near-duplicate test. ``output`` and ``report_path`` are written atomically. A malformed
    record raises :class:`~belle_hf.errors.DataFormatError` naming its file and line.
    """
    from datasketch import MinHash, MinHashLSH

    config = config or DedupConfig(**config_kwargs)
    report = DedupReport(source=str(source), output=str(output), config=asdict(config))
    seen_exact: dict[bytes, str] = {}  # digest -> location of the row it is kept as
    kept_locations: list[str] = []
    signatures = _Signatures(config.num_perm)
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm, hashfunc=_band_key,
                     storage_config=config.storage_config) if config.near else None

    with RecordWriter(output) as writer:
        records = iter_normalized(source, schema=schema)
        for batch in _batches(records, config.batch_size):
            report.rows_in += len(batch)
            unique = []
            for location, record in batch:
                key = exact_key(record["messages"])
                original = seen_exact.get(key)
                if original is not None:
                    report.exact_duplicates += 1
                    report.add_example("exact", location, original, 1.0)
                    continue
                seen_exact[key] = location
                unique.append((key, location, record))
            if lsh is not None:
                texts = (shingles(conversation_text(r["messages"]), config.ngram) for _, _, r in unique)
                minhashes = MinHash.generator(texts, num_perm=config.num_perm, hashfunc=_shingle_hash)
            else:
                minhashes = iter([None] * len(unique))
            for (key, location, record), minhash in zip(unique, minhashes):
                if minhash is not None:
                    match = _best_match(lsh, signatures, minhash, config.threshold)
                    if match is not None:
                        index, similarity = match
                        report.near_duplicates += 1
                        report.add_example("near", location, kept_locations[index], similarity)
                        seen_exact[key] = kept_locations[index]
                        continue
                    index = signatures.append(minhash.hashvalues)
                    lsh.insert(index, minhash, check_duplication=False)
                kept_locations.append(location)
                writer.write(record)
        report.rows_kept = writer.count
    if report_path is not None:
        atomic_write_text(Path(report_path), dump_json(report.to_dict()))
    return report


def _best_match(lsh, signatures: _Signatures, minhash, threshold: float) -> tuple[int, float] | None:
    """The most similar kept row among the LSH candidates, if its similarity reaches ``threshold``."""
    best = None
    for index in lsh.query(minhash):
        similarity = signatures.similarity(index, minhash.hashvalues)
        if similarity >= threshold and (best is None or similarity > best[1]):
            best = (index, similarity)
    return best
