"""A judge run that scored nothing (or too little) is an error, not a finished evaluation; an
endpoint that is not an http(s) URL is refused before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from belle_hf.testing.openai_server import FakeOpenAIServer

N = 10


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"question": f"问题{i}", "class": "math", "std_answer": "1",
                                           "answer": f"回答{i}"}, ensure_ascii=False) + "\n" for i in range(N)),
                       encoding="utf-8")
    prompts = tmp_path / "eval_prompt.json"
    prompts.write_text(json.dumps({"class": "math", "prompt": "打分"}, ensure_ascii=False) + "\n", encoding="utf-8")
    return answers, prompts


def failing(rows: set[int]):
    """Fault plan: the requests about these rows always answer 500."""
    return lambda attempt, body: "500" if any(f"回答{i}" in body["messages"][-1]["content"] for i in rows) else None


def judge(run_belle, files, server, tmp_path, *extra):
    answers, prompts = files
    return run_belle("eval", "judge", "--answers", answers, "--prompts", prompts, "--base-url", server.base_url,
                     "--model", "gpt-4", "--max-retries", "0", "-o", tmp_path / "judged.jsonl",
                     "--summary", tmp_path / "summary.json", *extra)


def test_a_run_where_every_request_failed_is_an_error(run_belle, files, tmp_path):
    with FakeOpenAIServer(responder=lambda body: "得分: 1", faults=failing(set(range(N)))) as server:
        code, out, err = judge(run_belle, files, server, tmp_path)
    assert code == 1
    assert "no answer was scored" in err and "HTTP 500" in err and "Traceback" not in err
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["n_scored"] == 0 and summary["overall"] is None


def test_more_failures_than_max_failed_allows_is_an_error(run_belle, files, tmp_path, caplog):
    with FakeOpenAIServer(responder=lambda body: "得分: 1", faults=failing({0, 1, 2})) as server:
        code, _, err = judge(run_belle, files, server, tmp_path, "--max-failed", "0.2")
        assert code == 1 and "3 of 10 answers were not scored" in err and "max_failed=0.2" in err
        # Within the allowance (and by default) the failures are reported and the run passes.
        code, out, err = judge(run_belle, files, server, tmp_path, "--max-failed", "0.3")
        assert code == 0 and "3 of 10 answers were not scored" in caplog.text
        assert "10 answers: 7 scored, 3 failed" in out


@pytest.mark.parametrize("base_url", ["ftp://example.com/v1", "127.0.0.1:8000/v1", "", "http://"])
def test_a_base_url_that_is_not_http_is_refused_before_sending(run_belle, files, tmp_path, base_url):
    answers, prompts = files
    code, _, err = run_belle("eval", "judge", "--answers", answers, "--prompts", prompts, "--base-url", base_url,
                             "--model", "gpt-4", "-o", tmp_path / "judged.jsonl", "--summary", tmp_path / "s.json")
    assert code == 1 and err.startswith("error: --base-url: must be an http:// or https:// URL"), err
    assert not any(tmp_path.glob("judged*"))


def test_the_library_names_the_field_and_never_shows_a_key_in_the_url(files, tmp_path):
    from belle_hf.errors import ConfigError
    from belle_hf.eval.judge import judge_file
    from belle_hf.llm import EndpointConfig

    with pytest.raises(ConfigError) as error:
        EndpointConfig("ftp://user:sk-SECRET-123@example.com/v1", "gpt-4")
    assert error.value.field == "base_url" and "sk-SECRET-123" not in str(error.value)
    answers, prompts = files
    with pytest.raises(ConfigError, match="max_failed"):
        judge_file(answers, prompts, EndpointConfig("http://127.0.0.1:9/v1", "gpt-4"), tmp_path / "j.jsonl",
                   max_failed=1.5)
