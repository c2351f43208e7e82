"""README's code blocks run as written, after command 1, without clobbering command 1's result.

Every ```bash and ```python block runs, in README order, in a scratch folder holding the
recipes, after `belle train recipes/quickstart.yaml` (command 1 once its install is done). A
block that needs what a test cannot have (the network, a Hub account, a GPU, a 7B model, a
paid API) carries ``<!-- readme-test: skip (reason) -->`` on the line before it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
BLOCK = re.compile(r"(?:<!--\s*readme-test:\s*(?P<marker>.*?)\s*-->\n)?```(?P<lang>[\w-]*)\n(?P<body>.*?)^```",
                   re.S | re.M)
RUNNABLE = ("bash", "python")
COMMAND_1 = ("python -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && pip install -e . "
             "&& belle train recipes/quickstart.yaml")
COMMAND_2 = ("python -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && pip install -e \".[dev]\" "
             "&& python -m pytest")


def readme_blocks() -> list[dict]:
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start("body"))
        blocks.append({"lang": match["lang"], "body": match["body"], "marker": match["marker"], "line": line})
    return blocks


def test_every_block_runs_or_says_why_not():
    blocks = readme_blocks()
    assert len(blocks) >= 10
    for block in blocks:
        where = f"README.md:{block['line']}"
        assert block["lang"] in RUNNABLE + ("text", "yaml", "json"), f"{where}: unknown block language"
        if block["marker"] is not None:
            assert re.fullmatch(r"skip \(.+\)", block["marker"]), f"{where}: marker must be 'skip (reason)'"
    markers = README.read_text(encoding="utf-8").count("readme-test:")
    assert markers == sum(block["marker"] is not None for block in blocks), "a readme-test marker is not before a block"
    runnable = [block for block in blocks if block["lang"] in RUNNABLE and block["marker"] is None]
    assert len(runnable) >= 3


def test_the_two_commands_are_written_as_the_brief_gives_them():
    first = readme_blocks()[0]["body"]
    assert COMMAND_1 in first and COMMAND_2 in first


def test_no_block_points_outside_the_checkout():
    """A fresh checkout has no ``../shared``: commands use files the README says how to get."""
    for block in readme_blocks():
        assert "../" not in block["body"], f"README.md:{block['line']}: a path outside the checkout"


def _digest(folder: Path) -> dict[str, str]:
    """Each file's SHA-256; the lineage record without its ``evaluations``, which `belle eval
    generate` attaches to the model it measured by design (issue 14), so only what the training run
    recorded is compared."""

    def content(path: Path) -> bytes:
        if path.name == "belle_lineage.json":
            record = json.loads(path.read_text(encoding="utf-8"))
            record.pop("evaluations", None)
            return json.dumps(record, sort_keys=True).encode()
        return path.read_bytes()

    return {str(path.relative_to(folder)): hashlib.sha256(content(path)).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.slow
def test_readme_blocks_run_as_written(tmp_path, shared_data):
    work = tmp_path / "checkout"
    shutil.copytree(REPO_ROOT / "recipes", work / "recipes")
    # `belle eval generate --eval-set eval_set.json` after README's fetch command: the first rows of
    # BELLE's real eval set (the test cannot fetch).
    rows = (shared_data / "belle_eval" / "eval_set.json").read_text(encoding="utf-8").splitlines()[:4]
    (work / "eval_set.json").write_text("\n".join(rows) + "\n", encoding="utf-8")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}

    def run(language: str, body: str, where: str) -> None:
        command = ["bash", "-euo", "pipefail", "-c", body] if language == "bash" else [sys.executable, "-c", body]
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{where} failed:\n{body}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, f"{where}:\n{done.stderr[-3000:]}"

    # Command 1's training, cut to one epoch: what the snippets need is its output folder, not a
    # well-trained model (tests/train runs the shipped recipe in full).
    run("bash", "belle train recipes/quickstart.yaml training.num_train_epochs=1", "command 1")
    quickstart = _digest(work / "runs" / "quickstart")
    for block in readme_blocks():
        if block["lang"] in RUNNABLE and block["marker"] is None:
            run(block["lang"], block["body"], f"README.md:{block['line']}")
    assert _digest(work / "runs" / "quickstart") == quickstart, "a README snippet changed command 1's result"
