"""Bad invocations of the real ``belle`` command: never a traceback, one error line, exit 1 (bad
input) or 2 (usage)."""

from __future__ import annotations

import subprocess
import sys

import pytest

RECORD = '{"instruction": "你好", "input": "", "output": "你好！"}\n'

# (arguments, exit code, text the error line must hold); {tmp} is the test's folder, {src} a
# valid input file and {file} a plain file.
CASES = [
    (["train"], 2, "Missing argument"),
    (["data", "generate", "--no-such-flag"], 2, "No such option: --no-such-flag"),
    (["eval", "judge", "--answers"], 2, "requires an argument"),
    (["eval", "judge", "--answers", "{src}", "--prompts", "{src}", "--base-url", "http://127.0.0.1:9/v1",
      "--model", "m", "-o", "{tmp}/o.jsonl", "--summary", "{tmp}/s.json", "--concurrency", "0"], 2, "--concurrency"),
    (["eval", "judge", "--answers", "{src}", "--prompts", "{src}", "--base-url", "ftp://example.com/v1",
      "--model", "m", "-o", "{tmp}/o.jsonl", "--summary", "{tmp}/s.json"], 1, "--base-url"),
    (["eval", "generate", "--eval-set", "{src}", "--model", "m", "--base-url", "localhost:8000", "-o",
      "{tmp}/a.jsonl"], 1, "--base-url"),
    (["data", "generate", "--seed-tasks", "{src}", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
      "-n", "0", "-o", "{tmp}/g.jsonl"], 1, "-n: must be at least 1"),
    (["data", "convert", "{src}", "-o", "/proc/belle-out.jsonl"], 1, "/proc/belle-out.jsonl"),
    (["data", "convert", "{src}", "-o", "{file}/out.jsonl"], 1, "out.jsonl"),
    (["data", "convert", "{src}", "-o", "{src}"], 1, "is the input"),
]


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "belle_hf.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("args", "code", "says"), CASES, ids=[" ".join(c[0][:3]) + f" #{i}" for i, c in enumerate(CASES)])
def test_bad_invocations_exit_with_one_error_line_and_no_traceback(args, code, says, tmp_path):
    src = tmp_path / "src.jsonl"
    src.write_text(RECORD, encoding="utf-8")
    plain = tmp_path / "plain-file"
    plain.write_text("not a folder", encoding="utf-8")
    args = [a.format(tmp=tmp_path, src=src, file=plain) for a in args]
    result = run(args)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == code, output
    errors = [line for line in result.stderr.splitlines() if line.lower().startswith("error:")]
    assert len(errors) == 1 and says in errors[0], result.stderr
    assert errors[0] == result.stderr.strip().splitlines()[-1]
    assert src.read_text(encoding="utf-8") == RECORD


def test_interrupt_exit_codes_come_from_the_signal():
    import signal

    from belle_hf.interrupts import Interrupted

    assert Interrupted(signal.SIGINT).exit_code == 130 and Interrupted(signal.SIGTERM).exit_code == 143
    assert isinstance(Interrupted(signal.SIGTERM), KeyboardInterrupt)
    assert Interrupted(signal.SIGTERM, hint="12 kept").message() == "interrupted by SIGTERM; 12 kept"


def test_a_keyboard_interrupt_inside_a_command_is_exit_130_with_one_line(run_belle, monkeypatch, tmp_path):
    # Ctrl-C while a command runs (here: while the input is read) must not exit 0 in silence.
    import belle_hf.data.convert as convert

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(convert, "convert_file", interrupted)
    src = tmp_path / "src.jsonl"
    src.write_text(RECORD, encoding="utf-8")
    code, _, err = run_belle("data", "convert", src, "-o", tmp_path / "out.jsonl")
    assert code == 130
    assert err.strip().splitlines() == [err.strip()] and err.startswith("interrupted by SIGINT; ")
