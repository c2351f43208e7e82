"""Class resolution between the eval set and the judge prompts, and the judge request layout."""

from __future__ import annotations

import json

import pytest

from belle_hf.errors import BelleError, DataFormatError
from belle_hf.eval import JudgePrompt, JudgePrompts, build_judge_prompt, load_eval_set, normalize_class

from evalkit import EVAL_SET, NBSP, write_jsonl


@pytest.mark.parametrize("name, expected", [
    ("open qa", "open qa"), ("open QA", "open qa"), ("Open  QA ", "open qa"), (f"closed{NBSP}QA", "closed qa"),
    ("closed\tqa", "closed qa"), ("ＭＡＴＨ", "math"),
])
def test_normalize_class(name, expected):
    assert normalize_class(name) == expected


def test_every_synthetic_question_resolves_across_spellings(prompts_file, eval_set_file):
    prompts = JudgePrompts.from_file(prompts_file)
    questions = load_eval_set(eval_set_file)
    prompts.check_covers(questions)
    resolved = [prompts.resolve(q.class_name).class_name for q in questions]
    assert resolved == ["math", "code", "open QA", "open QA", f"closed{NBSP}QA", "generation"]
    assert len(prompts.sha256) == 64


def test_unknown_class_is_an_error_naming_class_and_line(prompts_file, tmp_path):
    path = write_jsonl(tmp_path / "eval.jsonl", EVAL_SET + [{"question": "你好", "std_answer": "", "class": "chitchat"}])
    prompts = JudgePrompts.from_file(prompts_file)
    with pytest.raises(BelleError, match=r"eval\.jsonl:7: class 'chitchat' has no judge prompt") as error:
        prompts.check_covers(load_eval_set(path))
    assert "open qa" in str(error.value)  # lists the classes that do exist


def test_conflicting_duplicate_classes_and_bad_rows_are_errors(tmp_path):
    with pytest.raises(BelleError, match="same class with different prompts"):
        JudgePrompts([JudgePrompt("open QA", "a"), JudgePrompt("open qa", "b")])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "std_answer": ""}, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.jsonl:1: field 'class'"):
        load_eval_set(bad)


def test_reference_is_included_only_where_there_is_one():
    prompt = JudgePrompt("math", "请打分。")
    with_reference = build_judge_prompt(prompt, "1+1=?", "2", "答案是2")
    without = build_judge_prompt(prompt, "写诗", "  ", "春风")
    assert with_reference == "请打分。\n\n问题:\n1+1=?\n\n标准回答:\n2\n\n模型回答:\n答案是2"
    assert without == "请打分。\n\n问题:\n写诗\n\n模型回答:\n春风"


def test_belle_real_files_every_question_resolves(shared_data):
    prompts = JudgePrompts.from_file(shared_data / "belle_eval" / "eval_prompt.json")
    questions = load_eval_set(shared_data / "belle_eval" / "eval_set.json")
    assert len(questions) == 1000
    prompts.check_covers(questions)
    used = {q.category for q in questions}
    assert used == set(prompts.categories) - {"translation"}  # translation has a prompt but no questions
    # The real files spell some classes differently; resolution must bridge that.
    assert {q.class_name for q in questions} != {p.class_name for p in prompts.by_category.values()}
    no_reference = {q.category for q in questions if not q.std_answer.strip()}
    assert no_reference == {"brainstorming", "generation", "rewrite"}
    for q in questions:
        text = build_judge_prompt(prompts.resolve(q.class_name), q.question, q.std_answer, "回答")
        assert ("标准回答:" in text) == bool(q.std_answer.strip())
