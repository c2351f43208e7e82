"""Reading scores out of judge replies."""

from __future__ import annotations

import pytest

from belle_hf.eval import parse_score


@pytest.mark.parametrize("reply, score", [
    ("得分:0.8", 0.8),
    ("得分：0.8", 0.8),
    ("得分: 0.8分", 0.8),
    ("得分: 1分。模型回答与标准答案完全一致，翻译准确无误。", 1.0),
    ("模型回答有误，计算结果不对。\n得分：0", 0.0),
    ("理由：回答部分正确，但遗漏了要点。最终得分：0.5分", 0.5),
    ("0.8", 0.8),
    ("0.8分", 0.8),
    ("０.８", 0.8),
    ("得分：１分", 1.0),
    ("得分为0.7", 0.7),
    ("Score: 0.9", 0.9),
    ("得分: 8/10", 0.8),
    ("得分: 80%", 0.8),
    ("该回答写得不错，可以给0.6分。", 0.6),
    ("得分: 0.2\n理由: 该回答的得分依据是标准答案。", 0.2),
])
def test_readable_scores(reply, score):
    assert parse_score(reply) == pytest.approx(score)


@pytest.mark.parametrize("reply", [
    None, "", "这个回答我无法评价。", "得分: 8", "满分为1分，最低分为0分。", "请按照\"得分:\"这样的形式输出分数",
    "得分: -0.5",
])
def test_unreadable_scores_are_none_never_zero(reply):
    assert parse_score(reply) is None
