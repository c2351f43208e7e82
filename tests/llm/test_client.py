import json
import time

import pytest

from belle_hf.llm import ChatClient, EndpointConfig, ResponseCache, estimate_cost, request_key
from belle_hf.testing.openai_server import FakeOpenAIServer

SECRET = "sk-test-SECRET-0123456789"


def ask(n):
    return [[{"role": "user", "content": f"问题 {i}"}] for i in range(n)]


def config(server, **kw):
    return EndpointConfig(base_url=server.base_url, model="gpt-4", api_key=SECRET, **kw)


def test_concurrent_completions_are_cached_and_not_resent(tmp_path):
    with FakeOpenAIServer() as server:
        client = ChatClient(config(server, concurrency=4), cache_dir=tmp_path / "cache")
        results = client.complete_many(ask(20))
        assert [r.text for r in results] == [f"echo: 问题 {i}" for i in range(20)]
        assert client.usage.requests_sent == 20 and client.usage.cache_hits == 0
        # A second client on the same cache (a rerun) sends nothing.
        again = ChatClient(config(server), cache_dir=tmp_path / "cache")
        assert [r.text for r in again.complete_many(ask(20))] == [r.text for r in results]
        assert len(server.completion_requests()) == 20
        assert again.usage.cache_hits == 20 and again.usage.requests_sent == 0
    assert SECRET not in (tmp_path / "cache" / "responses.jsonl").read_text()
    assert all(r.authorization == f"Bearer {SECRET}" for r in server.requests)


def test_identical_requests_in_one_batch_are_sent_once():
    with FakeOpenAIServer() as server:
        client = ChatClient(config(server, concurrency=4))
        results = client.complete_many(ask(3) + ask(3))
        assert [r.text for r in results[:3]] == [r.text for r in results[3:]]
        assert len(server.completion_requests()) == 3


def test_429_and_500_are_retried_then_succeed():
    with FakeOpenAIServer(faults=lambda attempt, body: {1: "429", 2: "500"}.get(attempt)) as server:
        client = ChatClient(config(server, concurrency=2))
        results = client.complete_many(ask(3))
        assert all(r.ok for r in results)
        assert len(server.completion_requests()) == 9  # 2 failures + 1 answer each


def test_retries_are_bounded_and_failures_are_not_cached(tmp_path):
    with FakeOpenAIServer(faults=lambda attempt, body: "500") as server:
        client = ChatClient(config(server, max_retries=2), cache_dir=tmp_path)
        result = client.complete(ask(1)[0])
        assert not result.ok and "500" in result.error
        assert len(server.completion_requests()) == 3
        assert client.usage.failures == 1
    assert len(ResponseCache(tmp_path)) == 0


def test_timeouts_are_retried(tmp_path):
    with FakeOpenAIServer(faults=lambda attempt, body: "hang" if attempt == 1 else None, hang_seconds=2) as server:
        client = ChatClient(config(server, timeout=0.5, max_retries=2))
        start = time.monotonic()
        result = client.complete(ask(1)[0])
        assert result.ok and result.text == "echo: 问题 0"
        assert time.monotonic() - start < 10


def test_garbage_body_is_an_error_not_a_crash():
    with FakeOpenAIServer(faults=lambda attempt, body: "garbage") as server:
        result = ChatClient(config(server, max_retries=0)).complete(ask(1)[0])
        assert not result.ok and result.text is None


def test_cache_survives_a_torn_last_line(tmp_path):
    cache = ResponseCache(tmp_path)
    cache.put("a", {"text": "x"})
    with open(cache.path, "a") as handle:
        handle.write('{"key": "b", "resp')  # killed mid-write
    reopened = ResponseCache(tmp_path)
    assert reopened.get("a") == {"text": "x"} and "b" not in reopened
    reopened.put("c", {"text": "y"})
    assert [json.loads(line)["key"] for line in cache.path.read_text().splitlines()] == ["a", "c"]


def test_request_key_depends_on_model_and_body_only():
    body = {"messages": [{"role": "user", "content": "q"}], "temperature": 0}
    assert request_key("gpt-4", body) == request_key("gpt-4", dict(reversed(list(body.items()))))
    assert request_key("gpt-4", body) != request_key("gpt-4o", body)


def test_cost_estimate_and_unknown_model():
    assert estimate_cost("gpt-4-0613", 1_000_000, 1_000_000) == pytest.approx(90.0)
    assert estimate_cost("gpt-4o-mini-2024", 1_000_000, 0) == pytest.approx(0.15)
    assert estimate_cost("my-local-model", 10, 10) is None


def test_public_settings_never_hold_the_key():
    cfg = EndpointConfig(base_url="http://x/v1", model="m", api_key=SECRET)
    assert SECRET not in json.dumps(cfg.public_dict()) and SECRET not in repr(cfg)
