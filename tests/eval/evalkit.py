"""Synthetic BELLE-like eval files (with the real files' quirks) and a stand-in judge, shared by the eval tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

NBSP = "\u00a0"

# Like BELLE's eval_prompt.json: the prompt file spells classes differently from the eval set,
# and has a class (translation) that no question uses.
PROMPTS = [
    {"class": "math", "prompt": "你是一个数学老师，判断模型回答是否正确，分数在0到1之间。请按照\"得分:\"这样的形式输出分数。"},
    {"class": "code", "prompt": "你是一个计算机科学老师，判断模型回答能否解决该问题。请按照\"得分:\"这样的形式输出分数。"},
    {"class": "open QA", "prompt": "你需要通过参考标准答案，来对模型回答给出分数。请按照\"得分:\"这样的形式输出分数。"},
    {"class": f"closed{NBSP}QA", "prompt": "参考标准答案，模型回答结果来自问题里面提供的信息。请按照\"得分:\"这样的形式输出分数。"},
    {"class": "generation", "prompt": "你需要研究评价标准来对模型回答给出分数。请按照\"得分:\"这样的形式输出分数。"},
    {"class": "translation", "prompt": "假设你是一个语言学家，请按照\"得分:\"这样的形式输出分数。"},
]

EVAL_SET = [
    {"question": "1+1等于几？", "std_answer": "2", "class": "math"},
    {"question": "写一个Python函数，返回两数之和。", "std_answer": "def add(a, b):\n    return a + b", "class": "code"},
    {"question": "中国的首都是哪里？", "std_answer": "北京", "class": "open qa"},
    {"question": "太阳从哪边升起？", "std_answer": "东边", "class": "Open  QA "},
    {"question": "根据下文回答：小明有三个苹果。小明有几个苹果？", "std_answer": "三个", "class": f"closed{NBSP}qa"},
    {"question": "写一首关于春天的短诗。", "std_answer": "", "class": "generation"},
]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def answers_for(rows, answers):
    return [{**row, "answer": answer} for row, answer in zip(rows, answers)]


def answer_in(body) -> str:
    """The model answer inside a judge request."""
    return body["messages"][-1]["content"].rsplit("模型回答:\n", 1)[-1]


def judge_responder(body) -> str:
    """A stand-in judge: ``SCORE=x`` in the answer makes it reply with score x (in one of several
    layouts); anything else gets a reply without a score."""
    answer = answer_in(body)
    match = re.search(r"SCORE=(\S+)", answer)
    if not match:
        return "这个回答我无法评价。"
    value = match.group(1)
    layouts = [f"得分：{value}分\n理由：测试。", f"理由：回答基本正确。\n得分: {value}", f"{value}"]
    return layouts[len(answer) % len(layouts)]
