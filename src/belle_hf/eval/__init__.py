"""Evaluating chat models the BELLE way: GPT-4 (or any OpenAI-compatible model) grades answers to
BELLE's ~1,000 Chinese eval questions with one prompt per class.

- :mod:`~belle_hf.eval.eval_set`: the eval set, the judge prompts and class resolution;
- :mod:`~belle_hf.eval.judge`: judging answers (concurrent, cached, resumable) and summaries;
- :mod:`~belle_hf.eval.generate`: answering the eval set with a local model or an endpoint;
- :mod:`~belle_hf.eval.report`: Markdown/JSON tables and a bar chart comparing models;
- :mod:`~belle_hf.eval.page`: the single-question scoring web page;
- ``metric/``: the same judge as an ``evaluate`` metric (see :func:`metric_path`).
"""

from __future__ import annotations

from pathlib import Path

from belle_hf.eval.eval_set import (OTHERS_CLASSES, EvalQuestion, JudgePrompt, JudgePrompts, load_eval_set,
                                    normalize_class)
from belle_hf.eval.judge import Judge, judge_file, judge_rows, load_answers, summarize
from belle_hf.eval.request import build_judge_messages, build_judge_prompt
from belle_hf.eval.scores import parse_score


def metric_path() -> str:
    """Path of the ``evaluate`` metric script: ``evaluate.load(metric_path())``."""
    return str(Path(__file__).resolve().parent / "metric" / "metric.py")


__all__ = [
    "OTHERS_CLASSES",
    "EvalQuestion",
    "Judge",
    "JudgePrompt",
    "JudgePrompts",
    "build_judge_messages",
    "build_judge_prompt",
    "judge_file",
    "judge_rows",
    "load_answers",
    "load_eval_set",
    "metric_path",
    "normalize_class",
    "parse_score",
    "summarize",
]
