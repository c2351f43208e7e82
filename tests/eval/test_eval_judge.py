"""``belle eval judge`` against a loopback OpenAI-compatible server that delays, fails and babbles."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from belle_hf.eval import judge_rows
from belle_hf.llm import EndpointConfig
from belle_hf.testing.openai_server import FakeOpenAIServer

from evalkit import EVAL_SET, answer_in, answers_for, judge_responder, write_jsonl

SECRET = "sk-judge-SECRET-9f8e7d6c5b4a"
SUMMARY_KEYS = {"n", "n_scored", "n_failed", "overall", "per_class", "score_wo_others", "usage", "judge"}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def judge_args(answers, prompts, server, out_dir: Path, *extra: str) -> list[str]:
    return ["eval", "judge", "--answers", str(answers), "--prompts", str(prompts), "--base-url", server.base_url,
            "--model", "gpt-4", "-o", str(out_dir / "judged.jsonl"), "--summary", str(out_dir / "summary.json"),
            *extra]


def assert_no_secret(root: Path, *texts: str) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"key leaked into {path}"
    for text in texts:
        assert SECRET not in text


def test_judge_cli_contract(run_belle, answers_file, prompts_file, tmp_path):
    out = tmp_path / "out"
    with FakeOpenAIServer(responder=judge_responder) as server:
        code, stdout, stderr = run_belle(*judge_args(answers_file, prompts_file, server, out,
                                                     "--api-key", SECRET, "--concurrency", "3"))
    assert code == 0, stderr
    rows = read_jsonl(out / "judged.jsonl")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    inputs = read_jsonl(answers_file)
    assert [{k: r[k] for k in ("question", "class", "std_answer", "answer")} for r in rows] == inputs
    assert [r["score"] for r in rows] == [1.0, 0.5, 0.8, None, 0.0, 0.6]
    assert rows[3]["judge_output"] == "这个回答我无法评价。"
    assert all(r["judge_output"] == judge_responder({"messages": [{"content": "模型回答:\n" + r["answer"]}]})
               for r in rows)
    assert SUMMARY_KEYS <= set(summary)
    scored = [r["score"] for r in rows if r["score"] is not None]
    assert (summary["n"], summary["n_scored"], summary["n_failed"]) == (6, 5, 1)
    assert summary["overall"] == pytest.approx(sum(scored) / len(scored))
    assert summary["per_class"] == pytest.approx({"math": 1.0, "code": 0.5, "open qa": 0.8, "closed qa": 0.0,
                                                  "generation": 0.6})
    assert summary["score_wo_others"] == pytest.approx((0.8 + 0.0 + 0.6) / 3)  # math and code left out
    assert summary["judge"]["model"] == "gpt-4" and summary["judge"]["temperature"] == 0
    assert summary["judge"]["prompt_file_sha256"] and summary["judge"]["seed"] == 42
    assert summary["usage"]["requests_sent"] == 6 and summary["usage"]["total_tokens"] > 0
    assert summary["usage"]["estimated_cost_usd"] > 0
    # temperature 0 and the seed are sent; the reference only where the row has one.
    bodies = {answer_in(r.body): r.body for r in server.completion_requests()}
    assert all(b["temperature"] == 0 and b["seed"] == 42 and b["model"] == "gpt-4" for b in bodies.values())
    assert "标准回答:" not in bodies["SCORE=0.6"]["messages"][0]["content"]
    assert "标准回答:\n北京" in bodies["SCORE=0.8"]["messages"][0]["content"]
    assert_no_secret(tmp_path, stdout, stderr)
    assert all(r.authorization == f"Bearer {SECRET}" for r in server.requests)


def test_faults_are_retried_failures_null_counted_and_retried_on_rerun(run_belle, answers_file, prompts_file,
                                                                       tmp_path, monkeypatch):
    monkeypatch.setenv("BELLE_JUDGE_TEST_KEY", SECRET)
    # Row 0 (SCORE=1): 429 then 500 then fine. Row 1 (SCORE=0.5): hangs once past the timeout.
    # Row 2 (SCORE=0.8): a 200 that is not JSON once (not retried: a failure of this run).
    # Row 5 (SCORE=0.6): always 500.
    broken = {"SCORE=0.6"}
    plans = {"SCORE=1": {1: "429", 2: "500"}, "SCORE=0.5": {1: "hang"}, "SCORE=0.8": {1: "garbage"}}

    def faults(attempt, body):
        answer = answer_in(body)
        if answer in broken:
            return "500"
        return plans.get(answer, {}).get(attempt)

    out = tmp_path / "out"
    with FakeOpenAIServer(responder=judge_responder, faults=faults, hang_seconds=3) as server:
        args = judge_args(answers_file, prompts_file, server, out, "--api-key-env", "BELLE_JUDGE_TEST_KEY",
                          "--max-retries", "2", "--timeout", "1", "--concurrency", "4")
        code, stdout, stderr = run_belle(*args)
        assert code == 0, stderr
        rows = read_jsonl(out / "judged.jsonl")
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        assert [r["score"] for r in rows] == [1.0, 0.5, None, None, 0.0, None]
        assert rows[5]["judge_output"] is None and "500" in rows[5]["judge_error"]
        assert "unreadable response" in rows[2]["judge_error"]
        assert rows[3]["judge_output"] == "这个回答我无法评价。" and "judge_error" not in rows[3]
        assert (summary["n_failed"], summary["n_request_failed"], summary["n_unreadable"]) == (3, 2, 1)
        assert summary["per_class"]["generation"] is None
        attempts = {}
        for request in server.completion_requests():
            attempts[answer_in(request.body)] = attempts.get(answer_in(request.body), 0) + 1
        # Retries are bounded: 1 try + 2 retries for the always-failing row.
        assert attempts == {"SCORE=1": 3, "SCORE=0.5": 2, "SCORE=0.8": 1, "UNREADABLE": 1, "SCORE=0": 1,
                            "SCORE=0.6": 3}
        # The endpoint recovers: a rerun asks only for the failed rows (failures are not cached).
        broken.clear()
        before = len(server.completion_requests())
        code, _, stderr = run_belle(*args)
        assert code == 0, stderr
        again = server.completion_requests()[before:]
        assert sorted(answer_in(r.body) for r in again) == ["SCORE=0.6", "SCORE=0.8"]
        assert [r["score"] for r in read_jsonl(out / "judged.jsonl")] == [1.0, 0.5, 0.8, None, 0.0, 0.6]
    assert_no_secret(tmp_path, stdout, stderr)


def test_killed_run_resumes_without_resending_answered_requests(prompts_file, tmp_path):
    n = 40
    rows = [{**EVAL_SET[i % len(EVAL_SET)], "answer": f"SCORE=0.{i % 10} 第{i}个回答"} for i in range(n)]
    answers = write_jsonl(tmp_path / "answers.jsonl", rows)
    out = tmp_path / "out"
    env = {**os.environ, "BELLE_JUDGE_TEST_KEY": SECRET}
    with FakeOpenAIServer(responder=judge_responder, latency=0.05) as server:
        command = [sys.executable, "-m", "belle_hf.cli",
                   *judge_args(answers, prompts_file, server, out, "--api-key-env", "BELLE_JUDGE_TEST_KEY",
                               "--concurrency", "2")]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        partial = out / "judged.jsonl.partial"
        deadline = time.monotonic() + 60
        while not (partial.exists() and len(partial.read_text(encoding="utf-8").splitlines()) >= 10):
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert not (out / "judged.jsonl").exists() and not (out / "summary.json").exists()
        done_at_kill = {json.loads(line)["row"]["answer"] for line in partial.read_text(encoding="utf-8").splitlines()}
        sent_before = len(server.answered_requests())
        assert 10 <= len(done_at_kill) < n
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        resent = [answer_in(r.body) for r in server.answered_requests()[sent_before:]]
    # Nothing judged before the kill is asked again; the rest is asked once. (Requests that were
    # in flight at the kill never reached the client and are asked again, as they must be.)
    assert not done_at_kill & set(resent)
    assert len(resent) == len(set(resent)) and done_at_kill | set(resent) == {r["answer"] for r in rows}
    judged = read_jsonl(out / "judged.jsonl")
    assert [r["answer"] for r in judged] == [r["answer"] for r in rows]
    assert [r["score"] for r in judged] == [int(r["answer"][8]) / 10 for r in rows]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["n_scored"] == n and summary["usage"]["requests_sent"] + summary["usage"]["cache_hits"] \
        + summary["usage"]["resumed_rows"] == n
    assert not (out / "judged.jsonl.partial").exists()
    assert_no_secret(tmp_path, result.stdout, result.stderr)


def test_unknown_class_fails_before_any_request(run_belle, prompts_file, tmp_path):
    answers = write_jsonl(tmp_path / "answers.jsonl",
                          answers_for(EVAL_SET + [{"question": "q", "std_answer": "", "class": "poetry"}], ["x"] * 7))
    with FakeOpenAIServer(responder=judge_responder) as server:
        code, _, stderr = run_belle(*judge_args(answers, prompts_file, server, tmp_path))
        assert code == 1 and "answers.jsonl:7: class 'poetry' has no judge prompt" in stderr
        assert server.completion_requests() == []
    assert not (tmp_path / "judged.jsonl").exists()


def test_rerun_of_a_finished_run_sends_nothing(run_belle, answers_file, prompts_file, tmp_path):
    with FakeOpenAIServer(responder=judge_responder) as server:
        args = judge_args(answers_file, prompts_file, server, tmp_path, "--cache", str(tmp_path / "cache"))
        assert run_belle(*args)[0] == 0
        first = (tmp_path / "judged.jsonl").read_text(encoding="utf-8")
        assert run_belle(*args)[0] == 0
        assert len(server.completion_requests()) == 6
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["usage"]["requests_sent"] == 0 and summary["usage"]["cache_hits"] == 6
    assert (tmp_path / "judged.jsonl").read_text(encoding="utf-8") == first


def test_belle_real_eval_set_is_judged_whole(shared_data, tmp_path):
    rows = [json.loads(line) for line in
            (shared_data / "belle_eval" / "eval_set.json").read_text(encoding="utf-8").splitlines() if line.strip()]
    answers = [{**row, "answer": f"SCORE=0.{i % 10}"} for i, row in enumerate(rows)]
    with FakeOpenAIServer(responder=judge_responder) as server:
        endpoint = EndpointConfig(server.base_url, "gpt-4", api_key=SECRET, concurrency=16)
        judged, summary = judge_rows(answers, shared_data / "belle_eval" / "eval_prompt.json", endpoint)
    assert summary["n"] == summary["n_scored"] == 1000 and summary["n_failed"] == 0
    assert set(summary["per_class"]) == {"open qa", "brainstorming", "rewrite", "generation", "math",
                                         "classification", "closed qa", "summarization", "code", "extract"}
    assert summary["overall"] == pytest.approx(sum((i % 10) / 10 for i in range(1000)) / 1000)
    assert len(server.completion_requests()) == 1000
