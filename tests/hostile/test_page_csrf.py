"""The scoring page spends a paid judge call per score: requests that another web page could
send (cross-origin, text/plain, without the page's token) or that arrive through a rebound
domain name are refused with 403/415, and the judge is never called for them."""

from __future__ import annotations

import http.client
import json

import pytest

from belle_hf.eval.page import ScoringPage
from belle_hf.llm import EndpointConfig
from belle_hf.testing.openai_server import FakeOpenAIServer


@pytest.fixture
def served(tmp_path):
    prompts = tmp_path / "eval_prompt.json"
    prompts.write_text(json.dumps({"class": "open qa", "prompt": "请按照\"得分:\"这样的形式输出分数。"},
                                  ensure_ascii=False) + "\n", encoding="utf-8")
    eval_set = tmp_path / "eval_set.json"
    eval_set.write_text(json.dumps({"question": "中国的首都是哪里？", "std_answer": "北京", "class": "open qa"},
                                   ensure_ascii=False) + "\n", encoding="utf-8")
    with FakeOpenAIServer(responder=lambda body: "得分: 0.8") as judge:
        page = ScoringPage.from_files(prompts, eval_set, EndpointConfig(judge.base_url, "gpt-4", max_retries=0))
        page.start()
        try:
            yield page, judge
        finally:
            page.stop()


def _request(page, method, path="/api/score", body='{"index": 0, "answer": "北京"}'.encode(), **headers):
    host, port = page.server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request(method, path, body=body if method == "POST" else None,
                           headers={k.replace("_", "-"): v for k, v in headers.items() if v is not None})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _good(page) -> dict:
    host, port = page.server.server_address[:2]
    return {"Host": f"{host}:{port}", "Origin": f"http://{host}:{port}", "Content_Type": "application/json",
            "X_Belle_Page_Token": page.token}


def test_the_page_itself_is_served_and_scores(served):
    page, judge = served
    status, html = _request(page, "GET", "/", **{"Host": _good(page)["Host"]})
    assert status == 200 and page.token.encode() in html
    status, body = _request(page, "POST", **_good(page))
    assert status == 200 and json.loads(body)["score"] == 0.8
    assert len(judge.completion_requests()) == 1


@pytest.mark.parametrize("change, expected", [
    ({"Content_Type": "text/plain"}, 415),  # what an HTML form on any site can send
    ({"Content_Type": None}, 415),
    ({"Origin": "https://evil.example"}, 403),
    ({"Origin": "null"}, 403),  # a sandboxed frame or a file:// page
    ({"Sec_Fetch_Site": "cross-site", "Origin": None}, 403),
    ({"X_Belle_Page_Token": None}, 403),
    ({"X_Belle_Page_Token": "guessed"}, 403),
    ({"Host": "evil.example:{port}", "Origin": "http://evil.example:{port}"}, 403),  # DNS rebinding
    ({"Host": "127.0.0.1:1"}, 403),
])
def test_cross_site_requests_are_refused_and_cost_nothing(served, change, expected):
    page, judge = served
    port = page.server.server_address[1]
    headers = {**_good(page), **{k: v.format(port=port) if v else v for k, v in change.items()}}
    status, body = _request(page, "POST", **headers)
    assert status == expected, body
    assert "error" in json.loads(body)
    assert judge.completion_requests() == []  # no judge call was spent


def test_a_rebound_domain_cannot_read_the_page_token(served):
    page, _judge = served
    port = page.server.server_address[1]
    for path in ("/", "/api/questions"):
        status, body = _request(page, "GET", path, Host=f"attacker.example:{port}")
        assert status == 403 and page.token.encode() not in body
