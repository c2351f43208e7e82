"""The single-question scoring page BELLE offered (``ChatGPT_Score.html``), with the key kept
on the server: the browser sends only the question number and the answer; this server builds
the judge request, calls the endpoint with its own key and returns the score and the reply.

A page, two JSON routes and a few lines of script need no web framework, so this is the
standard library's ``http.server``:

- ``GET /``: the page;
- ``GET /api/questions``: ``[{"index", "class", "question", "std_answer"}]``;
- ``POST /api/score`` with ``{"index", "answer"}``: ``{"score", "reason", "class", "error"}``.
"""

from __future__ import annotations

import json
import logging
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from belle_hf.eval.eval_set import EvalQuestion, JudgePrompts, load_eval_set, normalize_class
from belle_hf.eval.judge import AnswerRow, Judge
from belle_hf.llm import EndpointConfig

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
"""Largest request body accepted (an answer of about 300,000 Chinese characters)."""

PAGE = """<!DOCTYPE html>
<html lang="zh">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
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
    const response = await fetch("api/score", {method: "POST", headers: {"Content-Type": "application/json"},
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
        announce(f"scoring page on {self.url} (judge {self.judge.endpoint.model} at {self.judge.endpoint.base_url}); "
                 f"Ctrl-C to stop")
        try:
            self.server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.server.server_close()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


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

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(200, PAGE.encode("utf-8"), "text/html; charset=utf-8")
            elif path == "/api/questions":
                self._send_json(200, page.questions_payload())
            else:
                self._send_json(404, {"error": f"no page {path}"})

        def do_POST(self) -> None:
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
