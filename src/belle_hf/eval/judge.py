"""GPT-4-as-judge: score every answer with its class prompt on any OpenAI-compatible endpoint.

The requests go through :class:`belle_hf.llm.ChatClient` (bounded concurrency, retries with
backoff and jitter, an on-disk cache keyed by model and full request, token/cost usage).
Replies are read with :func:`belle_hf.eval.scores.parse_score`; an unreadable reply or a
request that failed after its retries scores ``None`` and counts in ``n_failed``, never as 0.
Failed requests are not cached, so a rerun asks again; everything answered is never resent.

>>> from belle_hf.llm import EndpointConfig
>>> endpoint = EndpointConfig("https://api.openai.com/v1", "gpt-4", api_key_env="OPENAI_API_KEY")
>>> summary = judge_file("answers.jsonl", "eval_prompt.json", endpoint, "judged.jsonl", "summary.json")
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from belle_hf.data.files import iter_records
from belle_hf.errors import BelleError, ConfigError, DataFormatError
from belle_hf.eval.eval_set import OTHERS_CLASSES, JudgePrompts, _require_text, normalize_class
from belle_hf.eval.request import build_judge_messages
from belle_hf.eval.resumable import ResumableJsonl, row_key
from belle_hf.eval.scores import parse_score
from belle_hf.hub.lineage import attach_evaluation
from belle_hf.interrupts import resume_hint
from belle_hf.io import atomic_write_text, check_output_is_not_input
from belle_hf.llm import ChatClient, ChatResult, EndpointConfig

logger = logging.getLogger(__name__)


@dataclass
class AnswerRow:
    """One answer to judge: the eval-set row plus the model's ``answer``."""

    question: str
    class_name: str
    std_answer: str
    answer: str
    extra: dict[str, Any] = field(default_factory=dict)
    """Any other fields of the input row, passed through to the output."""
    location: str = ""

    @classmethod
    def from_record(cls, record: Any, location: str = "") -> "AnswerRow":
        question = _require_text(record, "question", location)
        class_name = _require_text(record, "class", location)
        std_answer = _require_text(record, "std_answer", location, allow_empty=True)
        answer = record.get("answer")
        if not isinstance(answer, str):
            raise DataFormatError(f"missing or not a string (got {type(answer).__name__})",
                                  location=location, field="answer")
        extra = {k: v for k, v in record.items()
                 if k not in ("question", "class", "std_answer", "answer", "score", "judge_output", "judge_error")}
        return cls(question, class_name, std_answer, answer, extra, location)

    def as_row(self) -> dict[str, Any]:
        return {"question": self.question, "class": self.class_name, "std_answer": self.std_answer,
                "answer": self.answer, **self.extra}


def load_answers(path: str | os.PathLike) -> list[AnswerRow]:
    """Read an answers file (JSON Lines): ``question``, ``class``, ``std_answer``, ``answer``."""
    rows = [AnswerRow.from_record(record, location) for location, record in iter_records(path)]
    if not rows:
        raise BelleError(f"{path}: no answers to judge")
    return rows


def judged_row(row: AnswerRow, result: ChatResult) -> dict[str, Any]:
    """The output row: the input plus ``score`` (float or ``None``) and ``judge_output`` (raw text).

    A request that failed after its retries also gets ``judge_error`` saying why.
    """
    out = {**row.as_row(), "score": parse_score(result.text) if result.ok else None,
           "judge_output": result.text if result.ok else None}
    if not result.ok:
        out["judge_error"] = result.error
    return out


def judge_info(endpoint: EndpointConfig, prompts: JudgePrompts) -> dict[str, Any]:
    """What produced the scores, recorded in every summary (never the key)."""
    return {**endpoint.public_dict(), "prompt_file": prompts.source, "prompt_file_sha256": prompts.sha256}


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means over the scored rows: overall, per class (normalized name), and BELLE's
    ``score_wo_others`` (all classes but math and code); ``None`` where nothing was scored.

    ``n_failed`` counts rows without a score: ``n_request_failed`` (no reply after retries)
    plus ``n_unreadable`` (a reply without a readable score). Means are over rows (micro).
    """
    scores_by_class: dict[str, list[float]] = {}
    n_by_class: dict[str, int] = {}
    for row in rows:
        category = normalize_class(row["class"])
        n_by_class[category] = n_by_class.get(category, 0) + 1
        scores_by_class.setdefault(category, [])
        if row.get("score") is not None:
            scores_by_class[category].append(float(row["score"]))

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    scored = [s for values in scores_by_class.values() for s in values]
    request_failed = sum(1 for row in rows if row.get("judge_error"))
    others = [s for c, values in scores_by_class.items() if c in OTHERS_CLASSES for s in values]
    without_others = [s for c, values in scores_by_class.items() if c not in OTHERS_CLASSES for s in values]
    return {
        "n": len(rows),
        "n_scored": len(scored),
        "n_failed": len(rows) - len(scored),
        "n_request_failed": request_failed,
        "n_unreadable": len(rows) - len(scored) - request_failed,
        "overall": mean(scored),
        "per_class": {c: mean(scores_by_class[c]) for c in sorted(scores_by_class)},
        "score_wo_others": mean(without_others),
        "others": mean(others),
        "per_class_n": {c: {"n": n_by_class[c], "n_scored": len(scores_by_class[c])} for c in sorted(n_by_class)},
    }


class Judge:
    """Judges answers with one endpoint and one prompt file; reusable across calls."""

    def __init__(self, prompts: JudgePrompts, endpoint: EndpointConfig, cache_dir: str | os.PathLike | None = None):
        self.prompts = prompts
        self.endpoint = endpoint
        self.client = ChatClient(endpoint, cache_dir=cache_dir)

    def messages(self, row: AnswerRow) -> list[dict[str, str]]:
        prompt = self.prompts.resolve(row.class_name, row.location)
        return build_judge_messages(prompt, row.question, row.std_answer, row.answer)

    def judge_one(self, row: AnswerRow) -> dict[str, Any]:
        return judged_row(row, self.client.complete(self.messages(row)))

    def judge_many(self, rows: Sequence[AnswerRow], on_row: Callable[[int, dict[str, Any], ChatResult], None] | None = None,
                   progress: str | None = None) -> list[dict[str, Any]]:
        """Judge every row (every class resolved before anything is sent); ``on_row(index, judged,
        result)`` is called as each finishes."""
        requests = [self.messages(row) for row in rows]
        judged: list[dict[str, Any] | None] = [None] * len(rows)

        def finished(index: int, result: ChatResult) -> None:
            judged[index] = judged_row(rows[index], result)
            if on_row is not None:
                on_row(index, judged[index], result)

        self.client.complete_many(requests, on_result=finished, progress=progress)
        return judged  # type: ignore[return-value]

    def summary(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {**summarize(rows), "usage": self.client.usage.as_dict(), "judge": judge_info(self.endpoint, self.prompts)}


def judge_file(
    answers: str | os.PathLike,
    prompts: str | os.PathLike | JudgePrompts,
    endpoint: EndpointConfig,
    output: str | os.PathLike,
    summary: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    max_failed: float = 1.0,
) -> dict[str, Any]:
    """Judge an answers file into ``output`` (JSON Lines) and ``summary`` (JSON); returns the summary.

    Resumable: judged rows are appended to ``output.partial`` as they arrive and every reply
    is cached (default cache: ``<output>.cache/`` beside the output), so a killed run picks up
    where it stopped and sends no answered request again. ``output`` and ``summary`` are
    written atomically at the end. An interrupt (Ctrl-C, SIGTERM) stops sending at once and
    keeps every reply received (see :meth:`belle_hf.llm.ChatClient.complete_many`).

    Rows without a score (the request failed after its retries, or the reply had no readable
    score) are counted and logged. When nothing was scored, or more than ``max_failed`` (a
    fraction, 0 to 1) of the rows have no score, a :class:`BelleError` is raised after the
    outputs are written: such a run must not pass for a finished evaluation.
    """
    output = Path(output)
    if not 0 <= max_failed <= 1:
        raise ConfigError("max_failed", f"must be a fraction from 0 to 1, not {max_failed}")
    check_output_is_not_input(output, [answers, None if isinstance(prompts, JudgePrompts) else prompts])
    if summary is not None:
        check_output_is_not_input(summary, [answers, output, None if isinstance(prompts, JudgePrompts) else prompts])
    if not isinstance(prompts, JudgePrompts):
        prompts = JudgePrompts.from_file(prompts)
    rows = load_answers(answers)
    cache_dir = Path(cache_dir) if cache_dir is not None else output.with_name(output.name + ".cache")
    judge = Judge(prompts, endpoint, cache_dir=cache_dir)
    keys = [row_key(i, endpoint.model, judge.client.request_body(judge.messages(row))) for i, row in enumerate(rows)]
    store = ResumableJsonl(output)
    todo = [i for i, key in enumerate(keys) if store.get(key) is None]
    if len(todo) < len(rows):
        logger.info("resuming: %d of %d rows already judged", len(rows) - len(todo), len(rows))

    def keep(index: int, judged: dict[str, Any], result: ChatResult) -> None:
        if result.ok:  # failed requests are retried by the next run
            store.add(keys[todo[index]], judged)

    with resume_hint(lambda: f"{sum(store.get(key) is not None for key in keys)} of {len(rows)} rows judged and kept in {store.partial} "
                             f"(replies cached in {cache_dir}); rerun the same command to judge the rest"):
        fresh = judge.judge_many([rows[i] for i in todo], on_row=keep, progress="judging" if progress else None)
    by_index = dict(zip(todo, fresh))
    judged = [by_index[i] if i in by_index else store.get(keys[i]) for i in range(len(rows))]
    result = judge.summary(judged)
    result["usage"]["resumed_rows"] = len(rows) - len(todo)
    store.finish(judged)
    if summary is not None:
        atomic_write_text(summary, json.dumps(result, ensure_ascii=False, indent=2) + "\n")
        attach_evaluation(Path(summary).parent, summary=summary)  # a summary saved in a model folder is its score
    check_failures(judged, result, max_failed)
    return result


def check_failures(judged: Sequence[dict[str, Any]], summary: dict[str, Any], max_failed: float) -> None:
    """Log rows without a score; raise when nothing was scored or more than ``max_failed`` of
    the rows failed."""
    n, failed = summary["n"], summary["n_failed"]
    if not failed:
        return
    errors = sorted({row["judge_error"] for row in judged if row.get("judge_error")})
    why = (f"{summary['n_request_failed']} requests failed ({'; '.join(errors[:3])}), "
           f"{summary['n_unreadable']} replies had no readable score")
    if summary["n_scored"] == 0:
        raise BelleError(f"no answer was scored: {why}; rerun the same command to retry the failed requests")
    if failed > max_failed * n:
        raise BelleError(f"{failed} of {n} answers were not scored, more than max_failed={max_failed:g} allows: "
                         f"{why}; rerun the same command to retry the failed requests")
    logger.warning("%d of %d answers were not scored: %s", failed, n, why)


def judge_rows(
    rows: Iterable[dict[str, Any]],
    prompts: str | os.PathLike | JudgePrompts,
    endpoint: EndpointConfig,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Judge in-memory rows (``question``, ``class``, ``std_answer``, ``answer``); returns the
    judged rows and the summary. Used by the ``evaluate`` metric."""
    if not isinstance(prompts, JudgePrompts):
        prompts = JudgePrompts.from_file(prompts)
    answer_rows = [AnswerRow.from_record(row, f"row {i}") for i, row in enumerate(rows)]
    judge = Judge(prompts, endpoint, cache_dir=cache_dir)
    judged = judge.judge_many(answer_rows, progress="judging" if progress else None)
    return judged, judge.summary(judged)
