"""Helpers for the train tests: small recipes on the session's tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture
def write_recipe(tmp_path, tiny_model_dir):
    """Write a small LoRA recipe on the tiny model (a few steps, short sequences); returns its path."""

    def write(name: str = "recipe.yaml", **fields) -> Path:
        training = {"max_steps": 2, "per_device_train_batch_size": 4, "max_length": 128, "logging_steps": 1,
                    "save_steps": 1, "learning_rate": 1e-3, "activation_checkpointing": False,
                    "dataloader_num_workers": 0}
        training.update(fields.pop("training", {}))
        values = {"model": str(tiny_model_dir), "method": "lora", "output_dir": str(tmp_path / "out"),
                  "data": [{"path": "sample:belle-multiturn", "max_samples": 24}], "training": training}
        values.update(fields)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
        return path

    return write
