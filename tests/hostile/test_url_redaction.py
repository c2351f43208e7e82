"""A key written into ``--base-url`` (``https://user:sk-…@host``, ``?api_key=…``) reaches the
server, but never a file or a log: summaries, outputs, caches and messages show ``***``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from belle_hf.testing.openai_server import FakeOpenAIServer

USER_SECRET = "sk-userinfoSECRET0123456789abcdef"
QUERY_SECRET = "QUERYSECRETvalue42"


@pytest.mark.parametrize("url, expected", [
    ("https://alice:sk-abc@api.example.com/v1", "https://***@api.example.com/v1"),
    ("https://sk-onlyuser@api.example.com/v1", "https://***@api.example.com/v1"),
    ("https://h/v1?api_key=abc&version=2", "https://h/v1?api_key=***&version=2"),
    ("https://h/v1?key=abc", "https://h/v1?key=***"),
    ("https://h/v1?token=abc#access_token=def", "https://h/v1?token=***#access_token=***"),
    ("https://h/v1?X-Amz-Signature=abc&tokenizer=fast", "https://h/v1?X-Amz-Signature=***&tokenizer=fast"),
    ("https://h/v1/hf_" + "a" * 34, "https://h/v1/***"),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ("https://api.openai.com/v1?api-version=2024-02-01", "https://api.openai.com/v1?api-version=2024-02-01"),
])
def test_redact_url(url, expected):
    from belle_hf.redact import redact_url

    assert redact_url(url) == expected


def _belle(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "belle_hf.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


def _leaks(folder: Path, *texts: str) -> list[str]:
    found = [p.name for p in folder.rglob("*") if p.is_file()
             and (USER_SECRET.encode() in p.read_bytes() or QUERY_SECRET.encode() in p.read_bytes())]
    return found + [f"output {i}" for i, text in enumerate(texts) if USER_SECRET in text or QUERY_SECRET in text]


def _eval_files(folder: Path) -> tuple[Path, Path]:
    prompts, answers = folder / "eval_prompt.json", folder / "answers.jsonl"
    prompts.write_text(json.dumps({"class": "open qa", "prompt": "请按照\"得分:\"这样的形式输出分数。"},
                                  ensure_ascii=False) + "\n", encoding="utf-8")
    answers.write_text("".join(json.dumps({"question": f"问题{i}", "class": "open qa", "std_answer": "北京",
                                           "answer": "北京"}, ensure_ascii=False) + "\n" for i in range(3)),
                       encoding="utf-8")
    return prompts, answers


def test_judge_records_the_url_without_its_credentials(tmp_path):
    prompts, answers = _eval_files(tmp_path)
    work = tmp_path / "out"
    with FakeOpenAIServer(responder=lambda body: "得分: 0.8") as server:
        base_url = server.base_url.replace("http://", f"http://alice:{USER_SECRET}@")
        done = _belle("eval", "judge", "--answers", answers, "--prompts", prompts, "--base-url", base_url,
                      "--model", "gpt-4", "-o", work / "judged.jsonl", "--summary", work / "summary.json")
        assert len(server.completion_requests()) == 3  # the credentials did reach the server
        recorded_as = server.base_url.replace("http://", "http://***@")
    assert done.returncode == 0, done.stderr
    summary = json.loads((work / "summary.json").read_text())
    assert summary["judge"]["base_url"] == recorded_as
    assert _leaks(tmp_path, done.stdout, done.stderr) == []


def test_generate_failure_message_hides_a_query_string_key(tmp_path):
    eval_set = tmp_path / "eval_set.json"
    eval_set.write_text(json.dumps({"question": "中国的首都是哪里？", "class": "open qa", "std_answer": "北京"},
                                   ensure_ascii=False) + "\n", encoding="utf-8")
    with FakeOpenAIServer() as server:
        done = _belle("eval", "generate", "--model", "m", "--eval-set", eval_set, "-o", tmp_path / "answers.jsonl",
                      "--base-url", f"{server.base_url}?api_key={QUERY_SECRET}", "--max-retries", "0")
    assert done.returncode == 1 and "api_key=***" in done.stderr, done.stderr
    assert _leaks(tmp_path, done.stdout, done.stderr) == []


def _start_scoring_page(tmp_path, base_url: str, **popen) -> subprocess.Popen:
    """A real `belle eval serve-page` on a free port, judging through ``base_url``."""
    prompts, _answers = _eval_files(tmp_path)
    eval_set = tmp_path / "eval_set.json"
    eval_set.write_text(json.dumps({"question": "问题", "class": "open qa", "std_answer": "北京"},
                                   ensure_ascii=False) + "\n", encoding="utf-8")
    return subprocess.Popen([sys.executable, "-m", "belle_hf.cli", "eval", "serve-page", "--prompts", str(prompts),
                             "--eval-set", str(eval_set), "--model", "gpt-4", "--port", "0", "--base-url", base_url],
                            stdout=subprocess.PIPE, text=True, **popen)


def test_scoring_page_announces_the_url_without_its_credentials(tmp_path):
    process = _start_scoring_page(tmp_path, f"http://alice:{USER_SECRET}@127.0.0.1:9/v1", stderr=subprocess.STDOUT)
    try:
        line = process.stdout.readline()
    finally:
        process.kill()
        process.wait()
    assert "scoring page on http://" in line and "http://***@127.0.0.1:9/v1" in line
    assert USER_SECRET not in line


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_scoring_page_stopped_by_a_signal_exits_non_zero(tmp_path, signum, code):
    process = _start_scoring_page(tmp_path, "http://127.0.0.1:9/v1", stderr=subprocess.PIPE)
    try:
        assert "scoring page on http://" in process.stdout.readline()
        process.send_signal(signum)
        _out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == code, err
    assert "interrupted" in err and "Traceback" not in err
