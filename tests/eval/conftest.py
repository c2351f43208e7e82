"""Fixtures of the eval tests: synthetic eval set, prompt and answer files written per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit import EVAL_SET, PROMPTS, answers_for, write_jsonl

@pytest.fixture
def prompts_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "eval_prompt.json", PROMPTS)

@pytest.fixture
def eval_set_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "eval_set.json", EVAL_SET)

@pytest.fixture
def answers_file(tmp_path) -> Path:
    """Answers that tell the stand-in judge what to reply (see :func:`judge_responder`)."""
    answers = ["SCORE=1", "SCORE=0.5", "SCORE=0.8", "UNREADABLE", "SCORE=0", "SCORE=0.6"]
    return write_jsonl(tmp_path / "answers.jsonl", answers_for(EVAL_SET, answers))
