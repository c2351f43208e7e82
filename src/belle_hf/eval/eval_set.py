"""BELLE's eval set and its per-class judge prompts, and how a question finds its prompt.

BELLE ships two JSON Lines files (``eval/eval_set.json`` and ``eval/eval_prompt.json`` in
https://github.com/LianjiaTech/BELLE):

- the eval set: ~1,000 rows of ``{"question", "class", "std_answer"}``;
- the prompts: one ``{"class", "prompt"}`` row per class, telling GPT-4/ChatGPT how to grade
  that class and to answer with ``得分:``.

The two files do not spell the classes the same way: the eval set says ``open qa`` and
``closed\\xa0qa`` (a no-break space), the prompt file ``open QA`` and ``closed\\xa0QA``; the
prompt file also has a ``translation`` class that no question uses. So classes are matched
on a normalized name: Unicode NFKC (which turns the no-break space into a space), every run of
whitespace collapsed to one space, case folded. A question whose class has no prompt is an
error naming the class and its line, never a silent skip.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from belle_hf.data.files import iter_records
from belle_hf.errors import BelleError, DataFormatError

OTHERS_CLASSES = ("math", "code")
"""Classes the BELLE papers report apart as "others": ``score_wo_others`` leaves them out."""


def normalize_class(name: str) -> str:
    """The name a class is matched and reported by: NFKC, whitespace collapsed, case folded.

    >>> normalize_class("closed\\xa0QA ")
    'closed qa'
    """
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", name)).strip().casefold()


@dataclass(frozen=True)
class EvalQuestion:
    """One row of the eval set."""

    question: str
    class_name: str
    """The class exactly as written in the file."""
    std_answer: str
    """The reference answer; empty for classes graded without one (generation, brainstorming, ...)."""
    location: str = ""
    """``file:line`` the row came from, for error messages."""

    @property
    def category(self) -> str:
        """The normalized class (see :func:`normalize_class`)."""
        return normalize_class(self.class_name)

    def as_row(self) -> dict[str, str]:
        return {"question": self.question, "class": self.class_name, "std_answer": self.std_answer}


def _require_text(record: Any, field: str, location: str, *, allow_empty: bool = False) -> str:
    if not isinstance(record, dict):
        raise DataFormatError("expected a JSON object", location=location)
    value = record.get(field)
    if value is None and allow_empty:
        return ""
    if not isinstance(value, str):
        raise DataFormatError(f"missing or not a string (got {type(value).__name__})", location=location, field=field)
    if not allow_empty and not value.strip():
        raise DataFormatError("is empty", location=location, field=field)
    return value


def question_from_record(record: Any, location: str) -> EvalQuestion:
    """Read one eval-set row (``question``, ``class``, ``std_answer`` which may be empty)."""
    return EvalQuestion(
        question=_require_text(record, "question", location),
        class_name=_require_text(record, "class", location),
        std_answer=_require_text(record, "std_answer", location, allow_empty=True),
        location=location,
    )


def load_eval_set(path: str | os.PathLike) -> list[EvalQuestion]:
    """Every row of an eval-set file (JSON Lines or a JSON array), with its location."""
    questions = [question_from_record(record, location) for location, record in iter_records(path)]
    if not questions:
        raise BelleError(f"{path}: the eval set is empty")
    return questions


@dataclass(frozen=True)
class JudgePrompt:
    """The grading instruction of one class."""

    class_name: str
    """As written in the prompt file."""
    prompt: str


class JudgePrompts:
    """The prompt file: one grading prompt per class, looked up by normalized class name."""

    def __init__(self, prompts: Iterable[JudgePrompt], source: str = "<memory>", sha256: str | None = None):
        self.source = source
        self.sha256 = sha256
        self.by_category: dict[str, JudgePrompt] = {}
        for prompt in prompts:
            category = normalize_class(prompt.class_name)
            if category in self.by_category and self.by_category[category].prompt != prompt.prompt:
                raise BelleError(f"{source}: classes {self.by_category[category].class_name!r} and "
                                 f"{prompt.class_name!r} are the same class with different prompts")
            self.by_category[category] = prompt
        if not self.by_category:
            raise BelleError(f"{source}: no prompts")

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "JudgePrompts":
        """Read a prompt file (BELLE's ``eval_prompt.json``: JSON Lines of ``class``, ``prompt``)."""
        path = Path(path)
        prompts = [JudgePrompt(_require_text(record, "class", location), _require_text(record, "prompt", location))
                   for location, record in iter_records(path)]
        return cls(prompts, source=str(path), sha256=file_sha256(path))

    @property
    def categories(self) -> list[str]:
        return sorted(self.by_category)

    def resolve(self, class_name: str, location: str = "") -> JudgePrompt:
        """The prompt of ``class_name``; raises a :class:`BelleError` naming it when there is none."""
        prompt = self.by_category.get(normalize_class(class_name))
        if prompt is None:
            where = f"{location}: " if location else ""
            raise BelleError(f"{where}class {class_name!r} has no judge prompt in {self.source} "
                             f"(classes there: {', '.join(self.categories)})")
        return prompt

    def check_covers(self, questions: Iterable[EvalQuestion]) -> None:
        """Raise at the first question whose class has no prompt."""
        for question in questions:
            self.resolve(question.class_name, question.location)


def file_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
