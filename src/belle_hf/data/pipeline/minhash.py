"""BELLE's exact + near deduplication on datatrove's disk-backed MinHash stages.

datatrove's MinHash dedup runs in four stages (signatures -> buckets -> clusters -> filter), each
keeping its data on disk, so memory does not grow with the corpus. Two of them are used as they
are: :class:`~datatrove.pipeline.dedup.minhash.MinhashDedupBuckets` (sorted merge of each LSH
band, writing candidate pairs) and :class:`~datatrove.pipeline.dedup.minhash.MinhashDedupFilter`
(drops the rows listed in ``.remove`` files). The others are adapted, for reasons datatrove's
defaults do not cover:

* :class:`CharNgramSignatures` subclasses the signature stage: datatrove shingles *words*, and
  its word tokenizer sees a Chinese row as one word, so shingles here are character n-grams of
  the conversation text. It also keeps, per row, the whole signature, a 16-byte exact digest and
  the row's location (``file:line``) on disk for the steps below.
* :class:`ConfirmCandidates` + :class:`KeepFirstOccurrence` replace datatrove's cluster stage,
  which unions every candidate pair: a false LSH candidate would drop a row, a chain A~B~C would
  drop C even when C is not similar to the kept A, and the kept row would be the union's root,
  not the first occurrence. Here every candidate is confirmed against the stored signatures
  (estimated Jaccard >= threshold, or equal digests for exact duplicates), and a row is dropped
  only when it matches an earlier row that is itself kept: the first occurrence across all
  shards and corpora survives, as in a single sequential pass.

Files under the work folder: ``signatures/bucket_*/*.minhash.sig`` (datatrove), ``rows/{rank}``
``.digest|.sig|.loc`` (ours), ``buckets/*.dups`` (datatrove), ``edges/{bucket}.npy`` (confirmed
pairs), ``remove/{rank}.remove`` (datatrove's format) and ``dedup_result.json``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
from datatrove.utils.hashing import HashConfig
from datatrove.utils.word_tokenizers import WordTokenizer

from belle_hf.data.pipeline.steps import work_file, write_json

EDGE = np.dtype([("later", "<u8"), ("earlier", "<u8"), ("similarity", "<f4"), ("exact", "u1")])
"""A confirmed duplicate pair: global row numbers (rows of all tasks in rank order)."""

DIGEST_BYTES = 16
_POLY = np.uint64(1_000_003)


def minhash_config(bands: int, rows: int) -> MinhashConfig:
    """datatrove's config for ``bands`` LSH bands of ``rows`` 32-bit hashes."""
    return MinhashConfig(num_buckets=bands, hashes_per_bucket=rows,
                         hash_config=HashConfig(precision=32, hash_fc="xxhash"))


def char_ngram_hashes(text: str, ngram: int) -> np.ndarray:
    """64-bit hashes of the character ``ngram``-grams of ``text`` (the whole text when shorter), shape (N, 1).

    A polynomial hash over code points, vectorized with numpy: no Python loop per shingle.
    """
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    width = min(ngram, len(codes))
    count = len(codes) - width + 1
    hashes = np.zeros(max(count, 1), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(width):
            hashes = hashes * _POLY + codes[k: k + count]
        # finalizer (splitmix64) so nearby n-grams get unrelated hashes
        hashes ^= hashes >> np.uint64(30)
        hashes *= np.uint64(0xBF58476D1CE4E5B9)
        hashes ^= hashes >> np.uint64(27)
        hashes *= np.uint64(0x94D049BB133111EB)
        hashes ^= hashes >> np.uint64(31)
    return hashes.reshape(-1, 1)


class CharacterTokenizer(WordTokenizer):
    """Splits text into characters: the "words" of Chinese text for shingling (datatrove's default
    English tokenizer needs spaCy and would see a Chinese row as one word)."""

    def word_tokenize(self, text: str) -> list[str]:
        return list(text)

    def sent_tokenize(self, text: str) -> list[str]:
        return [text]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]


class CharNgramSignatures(MinhashDedupSignature):
    """datatrove's signature stage on character n-grams, also storing each row's digest, signature and location.

    With ``exact_only`` the "signature" is the row's exact digest (one band of four 32-bit
    words), so the same bucket stage finds exact duplicates without shingling.
    """

    name = "BELLE MinHash signatures"

    def __init__(self, output_folder: str, rows_folder: str, config: MinhashConfig, ngram: int,
                 exact_only: bool = False):
        super().__init__(output_folder, config=config, language=CharacterTokenizer("zh"))
        self.rows_folder = rows_folder
        self.ngram = ngram
        self.exact_only = exact_only
        self._digest = b""
        self._signatures = None
        self._multiply_shift: tuple[np.ndarray, np.ndarray] | None = None

    def get_shingles(self, text: str) -> np.ndarray:
        # datatrove's get_shingles (with CharacterTokenizer) would hash each n-gram in a Python
        # loop; char_ngram_hashes computes them all in numpy.
        if self.exact_only:
            return np.zeros((1, 1), dtype=np.uint64)
        return char_ngram_hashes(text, self.ngram)

    def get_signature(self, shingles: np.ndarray) -> list[list[int]]:
        """The MinHash signature, split into bands, as datatrove's bucket files want it.

        datatrove's own permutations take a 64-bit modulo per shingle and hash, and split the
        result with ``np.split``; this multiply-shift family (``(a*x + b) mod 2**64``, top 32
        bits, ``a`` odd: universal) needs one multiply-add per element and is about 3x faster,
        the cost that dominates deduplication.
        """
        if self.exact_only:
            return [np.frombuffer(self._digest, dtype="<u4").tolist()]
        if self._multiply_shift is None:
            rng = np.random.default_rng(self.config.seed)
            high = np.iinfo(np.uint64).max
            a = rng.integers(1, high, size=(1, self.num_hashes), dtype=np.uint64, endpoint=True) | np.uint64(1)
            self._multiply_shift = (a, rng.integers(0, high, size=(1, self.num_hashes), dtype=np.uint64))
        a, b = self._multiply_shift
        # in place (no temporaries: 5x faster); integer arrays wrap silently, which is the mod 2**64.
        # The top bits are monotonic in the whole value, so the min can come before the shift.
        values = np.multiply(shingles, a)
        np.add(values, b, out=values)
        signature = (values.min(axis=0) >> np.uint64(32)).astype("<u4")
        self._signatures.write(signature.tobytes())
        return signature.reshape(self.config.num_buckets, self.config.hashes_per_bucket).tolist()

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1):
        from belle_hf.data.dedup import conversation_text, exact_key

        folder = Path(self.rows_folder)
        with (work_file(folder / f"{rank:05d}.digest") as digests,
              work_file(folder / f"{rank:05d}.loc") as locations,
              work_file(folder / f"{rank:05d}.sig") as self._signatures):

            def documents():
                for document in data:
                    messages = document.metadata["record"]["messages"]
                    self._digest = exact_key(messages)
                    digests.write(self._digest)
                    locations.write(document.id.replace("\n", " ").encode() + b"\n")
                    document.text = "" if self.exact_only else conversation_text(messages)
                    yield document

            super().run(documents(), rank, world_size)
        self._signatures = None


class _Rows:
    """Random access to the stored digests and signatures of every task's rows (``os.pread``, no mmap,
    so reading them does not grow the process's resident memory)."""

    def __init__(self, folder: str, num_hashes: int):
        self.folder = Path(folder)
        self.sig_bytes = 4 * num_hashes
        self._files: dict[tuple[int, str], int] = {}

    def _read(self, rank: int, kind: str, index: int, size: int) -> bytes:
        key = (rank, kind)
        if key not in self._files:
            self._files[key] = os.open(self.folder / f"{rank:05d}.{kind}", os.O_RDONLY)
        return os.pread(self._files[key], size, index * size)

    def digest(self, rank: int, index: int) -> bytes:
        return self._read(rank, "digest", index, DIGEST_BYTES)

    def signature(self, rank: int, index: int) -> np.ndarray:
        return np.frombuffer(self._read(rank, "sig", index, self.sig_bytes), dtype="<u4")

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()


def row_offsets(rows_folder: str) -> np.ndarray:
    """Global number of the first row of each task (and the total at the end)."""
    counts = [path.stat().st_size // DIGEST_BYTES for path in sorted(Path(rows_folder).glob("*.digest"))]
    return np.concatenate([[0], np.cumsum(counts, dtype=np.uint64)]).astype(np.uint64)


class ConfirmCandidates(PipelineStep):
    """Confirm the candidate pairs of one LSH band against the stored signatures.

    datatrove's bucket stage writes, for rows sharing a band, consecutive pairs (a chain, in row
    order). Each chain is one candidate group; its rows are compared, in order, with the group's
    representatives (earlier rows that matched no one before them), at most ``max_representatives``.
    A confirmed pair is an exact duplicate (same digest) or a near duplicate (share of equal
    signature hashes >= ``threshold``); only confirmed pairs reach the next stage.
    """

    name = "BELLE confirm candidates"
    type = "🫂 - DEDUP"

    def __init__(self, dups_folder: str, rows_folder: str, edges_folder: str, threshold: float,
                 num_hashes: int, exact_only: bool = False, max_representatives: int = 32):
        super().__init__()
        self.dups_folder = dups_folder
        self.rows_folder = rows_folder
        self.edges_folder = edges_folder
        self.threshold = threshold
        self.num_hashes = num_hashes
        self.exact_only = exact_only
        self.max_representatives = max_representatives

    def _groups(self, bucket: int, chunk_pairs: int = 1 << 18):
        for path in sorted(Path(self.dups_folder).glob(f"{bucket:05d}_*.dups")):
            group: list[tuple[int, int]] = []
            with open(path, "rb") as handle:  # in chunks: a band of a huge corpus has millions of pairs
                while chunk := handle.read(16 * chunk_pairs):
                    for f1, d1, f2, d2 in np.frombuffer(chunk, dtype="<u4").reshape(-1, 4).tolist():
                        if group and group[-1] == (f1, d1):
                            group.append((f2, d2))
                            continue
                        if group:
                            yield group
                        group = [(f1, d1), (f2, d2)]
            if group:
                yield group

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        rows = _Rows(self.rows_folder, self.num_hashes)
        offsets = row_offsets(self.rows_folder).tolist()
        edges: list[tuple[int, int, float, int]] = []
        try:
            for group in self._groups(rank):
                self.stat_update("candidate_groups")
                representatives: list[tuple[int, bytes, np.ndarray | None]] = []
                for task, index in sorted(group):
                    row = offsets[task] + index
                    digest = rows.digest(task, index)
                    signature = None if self.exact_only else rows.signature(task, index)
                    matched = False
                    for kept, kept_digest, kept_signature in representatives:
                        if digest == kept_digest:
                            edges.append((row, kept, 1.0, 1))
                            matched = True
                        elif signature is not None:
                            similarity = np.count_nonzero(signature == kept_signature) / self.num_hashes
                            if similarity >= self.threshold:
                                edges.append((row, kept, similarity, 0))
                                matched = True
                    if not matched and len(representatives) < self.max_representatives:
                        representatives.append((row, digest, signature))
        finally:
            rows.close()
        array = np.unique(np.array(edges, dtype=EDGE))
        self.stat_update("confirmed_pairs", value=len(array))
        with work_file(Path(self.edges_folder) / f"{rank:05d}.npy") as handle:
            np.save(handle, array)
        return
        yield


class KeepFirstOccurrence(PipelineStep):
    """Decide which rows go, in one task: a row is dropped when a confirmed pair links it to an earlier kept row.

    Rows are decided in global order (task rank, then row), so the first occurrence is kept.
    Memory: the confirmed pairs (21 bytes each, merged band by band) and one byte per row.
    Writes datatrove's ``{rank:06d}.remove`` files and ``result`` (counts and example pairs).
    """

    name = "BELLE keep first occurrence"
    type = "🫂 - DEDUP"

    def __init__(self, rows_folder: str, edges_folder: str, remove_folder: str, result: str,
                 max_examples: int = 10):
        super().__init__()
        self.rows_folder = rows_folder
        self.edges_folder = edges_folder
        self.remove_folder = remove_folder
        self.result = result
        self.max_examples = max_examples

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        offsets = row_offsets(self.rows_folder)
        edges = np.zeros(0, dtype=EDGE)
        for path in sorted(Path(self.edges_folder).glob("*.npy")):
            edges = np.unique(np.concatenate([edges, np.load(path)]))  # the same pair comes from many bands
        edges = edges[np.lexsort((edges["earlier"], edges["later"]))]
        dropped = np.zeros(int(offsets[-1]), dtype=bool)
        counts = {"exact": 0, "near": 0}
        examples: list[dict] = []

        def locate(row: int) -> list[int]:
            task = int(np.searchsorted(offsets, row, side="right")) - 1
            return [task, row - int(offsets[task])]

        def decide(row: int, match: tuple[int, float, int] | None) -> None:
            if match is None:
                return
            dropped[row] = True
            kind = "exact" if match[2] else "near"
            counts[kind] += 1
            if len(examples) < self.max_examples:
                examples.append({"kind": kind, "duplicate": locate(row), "kept": locate(match[0]),
                                 "similarity": round(float(match[1]), 4)})

        current, match = None, None
        for start in range(0, len(edges), 1 << 20):
            chunk = edges[start: start + (1 << 20)]
            for later, earlier, similarity, exact in zip(chunk["later"].tolist(), chunk["earlier"].tolist(),
                                                         chunk["similarity"].tolist(), chunk["exact"].tolist()):
                if later != current:
                    if current is not None:
                        decide(current, match)
                    current, match = later, None
                if dropped[earlier]:
                    continue  # similar only to a row that is itself dropped: not a reason to drop
                if match is None or (exact, similarity) > (match[2], match[1]):
                    match = (earlier, similarity, exact)
        if current is not None:
            decide(current, match)

        remove = Path(self.remove_folder)
        for task in range(len(offsets) - 1):
            gone = np.flatnonzero(dropped[int(offsets[task]): int(offsets[task + 1])]).astype("<u4")
            if len(gone):
                with work_file(remove / f"{task:06d}.remove") as handle:
                    handle.write(gone.tobytes())
        write_json(self.result, {"rows": int(offsets[-1]), **counts, "examples": examples})
        return
        yield
