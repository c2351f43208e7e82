"""``python bench/run.py gpu`` on a machine without CUDA says so and exits 0 (the figures need a GPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the machine without a GPU")
def test_bench_gpu_without_cuda_says_so_and_exits_0():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "gpu"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no CUDA device" in done.stdout and "gpu: skipped=" in done.stdout
