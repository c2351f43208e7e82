"""Shared fixtures: the tiny offline model (built once per session), sample data, BELLE's real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# The tests never reach a hub; transformers and datasets must not try. (Tests that talk to a
# loopback Hub server unset these for themselves: HF_HUB_OFFLINE also blocks loopback.)
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama model + BPE tokenizer with BELLE's chat template, saved as an HF folder."""
    from belle_hf.testing import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """BELLE's real eval set, judge prompts and seed tasks in ../shared/data (never copied here)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"BELLE's real data is not available: {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture
def run_belle(capsys):
    """Run the ``belle`` command in-process; returns (exit code, stdout, stderr)."""
    from belle_hf.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
