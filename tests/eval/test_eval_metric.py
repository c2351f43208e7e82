"""The judge as an ``evaluate`` metric, loaded with ``evaluate.load`` from its folder or file."""

from __future__ import annotations

from pathlib import Path

import evaluate
import pytest

from belle_hf.eval import metric_path
from belle_hf.testing.openai_server import FakeOpenAIServer

from evalkit import EVAL_SET, judge_responder

SECRET = "sk-metric-SECRET-1234abcd"
ANSWERS = ["SCORE=1", "SCORE=0.5", "SCORE=0.8", "不会", "SCORE=0.2", "SCORE=0.6"]


def inputs():
    return {"predictions": ANSWERS, "references": [r["std_answer"] for r in EVAL_SET],
            "questions": [r["question"] for r in EVAL_SET], "classes": [r["class"] for r in EVAL_SET]}


@pytest.mark.parametrize("where", ["folder", "file"])
def test_metric_loads_with_evaluate_and_scores(where, prompts_file, tmp_path):
    path = metric_path() if where == "file" else str(Path(metric_path()).parent)
    metric = evaluate.load(path, cache_dir=str(tmp_path / "evaluate-cache"))
    with FakeOpenAIServer(responder=judge_responder) as server:
        result = metric.compute(**inputs(), prompts=str(prompts_file), base_url=server.base_url, model="gpt-4",
                                api_key=SECRET, concurrency=3, cache_dir=str(tmp_path / "judge-cache"))
        assert len(server.completion_requests()) == 6
    assert result["scores"] == [1.0, 0.5, 0.8, None, 0.2, 0.6]
    assert (result["n"], result["n_scored"], result["n_failed"]) == (6, 5, 1)
    assert result["overall"] == pytest.approx((1 + 0.5 + 0.8 + 0.2 + 0.6) / 5)
    assert result["per_class"] == pytest.approx({"math": 1.0, "code": 0.5, "open qa": 0.8, "closed qa": 0.2,
                                                 "generation": 0.6})
    assert result["score_wo_others"] == pytest.approx((0.8 + 0.2 + 0.6) / 3)
    assert result["usage"]["requests_sent"] == 6 and result["usage"]["total_tokens"] > 0
    assert result["judge"]["model"] == "gpt-4" and SECRET not in repr(result)
    written = [file for file in (tmp_path / "judge-cache").rglob("*") if file.is_file()]
    assert written  # compute(cache_dir=...) reached the judge's response cache
    for file in written:
        assert SECRET.encode() not in file.read_bytes()


def test_metric_endpoint_settings_at_load_and_cache_reuse(prompts_file, tmp_path):
    with FakeOpenAIServer(responder=judge_responder) as server:
        metric = evaluate.load(metric_path(), cache_dir=str(tmp_path / "evaluate-cache"), prompts=str(prompts_file),
                               base_url=server.base_url, model="gpt-4", api_key=SECRET,
                               cache_dir_judge=str(tmp_path / "judge-cache"))
        first = metric.compute(**inputs())
        second = metric.compute(**inputs())
        assert len(server.completion_requests()) == 6  # the second compute is served from the cache
    assert first["scores"] == second["scores"] and second["usage"]["cache_hits"] == 6


def test_metric_rejects_unknown_class_and_missing_settings(prompts_file, tmp_path):
    metric = evaluate.load(metric_path(), cache_dir=str(tmp_path / "evaluate-cache"))
    with pytest.raises(Exception, match="needs prompts, base_url, model"):
        metric.compute(**inputs())
    bad = inputs()
    bad["classes"] = bad["classes"][:-1] + ["poetry"]
    with FakeOpenAIServer(responder=judge_responder) as server:
        with pytest.raises(Exception, match="class 'poetry' has no judge prompt"):
            metric.compute(**bad, prompts=str(prompts_file), base_url=server.base_url, model="gpt-4")
        assert server.completion_requests() == []
