"""Near-duplicate detection of instructions: character-level ROUGE-L, exact or via MinHash-LSH.

Alpaca drops a new instruction whose ROUGE-L F-measure with any kept one exceeds 0.7, but
``rouge_score``'s tokenizer keeps only ``[a-z0-9]`` and so sees nothing in Chinese text. Here
ROUGE-L is computed on characters (letters and digits of any script, lowercased). Its
F-measure ``2·LCS / (len(a) + len(b))`` is exactly rapidfuzz's normalized Indel similarity,
computed in C with a bit-parallel LCS, so no LCS is written by hand.

:class:`RougeLIndex` compares a new instruction with every kept one (exact; fine up to tens of
thousands). :class:`MinHashIndex` asks a datasketch MinHash-LSH over character bigrams for
candidates and scores only those with ROUGE-L (approximate, for large runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rapidfuzz import process
from rapidfuzz.distance import Indel

MINHASH_ABOVE = 20_000
"""``dedup="auto"`` uses MinHash-LSH when seeds + kept + target exceed this many instructions."""


def normalize_for_similarity(text: str) -> str:
    """Lowercased letters and digits (Chinese characters count as letters); the rest is dropped."""
    return "".join(char for char in text.lower() if char.isalnum())


def rouge_l(a: str, b: str) -> float:
    """Character-level ROUGE-L F-measure of two texts."""
    return Indel.normalized_similarity(normalize_for_similarity(a), normalize_for_similarity(b))


@dataclass
class Match:
    """The most similar instruction in an index, and its ROUGE-L score (``None``: index empty)."""

    text: str | None
    score: float


class SimilarityIndex(Protocol):
    def most_similar(self, text: str) -> Match: ...

    def add(self, text: str) -> None: ...

    def __len__(self) -> int: ...


class RougeLIndex:
    """Exact: ROUGE-L against every instruction added so far."""

    name = "rouge-l"

    def __init__(self, texts: list[str] | None = None):
        self._texts: list[str] = []
        self._normalized: list[str] = []
        for text in texts or []:
            self.add(text)

    def __len__(self) -> int:
        return len(self._texts)

    def add(self, text: str) -> None:
        self._texts.append(text)
        self._normalized.append(normalize_for_similarity(text))

    def most_similar(self, text: str) -> Match:
        if not self._texts:
            return Match(None, 0.0)
        best = process.extractOne(normalize_for_similarity(text), self._normalized,
                                  scorer=Indel.normalized_similarity, processor=None)
        _, score, index = best
        return Match(self._texts[index], float(score))


class MinHashIndex:
    """Approximate: MinHash-LSH candidates (character-bigram Jaccard), scored with ROUGE-L.

    The LSH threshold is set well below the ROUGE-L threshold, so that near duplicates (which
    share most bigrams) are found as candidates; the ROUGE-L of the candidates decides.
    """

    name = "minhash-lsh"

    def __init__(self, texts: list[str] | None = None, lsh_threshold: float = 0.3, num_perm: int = 64):
        from datasketch import MinHash, MinHashLSH

        self.num_perm = num_perm
        # Every MinHash would otherwise draw its own (identical) permutations: most of the cost.
        template = MinHash(num_perm=num_perm)
        self._permutations, self._scheme = template.permutations, template.scheme
        self._lsh = MinHashLSH(threshold=lsh_threshold, num_perm=num_perm)
        self._texts: list[str] = []
        self._normalized: list[str] = []
        texts = list(texts or [])
        if texts:  # the seeds and kept rows of a resumed run: hashed in bulk
            normalized = [normalize_for_similarity(text) for text in texts]
            minhashes = MinHash.bulk([self._shingles(n) for n in normalized], num_perm=num_perm,
                                     permutations=self._permutations, scheme=self._scheme)
            with self._lsh.insertion_session() as session:
                for key, minhash in enumerate(minhashes):
                    session.insert(key, minhash, check_duplication=False)
            self._texts, self._normalized = texts, normalized

    def __len__(self) -> int:
        return len(self._texts)

    @staticmethod
    def _shingles(normalized: str) -> list[bytes]:
        """Character bigrams (the text itself when shorter)."""
        grams = {normalized[i:i + 2] for i in range(max(1, len(normalized) - 1))} or {""}
        return [gram.encode("utf-8") for gram in grams]

    def _minhash(self, normalized: str):
        from datasketch import MinHash

        minhash = MinHash(num_perm=self.num_perm, permutations=self._permutations, scheme=self._scheme)
        minhash.update_batch(self._shingles(normalized))
        return minhash

    def add(self, text: str) -> None:
        normalized = normalize_for_similarity(text)
        key = len(self._texts)
        self._texts.append(text)
        self._normalized.append(normalized)
        self._lsh.insert(key, self._minhash(normalized), check_duplication=False)

    def most_similar(self, text: str) -> Match:
        normalized = normalize_for_similarity(text)
        candidates = self._lsh.query(self._minhash(normalized))
        if not candidates:
            return Match(None, 0.0)
        best = max(candidates, key=lambda key: (Indel.normalized_similarity(normalized, self._normalized[key]), -key))
        return Match(self._texts[best], float(Indel.normalized_similarity(normalized, self._normalized[best])))


def make_index(kind: str, texts: list[str], expected_size: int) -> RougeLIndex | MinHashIndex:
    """``kind``: ``rouge`` (exact), ``minhash`` (LSH) or ``auto`` (MinHash above :data:`MINHASH_ABOVE`)."""
    if kind not in ("auto", "rouge", "minhash"):
        raise ValueError(f"dedup must be auto, rouge or minhash, not {kind!r}")
    if kind == "minhash" or (kind == "auto" and expected_size > MINHASH_ABOVE):
        return MinHashIndex(texts)
    return RougeLIndex(texts)
