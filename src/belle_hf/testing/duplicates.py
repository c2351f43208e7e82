"""Synthetic Chinese instruction rows with planted exact and near duplicates (tests and ``bench/dedup.py``).

Originals are random Chinese text behind a shared instruction template, so they are far apart
except for the template. A planted **exact** duplicate repeats an earlier original; a planted
**near** duplicate changes one to three characters of its answer or inserts a sentence into it
(estimated Jaccard similarity of 5-gram shingles about 0.85-0.95). Generated in numpy batches,
so millions of rows take seconds, and streamed, so memory stays flat.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import orjson

_CJK_FIRST, _CJK_LAST = 0x4E00, 0x9FA5
_TEMPLATES = ("请根据以下内容回答问题：", "请把下面这段话改写得更通顺：", "阅读下文并总结要点：", "请解释下面的内容：")


@dataclass(frozen=True)
class Planted:
    """Where a planted duplicate came from: its ``kind`` (``exact`` or ``near``) and the original's row number."""

    kind: str
    original: int


def _texts(rng: np.random.Generator, count: int, low: int, high: int) -> list[str]:
    lengths = rng.integers(low, high + 1, size=count)
    codes = rng.integers(_CJK_FIRST, _CJK_LAST + 1, size=(count, high), dtype=np.uint32)
    return [row[:length].tobytes().decode("utf-32-le") for row, length in zip(codes, lengths)]


def _near_copy(rng: np.random.Generator, answer: str) -> str:
    if rng.random() < 0.5:  # a sentence inserted
        sentence = _texts(rng, 1, 8, 14)[0] + "。"
        at = int(rng.integers(0, len(answer) + 1))
        return answer[:at] + sentence + answer[at:]
    chars = list(answer)  # one to three characters changed
    for at in rng.choice(len(chars), size=int(rng.integers(1, 4)), replace=False):
        chars[at] = chr(int(rng.integers(_CJK_FIRST, _CJK_LAST + 1)))
    return "".join(chars)


def planted_rows(rows: int, seed: int = 0, exact: float = 0.05, near: float = 0.10,
                 batch: int = 10_000) -> Iterator[tuple[dict, Planted | None]]:
    """Yield ``rows`` alpaca records with ``(record, Planted or None)``; about ``exact`` and ``near``
    of them are duplicates of an earlier original (one of the last few thousand)."""
    rng = np.random.default_rng(seed)
    recent: list[tuple[int, dict]] = []
    produced = 0
    while produced < rows:
        count = min(batch, rows - produced)
        questions = _texts(rng, count, 10, 30)
        answers = _texts(rng, count, 150, 400)
        draws = rng.random(count)
        for question, answer, draw in zip(questions, answers, draws):
            index = produced
            produced += 1
            if recent and draw < exact + near:
                original_index, original = recent[int(rng.integers(len(recent)))]
                if draw < exact:
                    yield dict(original), Planted("exact", original_index)
                else:
                    yield ({**original, "output": _near_copy(rng, original["output"])},
                           Planted("near", original_index))
                continue
            record = {"instruction": _TEMPLATES[index % len(_TEMPLATES)] + question, "input": "", "output": answer}
            recent.append((index, record))
            if len(recent) > 4096:
                recent.pop(0)
            yield record, None


def write_planted(path: str | Path, rows: int, seed: int = 0, **kwargs) -> list[Planted | None]:
    """Write :func:`planted_rows` to the JSON Lines file ``path``; returns the labels, row by row."""
    labels: list[Planted | None] = []
    with open(path, "wb") as handle:
        for record, label in planted_rows(rows, seed=seed, **kwargs):
            handle.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
            labels.append(label)
    return labels
