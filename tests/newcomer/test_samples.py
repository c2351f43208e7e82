"""The bundled samples (``sample:<key>``) are product data: every conversation distinct, and the
quickstart's eval split shares nothing with its training split."""

from __future__ import annotations

import json

from belle_hf.data import load
from belle_hf.shipped import shipped_path
from belle_hf.testing import SAMPLE_FILES, sample_data_path


def _conversation_keys(dataset) -> list[str]:
    return [json.dumps(messages, ensure_ascii=False, sort_keys=True) for messages in dataset["messages"]]


def test_every_sample_conversation_is_distinct_across_all_files():
    owner: dict[str, str] = {}
    for key in SAMPLE_FILES:
        for conversation in _conversation_keys(load(str(sample_data_path(key)))):
            assert conversation not in owner, f"{key} repeats a conversation of {owner.get(conversation)}: {conversation}"
            owner[conversation] = key
    assert len(owner) == 350


def test_quickstart_eval_split_is_disjoint_from_training():
    from belle_hf.train import load_recipe
    from belle_hf.train.dataset import mix_sources, split_eval

    recipe = load_recipe(shipped_path("recipes", "quickstart.yaml"))
    train, held_out = split_eval(mix_sources(recipe), recipe)
    train_keys, eval_keys = _conversation_keys(train), _conversation_keys(held_out)
    assert len(set(train_keys)) == len(train_keys)
    assert len(set(eval_keys)) == len(eval_keys) > 0
    assert not set(train_keys) & set(eval_keys)


def test_training_with_samples_and_the_tiny_model_needs_no_test_package(tmp_path):
    """``sample:`` data and ``model: tiny`` are product features: train works with belle_hf.testing
    unimportable (as in an install that left the test helpers out)."""
    import subprocess
    import sys

    code = f"""
import sys
sys.modules["belle_hf.testing"] = None  # any import of the test package now fails
from belle_hf.shipped import shipped_path
from belle_hf.train import load_recipe
from belle_hf.train.dataset import mix_sources
from belle_hf.train.trainer import resolve_model_path
recipe = load_recipe(shipped_path("recipes", "quickstart.yaml"), ["output_dir={tmp_path / 'run'}"])
print(len(mix_sources(recipe)), resolve_model_path(recipe))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "base-model" / "model.safetensors").is_file()
