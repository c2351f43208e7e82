"""A loopback OpenAI-compatible server for tests and benchmarks, with fault injection.

It answers ``POST /v1/chat/completions`` (plain and ``stream=true``) and ``GET /v1/models`` on
127.0.0.1 only, from a ``responder`` function, and can be told to delay, answer 429 or 500,
hang past the client's timeout, or send a body that is not JSON. It records every request body
and ``Authorization`` header so tests can count resends and look for leaked keys.

>>> with FakeOpenAIServer(responder=lambda body: "得分: 0.8") as server:
...     client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

Responder = Callable[[dict[str, Any]], "str | tuple[str, str]"]
"""``request body -> reply text``, or ``(reply text, finish_reason)`` to answer with another
finish reason than ``"stop"`` (e.g. ``"length"`` for a reply cut at ``max_tokens``)."""
FaultPlan = Callable[[int, dict[str, Any]], "str | None"]
"""``(attempt number, request body) -> fault``: ``None`` answers normally, ``"429"``/``"500"``
answer that status, ``"hang"`` sleeps ``hang_seconds`` first, ``"garbage"`` sends a 200 that is
not JSON. ``attempt number`` counts requests with the same body, from 1."""


def echo_responder(body: dict[str, Any]) -> str:
    """Replies with the last user message (a stand-in model)."""
    return f"echo: {body['messages'][-1]['content']}"


@dataclass
class RecordedRequest:
    path: str
    body: dict[str, Any]
    authorization: str | None
    fault: str | None


class FakeOpenAIServer:
    """An OpenAI-compatible chat server on 127.0.0.1 for tests (see the module docstring)."""

    def __init__(
        self,
        responder: Responder = echo_responder,
        latency: float = 0.0,
        faults: FaultPlan | None = None,
        hang_seconds: float = 5.0,
        model_ids: tuple[str, ...] = ("fake-gpt-4",),
    ):
        self.responder = responder
        self.latency = latency
        self.faults = faults
        self.hang_seconds = hang_seconds
        self.model_ids = model_ids
        self.requests: list[RecordedRequest] = []
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> "FakeOpenAIServer":
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # -- bookkeeping ---------------------------------------------------------------------
    def completion_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def answered_requests(self) -> list[RecordedRequest]:
        """Completion requests that got a normal answer."""
        return [r for r in self.completion_requests() if r.fault is None]

    def _next_fault(self, body: dict[str, Any]) -> str | None:
        key = json.dumps(body, sort_keys=True, ensure_ascii=False)
        with self._lock:
            self._attempts[key] = attempt = self._attempts.get(key, 0) + 1
        return self.faults(attempt, body) if self.faults else None


def _usage(body: dict[str, Any], text: str) -> dict[str, int]:
    prompt = sum(len(m.get("content") or "") for m in body.get("messages", []))
    return {"prompt_tokens": prompt, "completion_tokens": len(text), "total_tokens": prompt + len(text)}


def _make_handler(server: FakeOpenAIServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; with Nagle's algorithm on, the body waits
        # for the client's delayed ACK (~40 ms per request on loopback), which would swamp the
        # latency a test or benchmark asks for.
        disable_nagle_algorithm = True

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def handle(self) -> None:
            try:
                super().handle()
            except (BrokenPipeError, ConnectionResetError):  # the client went away (a killed run)
                pass

        def _send_json(self, status: int, payload: Any) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/v1/models"):
                server.requests.append(RecordedRequest(self.path, {}, self.headers.get("Authorization"), None))
                self._send_json(200, {"object": "list", "data": [
                    {"id": m, "object": "model", "created": 0, "owned_by": "belle-hf-tests"} for m in server.model_ids]})
            else:
                self._send_json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send_json(404, {"error": {"message": f"no route {self.path}"}})
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self._send_json(400, {"error": {"message": "body is not JSON"}})
                return
            fault = server._next_fault(body)
            server.requests.append(RecordedRequest(self.path, body, self.headers.get("Authorization"), fault))
            if server.latency:
                time.sleep(server.latency)
            if fault == "hang":
                time.sleep(server.hang_seconds)
                fault = None
            if fault in ("429", "500", "502", "503"):
                self._send_json(int(fault), {"error": {"message": f"injected {fault}", "type": "test"}})
                return
            if fault == "garbage":
                data = b"<html>not json</html>"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            reply = server.responder(body)
            text, finish_reason = reply if isinstance(reply, tuple) else (reply, "stop")
            if body.get("stream"):
                self._stream(body, text, finish_reason)
                return
            self._send_json(200, {
                "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": finish_reason}],
                "usage": _usage(body, text),
            })

        def _stream(self, body: dict[str, Any], text: str, finish_reason: str = "stop") -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": body.get("model", "fake")}
            for char in text:
                chunk = {**base, "choices": [{"index": 0, "delta": {"content": char}, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode("utf-8"))
            final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]}
            self.wfile.write(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode("utf-8"))
            self.wfile.flush()
            self.close_connection = True

    return Handler
