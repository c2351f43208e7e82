"""The scoring page: its JSON routes, and end to end in headless Chromium through ``belle eval serve-page``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from belle_hf.eval.page import ScoringPage
from belle_hf.llm import EndpointConfig
from belle_hf.testing.openai_server import FakeOpenAIServer

from eval_browser import Browser, find_chromium
from evalkit import EVAL_SET, judge_responder

SECRET = "sk-page-SECRET-abcdef123456"


def post(url, payload: bytes, token: str):
    request = urllib.request.Request(url, data=payload, headers={"Content-Type": "application/json",
                                                                 "X-Belle-Page-Token": token})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_page_routes_score_and_reject_bad_requests(prompts_file, eval_set_file):
    with FakeOpenAIServer(responder=judge_responder) as judge:
        endpoint = EndpointConfig(judge.base_url, "gpt-4", api_key=SECRET, max_retries=0)
        page = ScoringPage.from_files(prompts_file, eval_set_file, endpoint)
        url = page.start()
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                html = response.read().decode("utf-8")
            with urllib.request.urlopen(url + "api/questions", timeout=10) as response:
                questions = json.loads(response.read())
            token = html.split('name="belle-page-token" content="', 1)[1].split('"', 1)[0]
            status, scored = post(url + "api/score", json.dumps({"index": 2, "answer": "SCORE=0.8"}).encode(), token)
            bad = [post(url + "api/score", body, token)[0] for body in
                   (b"not json", b"[]", json.dumps({"index": 99, "answer": "x"}).encode(),
                    json.dumps({"index": 0, "answer": ""}).encode(), json.dumps({"index": True, "answer": "x"}).encode())]
        finally:
            page.stop()
    assert "question-picker" in html and SECRET not in html
    assert [q["question"] for q in questions["questions"]] == [row["question"] for row in EVAL_SET]
    assert questions["questions"][4]["class"] == "closed qa" and SECRET not in json.dumps(questions)
    assert status == 200 and scored["score"] == 0.8 and scored["class"] == "open qa" and scored["error"] is None
    assert bad == [400, 400, 400, 400, 400]
    assert len(judge.completion_requests()) == 1  # bad requests never reach the judge
    assert EVAL_SET[2]["question"] in judge.completion_requests()[0].body["messages"][0]["content"]


def start_serve_page(prompts_file, eval_set_file, base_url, env):
    """``belle eval serve-page --port 0`` in a subprocess; returns (process, page URL)."""
    command = [sys.executable, "-m", "belle_hf.cli", "eval", "serve-page", "--prompts", str(prompts_file),
               "--eval-set", str(eval_set_file), "--base-url", base_url, "--model", "gpt-4",
               "--api-key-env", "BELLE_PAGE_TEST_KEY", "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = process.stdout.readline()
    if "http://" not in line:
        process.kill()
        raise AssertionError(f"serve-page did not start: {line!r} {process.stderr.read()}")
    return process, line.split("scoring page on ", 1)[1].split()[0]


@pytest.mark.skipif(find_chromium() is None, reason="Debian's chromium is not installed here "
                    "(apt-get install -y chromium; .ci/run installs it, so CI runs this test)")
def test_scoring_page_end_to_end_in_headless_chromium(prompts_file, eval_set_file, tmp_path):
    env = {**os.environ, "BELLE_PAGE_TEST_KEY": SECRET}
    with FakeOpenAIServer(responder=judge_responder) as judge:
        process, url = start_serve_page(prompts_file, eval_set_file, judge.base_url, env)
        try:
            async def scenario():
                async with Browser(url, tmp_path / "profile") as page:
                    await page.wait_for("document.body && document.body.dataset.ready === '1'")
                    options = await page.eval("document.querySelectorAll('#question-picker option').length")
                    await page.eval("""(() => { const p = document.getElementById('question-picker');
                        p.value = '4'; p.dispatchEvent(new Event('change')); })()""")
                    shown = await page.eval("document.getElementById('question-text').textContent")
                    await page.eval("document.getElementById('answer').value = '小明有三个苹果。SCORE=0.9'")
                    await page.eval("document.getElementById('score-button').click()")
                    status = await page.wait_for(
                        "(s => s.startsWith('完成') || s.startsWith('错误') ? s : '')"
                        "(document.getElementById('status').textContent)")
                    score = await page.eval("document.getElementById('score').textContent")
                    reason = await page.eval("document.getElementById('reason').textContent")
                    dom = await page.eval("document.documentElement.outerHTML")
                    return options, shown, status, score, reason, dom

            options, shown, status, score, reason, dom = asyncio.run(scenario())
        finally:
            process.terminate()
            process.wait(timeout=10)
    assert options == len(EVAL_SET)
    assert shown == EVAL_SET[4]["question"]
    assert status.startswith("完成"), status
    assert score == "0.9"
    expected_reply = judge_responder(judge.completion_requests()[0].body)
    assert reason == expected_reply and "0.9" in reason
    # The browser sent the question number and the answer; the server built the request with its key.
    [request] = judge.completion_requests()
    content = request.body["messages"][0]["content"]
    assert EVAL_SET[4]["question"] in content and "小明有三个苹果。SCORE=0.9" in content and "标准回答:\n三个" in content
    assert request.authorization == f"Bearer {SECRET}"
    assert SECRET not in dom
