"""Reruns of ``belle train`` on a folder that already holds a run: the same recipe finishes or resumes,
another recipe is refused (naming the fields) unless ``--overwrite``, nothing of the old run is
rewritten with settings it was not trained with, and each message is printed once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from trainkit import NOISE, logged_steps, run_belle_process, train_until_saved, write_recipe

pytestmark = pytest.mark.slow


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of a run folder's top level and checkpoints, by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_changed_recipe_never_rewrites_the_old_run(run_belle, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, out, max_steps=2)
    code, _, err = run_belle("train", recipe)
    assert code == 0, err
    before = snapshot(out)

    # Same recipe: nothing to do, said once; cadence-only changes count as the same run.
    for extra in ([], ["training.logging_steps=5", "training.save_steps=7"]):
        code, stdout, err = run_belle("train", recipe, *extra)
        assert code == 0, err
        assert (stdout + err).count("already holds this recipe's finished run") == 1
        assert snapshot(out) == before

    # Another recipe (or a shorter run): refused, naming each differing field, and the folder untouched.
    code, stdout, err = run_belle("train", recipe, "training.learning_rate=0.5", "lora.r=4")
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert "training.learning_rate: 0.001 -> 0.5" in line and "lora.r: 8 -> 4" in line and "--overwrite" in line
    assert "trained model written" not in stdout
    code, _, err = run_belle("train", recipe, "training.max_steps=1")
    assert code == 1 and "training.max_steps: 2 -> 1" in err
    assert snapshot(out) == before

    # --overwrite replaces the old run: a real run of the new recipe, not a resume of the old one.
    code, stdout, err = run_belle("train", recipe, "training.learning_rate=0.5", "lora.r=4", "--overwrite")
    assert code == 0, err
    assert "resumed from" not in stdout
    assert yaml.safe_load((out / "recipe.yaml").read_text(encoding="utf-8"))["lora"]["r"] == 4
    assert json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))["r"] == 4
    assert logged_steps(out) == [1, 2]

    # A longer run of the same recipe goes on from the last checkpoint and trains the extra steps.
    code, stdout, err = run_belle("train", recipe, "training.learning_rate=0.5", "lora.r=4", "training.max_steps=3")
    assert code == 0, err
    assert "resumed from" in stdout and "checkpoint-2" in stdout
    assert logged_steps(out) == [1, 2, 3]


def test_an_interrupted_run_of_another_recipe_is_not_resumed(tiny_model_dir, tmp_path):
    from belle_hf.errors import BelleError
    from belle_hf.train import load_recipe, train

    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, out, max_steps=4)
    train_until_saved(recipe, 2)
    assert (out / "checkpoint-2").is_dir() and not (out / "metrics.json").exists()
    with pytest.raises(BelleError, match=r"another recipe.*training\.per_device_train_batch_size: 4 -> 2"):
        train(load_recipe(recipe, ["training.per_device_train_batch_size=2"]))
    assert not (out / "metrics.json").exists()
    result = train(load_recipe(recipe))  # the same recipe resumes
    assert result.resumed_from.endswith("checkpoint-2") and logged_steps(out) == [1, 2, 3, 4]


def test_quickstart_prints_next_steps_once_and_no_library_noise(tmp_path):
    """A quickstart-sized run as a real process: no start-up noise of optional libraries, the next
    steps with the real output path, and a rerun says it is done once, on one stream."""
    from belle_hf.shipped import shipped_path

    out = tmp_path / "quick start"
    recipe = shipped_path("recipes", "quickstart.yaml")
    done = run_belle_process("train", recipe, f"output_dir={out}", "training.max_steps=2", "eval_split=4")
    assert done.returncode == 0, done.stderr
    for noise in NOISE:
        assert noise not in done.stderr and noise not in done.stdout, noise
    assert "Traceback" not in done.stderr
    assert done.stdout.count("trained model written to") == 1
    quoted = f"'{out}'"
    for command in (f"belle chat {quoted}", f"belle merge {quoted} -o '{out}-merged'",
                    f"--adapter {quoted}", f"belle hub push-adapter {quoted}"):
        assert command in done.stdout, command
    assert "belle eval generate --model " in done.stdout

    again = run_belle_process("train", recipe, f"output_dir={out}", "training.max_steps=2", "eval_split=4")
    assert again.returncode == 0, again.stderr
    assert (again.stdout + again.stderr).count("already holds this recipe's finished run") == 1
