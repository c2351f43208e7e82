import subprocess
import sys


def test_every_stage_is_mounted(run_belle):
    code, out, _ = run_belle("--help")
    assert code == 0
    for command in ("data", "train", "merge", "vocab", "eval", "hub", "xor", "quantize", "export", "chat", "serve",
                    "testing"):
        assert f" {command} " in out, command


def test_help_does_not_import_the_heavy_libraries():
    code = ("import sys; from belle_hf.cli import main; main(['--help']); "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'trl', 'gptqmodel', 'openai') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_user_errors_exit_1_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "belle_hf.cli", "data", "convert", str(tmp_path / "nope.jsonl"),
                             "-o", str(tmp_path / "o.jsonl")], capture_output=True, text=True)
    assert result.returncode == 1
    assert "nope.jsonl" in result.stderr and "Traceback" not in result.stderr
