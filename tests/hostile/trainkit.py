"""Small training recipes on the tiny model and a real ``belle train`` process, for the hostile train tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

NOISE = ("Could not load this library", "Detected no triton", "Setting accelerator to CPU", "FutureWarning",
         "GPT-QModel", "is an Enum subclass")
"""Start-up lines of optional libraries that ``belle train`` must not show."""


def write_recipe(path: Path, model: str | Path, output_dir: Path, **training) -> Path:
    """A LoRA recipe on ``model`` that saves a checkpoint every step."""
    settings = {"max_steps": 3, "per_device_train_batch_size": 4, "max_length": 128, "logging_steps": 1,
                "save_steps": 1, "save_total_limit": 10, "learning_rate": 1e-3, "activation_checkpointing": False}
    settings.update(training)
    values = {"model": str(model), "method": "lora", "output_dir": str(output_dir),
              "data": [{"path": "sample:belle-multiturn", "max_samples": 24}], "training": settings}
    path.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    return path


def belle_command(*args: str | Path) -> list[str]:
    """The installed ``belle`` script (the one beside this Python) with ``args``."""
    return [str(Path(sys.executable).with_name("belle")), *map(str, args)]


def belle_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1", NO_COLOR="1", TERM="dumb")
    return env


def run_belle_process(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a real ``belle`` process to the end; its exit code, stdout and stderr."""
    return subprocess.run(belle_command(*args), env=belle_env(), capture_output=True, text=True, timeout=timeout,
                          check=False)


def logged_steps(folder: Path) -> list[int]:
    """The steps with a training loss in a finished run's ``metrics.json``."""
    import json

    history = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))["log_history"]
    return [entry["step"] for entry in history if "loss" in entry]


def train_until_saved(recipe: Path, step: int) -> None:
    """Train ``recipe`` in this process and stop it (KeyboardInterrupt) once checkpoint ``step`` is saved."""
    import pytest
    from transformers import TrainerCallback

    from belle_hf.train import load_recipe, train

    class Stop(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(load_recipe(recipe), callbacks=[Stop()])
