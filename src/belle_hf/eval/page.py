"""The single-question scoring page BELLE offered (``ChatGPT_Score.html``), with the key kept
on the server: the browser sends only the question number and the answer; this server builds
the judge request, calls the endpoint with its own key and returns the score and the reply.

A page, two JSON routes and a few lines of script need no web framework, so this is the
standard library's ``http.server``:

- ``GET /``: the page;
- ``GET /api/questions``: ``[{"index", "class", "question", "std_answer"}]``;
- ``POST /api/score`` with ``{"index", "answer"}``: ``{"score", "reason", "class", "error"}``.

Every score spends a paid judge call, so only the page itself may ask for one. Any other web page
the user has open could send a request to 127.0.0.1 (a ``text/plain`` form POST needs no
permission), and a hostile domain re-pointed at 127.0.0.1 (DNS rebinding) could even read the
page. So every request must carry a ``Host`` naming the served address (a rebound domain does
not), a POST must come from the page's own origin (when the browser says: ``Origin``,
``Sec-Fetch-Site``), be ``application/json`` (which a cross-site page cannot send without a CORS
preflight, never granted here) and carry the page's token, a random value written into the page
when it is served and sent back by its script. Refusals (403, or 415 for the content type) reach
no judge. The server binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import secrets
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from belle_hf.eval.eval_set import EvalQuestion, JudgePrompts, load_eval_set, normalize_class
from belle_hf.eval.judge import AnswerRow, Judge
from belle_hf.llm import EndpointConfig
from belle_hf.redact import redact_url

logger = logging.getLogger(__name__)

TOKEN_HEADER = "X-Belle-Page-Token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
MAX_BODY_BYTES = 1 << 20
"""Largest request body accepted (an answer of about 300,000 Chinese characters)."""

PAGE = """<!DOCTYPE html>
<html lang="zh">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="belle-page-token" content="__BELLE_PAGE_TOKEN__">
<title>BELLE 评分 · scoring page</title>
<style>
 body { font-family: system-ui, sans-serif; max-width: 56rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
 select, textarea, button { font: inherit; width: 100%; box-sizing: border-box; }
 textarea { min-height: 10rem; }
 button { width: auto; padding: .4rem 1.2rem; margin-top: .5rem; }
 .box { white-space: pre-wrap; background: #f5f5f5; padding: .6rem; border-radius: 4px; }
 #score { font-size: 2rem; font-weight: bold; }
 .muted { color: #777; }
</style>
</head>
<body>
<h1>BELLE 评分 <span class="muted">· judge: <span id="judge-model"></span></span></h1>
<label for="question-picker">问题 · question</label>
<select id="question-picker"></select>
<p><span class="muted">类别 · class:</span> <span id="question-class"></span></p>
<div id="question-text" class="box"></div>
<p class="muted">标准答案 · reference</p>
<div id="std-answer" class="box"></div>
<p><label for="answer">模型回答 · answer</label></p>
<textarea id="answer" placeholder="粘贴模型的回答 · paste the model's answer"></textarea>
<button id="score-button" type="button">评分 · score</button>
<p id="status" class="muted"></p>
<p>得分 · score: <span id="score">–</span></p>
<p class="muted">理由 · reason</p>
<div id="reason" class="box"></div>
<script>
const $ = (id) => document.getElementById(id);
const pageToken = document.querySelector('meta[name="belle-page-token"]').content;
let questions = [];
function show(index) {
  const q = questions[index];
  $("question-class").textContent = q.class;
  $("question-text").textContent = q.question;
  $("std-answer").textContent = q.std_answer || "（无 · none）";
  $("score").textContent = "–"; $("reason").textContent = ""; $("status").textContent = "";
}
async function load() {
  const response = await fetch("api/questions");
  const data = await response.json();
  questions = data.questions;
  $("judge-model").textContent = data.judge_model;
  const picker = $("question-picker");
  questions.forEach((q, i) => {
    const option = document.createElement("option");
    option.value = i;
    option.textContent = `#${i + 1} [${q.class}] ${q.question.slice(0, 60).replace(/\\s+/g, " ")}`;
    picker.appendChild(option);
  });
  picker.addEventListener("change", () => show(Number(picker.value)));
  show(0);
  document.body.dataset.ready = "1";
}
async function score() {
  const button = $("score-button");
  button.disabled = true;
  $("status").textContent = "评分中 · scoring…"; $("score").textContent = "–"; $("reason").textContent = "";
  try {
    const response = await fetch("api/score", {method: "POST", headers: {"Content-Type": "application/json", "X-Belle-Page-Token": pageToken},
      body: JSON.stringify({index: Number($("question-picker").value), answer: $("answer").value})});
    const result = await response.json();
    if (result.error) { $("status").textContent = "错误 · error: " + result.error; }
    else { $("status").textContent = "完成 · done"; }
    $("score").textContent = result.score === null || result.score === undefined ? "无法解析 · unreadable" : String(result.score);
    $("reason").textContent = result.reason || "";
  } catch (error) {
    $("status").textContent = "错误 · error: " + error;
  } finally {
    button.disabled = false;
  }
}
$("score-button").addEventListener("click", score);
load();
</script>
</body>
</html>
"""


class ScoringPage:
    """Serves :data:`PAGE` and scores one answer per request with a :class:`Judge`."""

    def __init__(self, prompts: JudgePrompts, questions: list[EvalQuestion], endpoint: EndpointConfig,
                 cache_dir: str | os.PathLike | None = None):
        prompts.check_covers(questions)
        self.questions = questions
        self.judge = Judge(prompts, endpoint, cache_dir=cache_dir)
        self.server: ThreadingHTTPServer | None = None
        self.token = secrets.token_urlsafe(32)
        """Written into the page and sent back by its script with every score request."""

    def html(self) -> bytes:
        return PAGE.replace("__BELLE_PAGE_TOKEN__", self.token).encode("utf-8")

    def host_allowed(self, host_header: str | None) -> bool:
        """Whether a request's ``Host`` names this server: its bound address, or when bound to a
        loopback or wildcard address, ``localhost`` or an IP literal, with the served port. A
        domain name re-pointed at this machine (DNS rebinding) names neither."""
        assert self.server is not None, "not started"
        bound, port = self.server.server_address[:2]
        name, _, given_port = (host_header or "").rpartition(":")
        if not name or given_port != str(port):
            return False
        wildcard = bound in ("0.0.0.0", "::")
        if name == bound or (name in LOOPBACK_NAMES and (wildcard or _is_loopback(bound))):
            return True
        if not wildcard:
            return False
        try:  # bound to every interface: any of this machine's addresses, written as an IP
            ipaddress.ip_address(name.strip("[]"))
            return True
        except ValueError:
            return False

    def refusal(self, method: str, headers) -> tuple[int, str] | None:
        """``(status, reason)`` when a request may not be served (see the module docstring)."""
        host = headers.get("Host")
        if not self.host_allowed(host):
            return 403, f"Host {host!r} is not this page's address"
        if method != "POST":
            return None
        origin = headers.get("Origin")
        if origin is not None and origin != f"http://{host}":
            return 403, f"cross-origin request from {origin!r}"
        if headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return 403, "cross-site request"
        if (headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
            return 415, "the request must be application/json"
        if not hmac.compare_digest((headers.get(TOKEN_HEADER) or "").encode(), self.token.encode()):
            return 403, f"missing or wrong {TOKEN_HEADER} (reload the page)"
        return None

    @classmethod
    def from_files(cls, prompts: str | os.PathLike, eval_set: str | os.PathLike, endpoint: EndpointConfig,
                   cache_dir: str | os.PathLike | None = None) -> "ScoringPage":
        return cls(JudgePrompts.from_file(prompts), load_eval_set(eval_set), endpoint, cache_dir=cache_dir)

    def questions_payload(self) -> dict[str, Any]:
        return {"judge_model": self.judge.endpoint.model,
                "questions": [{"index": i, "class": normalize_class(q.class_name), "question": q.question,
                               "std_answer": q.std_answer} for i, q in enumerate(self.questions)]}

    def score(self, payload: Any) -> tuple[int, dict[str, Any]]:
        """``(HTTP status, response)`` for a ``{"index", "answer"}`` request."""
        if not isinstance(payload, dict):
            return 400, {"error": "expected a JSON object with index and answer"}
        index, answer = payload.get("index"), payload.get("answer")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.questions):
            return 400, {"error": f"index must be an integer in [0, {len(self.questions) - 1}]"}
        if not isinstance(answer, str) or not answer.strip():
            return 400, {"error": "answer must be a non-empty string"}
        question = self.questions[index]
        row = AnswerRow(question.question, question.class_name, question.std_answer, answer, location=question.location)
        judged = self.judge.judge_one(row)
        return 200, {"index": index, "class": normalize_class(question.class_name), "score": judged["score"],
                     "reason": judged["judge_output"], "error": judged.get("judge_error")}

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving in a background thread; returns the page's URL."""
        import threading

        self.server = ThreadingHTTPServer((host, port), _make_handler(self))
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        assert self.server is not None, "not started"
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def serve(self, host: str = "127.0.0.1", port: int = 8765, announce: Callable[[str], None] = print) -> None:
        """Serve until interrupted (Ctrl-C)."""
        self.server = ThreadingHTTPServer((host, port), _make_handler(self))
        self.server.daemon_threads = True
        announce(f"scoring page on {self.url} (judge {self.judge.endpoint.model} at "
                 f"{redact_url(self.judge.endpoint.base_url)}); "
                 f"Ctrl-C to stop")
        # Ctrl-C or SIGTERM (belle_hf.interrupts) propagates: a stopped server is an interrupted
        # command, and ``belle`` exits 130/143 like every other command.
        try:
            self.server.serve_forever()
        finally:
            self.server.server_close()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _make_handler(page: ScoringPage):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args) -> None:  # requests go to the logger, at debug level
            logger.debug("%s - %s", self.address_string(), format % args)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _send_json(self, status: int, payload: Any) -> None:
            self._send(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

        def _refused(self, method: str) -> bool:
            refusal = page.refusal(method, self.headers)
            if refusal is not None:
                logger.warning("scoring page: refused a %s from %s: %s", method, self.address_string(), refusal[1])
                self._send_json(refusal[0], {"error": refusal[1]})
            return refusal is not None

        def do_GET(self) -> None:
            if self._refused("GET"):
                return
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(200, page.html(), "text/html; charset=utf-8")
            elif path == "/api/questions":
                self._send_json(200, page.questions_payload())
            else:
                self._send_json(404, {"error": f"no page {path}"})

        def do_POST(self) -> None:
            if self._refused("POST"):
                return
            if self.path.split("?", 1)[0] != "/api/score":
                self._send_json(404, {"error": "no such route"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY_BYTES:
                self._send_json(413 if length > MAX_BODY_BYTES else 400, {"error": "bad or missing request body"})
                return
            try:
                payload = json.loads(self.rfile.read(length))
            except ValueError:
                self._send_json(400, {"error": "request body is not JSON"})
                return
            status, response = page.score(payload)
            self._send_json(status, response)

    return Handler
