"""A command whose optional dependencies are missing says which extra to install, in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

# A real `belle` process in which importing the extra's package fails, as on an install without it.
RUN_WITHOUT = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
from belle_hf.cli import main
raise SystemExit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("blocked, command, extra", [
    ("gguf", ["export", "gguf", "{model}", "-o", "{tmp}/m.gguf"], "quant"),
    ("gptqmodel", ["quantize", "gptq", "{model}", "-o", "{tmp}/q", "--calibration", "sample:alpaca"], "quant"),
    ("optimum", ["quantize", "gptq", "{model}", "-o", "{tmp}/q", "--calibration", "sample:alpaca"], "quant"),
    ("fastapi,uvicorn", ["serve", "{model}"], "serve"),
])
def test_missing_extra_is_one_line_naming_the_install(tmp_path, blocked, command, extra):
    model = tmp_path / "model"
    model.mkdir()
    argv = [part.format(model=model, tmp=tmp_path) for part in command]
    done = subprocess.run([sys.executable, "-c", RUN_WITHOUT, blocked, *argv], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"pip install 'belle-hf[{extra}]'" in lines[0] and blocked.split(",")[0] in lines[0]
    assert not (tmp_path / "q").exists() and not (tmp_path / "m.gguf").exists()
