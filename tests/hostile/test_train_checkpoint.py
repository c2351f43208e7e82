"""A kill while a checkpoint is being saved: the rerun sets the incomplete checkpoint aside (and says
so), resumes from the newest complete one and finishes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from trainkit import belle_command, belle_env, logged_steps, run_belle_process, train_until_saved, write_recipe

pytestmark = pytest.mark.slow


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# What a kill leaves at different moments of transformers' save (weights, optimizer and scheduler,
# RNG state, then trainer_state.json last).
DAMAGE = {
    "empty folder": lambda c: [p.unlink() for p in c.iterdir()],
    "weights cut short": lambda c: truncate(c / "adapter_model.safetensors"),
    "optimizer cut short": lambda c: truncate(c / "optimizer.pt"),
    "no rng state, no trainer state": lambda c: [(c / n).unlink() for n in ("rng_state.pth", "trainer_state.json")],
    "trainer state cut short": lambda c: truncate(c / "trainer_state.json"),
}


def test_resume_skips_incomplete_checkpoints(tiny_model_dir, tmp_path):
    from belle_hf.train import load_recipe, train

    first = tmp_path / "first"
    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, first, max_steps=4)
    train_until_saved(recipe, 3)
    assert (first / "checkpoint-3" / "trainer_state.json").is_file()
    for name, damage in DAMAGE.items():
        out = tmp_path / name.replace(" ", "-").replace(",", "")
        shutil.copytree(first, out)
        damage(out / "checkpoint-3")
        result = train(load_recipe(recipe, [f"output_dir={out}"]))
        assert result.resumed_from == str(out / "checkpoint-2"), name
        assert [p.name for p in result.set_aside] == [p.name for p in out.glob("incomplete-checkpoint-3-*")], name
        assert len(result.set_aside) == 1 and result.set_aside[0].is_dir(), name
        assert logged_steps(out) == [1, 2, 3, 4], name
        assert (out / "checkpoint-4" / "trainer_state.json").is_file(), name


def test_sigkill_while_saving_a_checkpoint_then_rerun_finishes(tiny_model_dir, tmp_path):
    """A real ``belle train`` process stopped the moment a checkpoint folder appears without its
    trainer_state.json (mid-save), then SIGKILLed; the rerun resumes from the checkpoint before."""
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, out, max_steps=12)
    process = subprocess.Popen(belle_command("train", recipe), env=belle_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    caught = None
    try:
        deadline = time.monotonic() + 600
        seen: set[str] = set()
        while caught is None and process.poll() is None and time.monotonic() < deadline:
            for checkpoint in out.glob("checkpoint-*") if out.is_dir() else []:
                if checkpoint.name in seen or (checkpoint / "trainer_state.json").exists():
                    continue
                os.kill(process.pid, signal.SIGSTOP)  # freeze it, then look: is the save still under way?
                if not (checkpoint / "trainer_state.json").exists():
                    caught = checkpoint
                    break
                seen.add(checkpoint.name)
                os.kill(process.pid, signal.SIGCONT)
            time.sleep(0.001)
    finally:
        process.kill()  # SIGKILL (a stopped process dies too)
        process.wait()
    if caught is None:
        pytest.skip("every checkpoint was saved before the test could stop the process mid-save")
    assert process.returncode == -signal.SIGKILL
    step = int(caught.name.split("-")[1])
    done = run_belle_process("train", recipe)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert f"checkpoint-{step} is incomplete" in done.stderr and "set aside" in done.stderr
    assert list(out.glob(f"incomplete-checkpoint-{step}-*"))
    if step > 1:
        assert f"resumed from {out / f'checkpoint-{step - 1}'}" in done.stdout
    assert logged_steps(out) == list(range(1, 13))


def test_sigint_and_sigterm_stop_with_an_error_and_the_rerun_resumes(tiny_model_dir, tmp_path):
    """Ctrl-C (SIGINT) and SIGTERM on a real ``belle train``: a non-zero exit with one line on stderr and
    no traceback (the contract of belle_hf.interrupts), and nothing lost: the rerun resumes and finishes."""
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, out, max_steps=12)
    for sig, after in ((signal.SIGINT, "checkpoint-2"), (signal.SIGTERM, "checkpoint-5")):
        process = subprocess.Popen(belle_command("train", recipe), env=belle_env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 600
        while not (out / after / "trainer_state.json").exists() and process.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.05)
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 128 + sig, (sig, stderr)
        assert "Traceback" not in stderr, stderr
        last = stderr.strip().splitlines()[-1]
        assert last.startswith(f"interrupted by {sig.name}; ") and "rerun the same command to resume" in last
        assert not (out / "metrics.json").exists()
    done = run_belle_process("train", recipe)
    assert done.returncode == 0, done.stderr
    assert "resumed from" in done.stdout
    assert logged_steps(out) == list(range(1, 13))
