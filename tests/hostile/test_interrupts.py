"""SIGINT and SIGTERM sent to real ``belle`` processes: nothing is sent after the stop, everything
received is kept, the exit code says which signal stopped the run, and a rerun resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from belle_hf.testing.openai_server import FakeOpenAIServer

CONCURRENCY = 2
N_ROWS = 24
PROMPTS = [{"class": c, "prompt": f"给{c}类回答打分。请按照\"得分:\"这样的形式输出分数。"} for c in ("math", "generation")]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def judge_command(tmp_path: Path, server) -> tuple[list[str], Path]:
    rows = [{"question": f"问题{i}", "class": ("math", "generation")[i % 2], "std_answer": "", "answer": f"回答{i}"}
            for i in range(N_ROWS)]
    answers = write_jsonl(tmp_path / "answers.jsonl", rows)
    prompts = write_jsonl(tmp_path / "eval_prompt.json", PROMPTS)
    out = tmp_path / "out"
    return (["eval", "judge", "--answers", str(answers), "--prompts", str(prompts), "--base-url", server.base_url,
             "--model", "gpt-4", "--concurrency", str(CONCURRENCY), "-o", str(out / "judged.jsonl"),
             "--summary", str(out / "summary.json")], out / "judged.jsonl")


def generate_command(tmp_path: Path, server) -> tuple[list[str], Path]:
    questions = [{"question": f"问题{i}", "class": "generation", "std_answer": ""} for i in range(N_ROWS)]
    eval_set = write_jsonl(tmp_path / "eval_set.json", questions)
    out = tmp_path / "answers.jsonl"
    return (["eval", "generate", "--eval-set", str(eval_set), "--base-url", server.base_url, "--model", "served",
             "--concurrency", str(CONCURRENCY), "-o", str(out)], out)


def question_of(content: str) -> str:
    """The question a request asks about (the judge's request quotes it after "问题:")."""
    return content.split("问题:\n", 1)[1].split("\n\n", 1)[0] if "问题:\n" in content else content


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "belle_hf.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OPENAI_API_KEY": "sk-test"})


def wait_for_rows(process: subprocess.Popen, partial: Path, rows: int) -> None:
    deadline = time.monotonic() + 90
    while not (partial.exists() and partial.read_text(encoding="utf-8").count("\n") >= rows):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run did not get going"
        time.sleep(0.02)


@pytest.mark.parametrize(("make_command", "signum"), [
    (judge_command, signal.SIGINT), (judge_command, signal.SIGTERM), (generate_command, signal.SIGTERM)],
    ids=["eval-judge-SIGINT", "eval-judge-SIGTERM", "eval-generate-SIGTERM"])
def test_a_signal_stops_sending_keeps_what_arrived_and_a_rerun_resumes(make_command, signum, tmp_path):
    with FakeOpenAIServer(responder=lambda body: "得分: 0.5", latency=0.2) as server:
        args, output = make_command(tmp_path, server)
        partial = output.with_name(output.name + ".partial")
        process = start(args)
        wait_for_rows(process, partial, 4)
        sent_at_stop = len(server.completion_requests())
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
        sent_after_exit = len(server.completion_requests())
        time.sleep(0.6)  # a request still on its way would show up now

        # Interrupted = 128 + signal number, one line that says so and how to resume.
        assert process.returncode == 128 + signum, stderr
        assert "Traceback" not in stderr
        last = stderr.strip().splitlines()[-1]
        assert last.startswith(f"interrupted by {signal.Signals(signum).name}; ") and "rerun" in last, stderr
        # Nothing queued was sent after the stop: at most the requests already in flight.
        assert len(server.completion_requests()) == sent_after_exit <= sent_at_stop + CONCURRENCY
        assert sent_after_exit < N_ROWS
        # The partial output is whole JSON Lines; the final output was not written.
        kept = read_lines(partial)
        assert kept and all(set(entry) == {"key", "row"} for entry in kept)
        assert not output.exists()
        cached = read_lines(output.with_name(output.name + ".cache") / "responses.jsonl")
        assert len(cached) >= len(kept) and all(set(entry) == {"key", "response"} for entry in cached)
        kept_questions = {entry["row"]["question"] for entry in kept}
        assert f"{len(kept)} of {N_ROWS}" in last

        # The rerun sends only the rows that were not kept, and finishes.
        before = len(server.completion_requests())
        rerun = start(args)
        _, stderr = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, stderr
        resent = server.completion_requests()[before:]
    questions_resent = [question_of(r.body["messages"][-1]["content"]) for r in resent]
    assert not kept_questions & set(questions_resent)
    # (A reply that arrived as the signal did may be in the cache only: it is not sent again either.)
    assert len(questions_resent) == len(set(questions_resent)) <= N_ROWS - len(kept)
    assert len(read_lines(output)) == N_ROWS and not partial.exists()


ATOMIC_WRITER = """
import sys, time
from belle_hf.interrupts import handle_signals
from belle_hf.io import atomic_write
with handle_signals():
    with atomic_write(sys.argv[1]) as handle:
        handle.write(b"half of a new version")
        handle.flush()
        print("writing", flush=True)
        time.sleep(60)
"""


def start_atomic_writer(target: Path) -> tuple[subprocess.Popen, Path]:
    """A process in the middle of an atomic write of ``target``; returns it and its temp file."""
    before = set(target.parent.glob(f".{target.name}.*.tmp"))
    process = subprocess.Popen([sys.executable, "-c", ATOMIC_WRITER, str(target)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing", process.stderr.read()
    [temp] = set(target.parent.glob(f".{target.name}.*.tmp")) - before
    return process, temp


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_save_removes_the_temp_file_and_keeps_the_old_output(signum, tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n", encoding="utf-8")
    process, temp = start_atomic_writer(target)
    process.send_signal(signum)
    process.communicate(timeout=30)
    assert process.returncode != 0
    assert target.read_text(encoding="utf-8") == "old\n"
    assert not temp.exists() and list(tmp_path.iterdir()) == [target]


def test_the_next_run_removes_temp_files_a_sigkill_left(tmp_path, sample_file):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n", encoding="utf-8")
    process, stale = start_atomic_writer(target)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert stale.exists() and target.read_text(encoding="utf-8") == "old\n"
    result = subprocess.run([sys.executable, "-m", "belle_hf.cli", "data", "convert", str(sample_file), "-o",
                             str(target)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert not stale.exists() and f"removed {stale}" in result.stderr
    assert target.read_text(encoding="utf-8") != "old\n"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    # A temp file of a write still going on is left alone; only a dead writer's is removed.
    from belle_hf.io import clean_stale_temps

    live, in_use = start_atomic_writer(target)
    try:
        assert clean_stale_temps(target) == [] and in_use.exists()
    finally:
        live.kill()
        live.wait()
    assert clean_stale_temps(target) == [in_use] and not in_use.exists()


@pytest.fixture
def sample_file(tmp_path_factory) -> Path:
    from belle_hf.testing.sample_data import write_sample_files

    files = write_sample_files(tmp_path_factory.mktemp("samples"))
    return next(Path(path) for path in files if Path(path).name == "alpaca.jsonl")


def test_sigterm_ends_the_chat_where_ctrl_c_only_stops_a_reply():
    import io

    from belle_hf.chat.terminal import run_terminal_chat
    from belle_hf.interrupts import Interrupted

    inputs = iter([Interrupted(signal.SIGINT), "/exit"])

    def read(prompt):
        item = next(inputs)
        if isinstance(item, BaseException):
            raise item
        return item

    run_terminal_chat(session=None, read=read, out=io.StringIO())  # Ctrl-C clears the line, /exit quits
    inputs = iter([Interrupted(signal.SIGTERM), "/exit"])
    with pytest.raises(Interrupted) as stopped:
        run_terminal_chat(session=None, read=read, out=io.StringIO())
    assert stopped.value.exit_code == 143
