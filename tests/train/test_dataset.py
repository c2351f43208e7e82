"""Data mixing, eval split, device settings and LoRA defaults of the recipe layer (no training)."""

from __future__ import annotations

import pytest

from belle_hf.errors import BelleError
from belle_hf.train.dataset import mix_sources, split_eval
from belle_hf.train.recipe import DataSource, Recipe


def sources(*items) -> list[DataSource]:
    return [DataSource(**item) for item in items]


def test_sources_concatenate_without_weights():
    recipe = Recipe(model="m", data=sources({"path": "sample:alpaca", "max_samples": 30},
                                            {"path": "sample:belle-multiturn", "max_samples": 10}))
    mixed = mix_sources(recipe)
    assert len(mixed) == 40 and mixed.column_names == ["messages"]
    # belle-multiturn rows carry their history: more than one user turn.
    assert sum(sum(m["role"] == "user" for m in row) > 1 for row in mixed["messages"][30:]) > 0


def test_weights_set_the_mixing_ratio():
    recipe = Recipe(model="m", data=sources({"path": "sample:alpaca", "weight": 3.0},
                                            {"path": "sample:belle-multiturn", "weight": 1.0}))
    mixed = mix_sources(recipe)
    multi = sum(sum(m["role"] == "user" for m in row) > 1 for row in mixed["messages"])
    share = multi / len(mixed)
    assert 0.1 < share < 0.4  # about 1 in 4 from the multi-turn source


def test_max_samples_and_eval_split():
    recipe = Recipe(model="m", data=sources({"path": "sample:alpaca"}), max_samples=50, eval_split=0.2)
    train, evaluation = split_eval(mix_sources(recipe), recipe)
    assert (len(train), len(evaluation)) == (40, 10)
    recipe.eval_split = 7
    train, evaluation = split_eval(mix_sources(recipe), recipe)
    assert (len(train), len(evaluation)) == (43, 7)
    recipe.eval_split = 50
    with pytest.raises(BelleError, match="leaves no training data"):
        split_eval(mix_sources(recipe), recipe)


def test_unknown_sample_is_named():
    recipe = Recipe(model="m", data=sources({"path": "sample:nope"}))
    with pytest.raises(BelleError, match="sample:nope"):
        recipe.check_data_names()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU settings")
def test_cpu_settings_are_picked_automatically(tiny_model_dir, tmp_path):
    from belle_hf.train.trainer import build_sft_config

    recipe = Recipe(model=str(tiny_model_dir), data=sources({"path": "sample:alpaca"}), output_dir=str(tmp_path))
    args = build_sft_config(recipe)
    assert args.use_cpu and not args.bf16 and not args.fp16
    assert args.assistant_only_loss and args.report_to in ("none", [], ["none"])
    recipe.training = {"fp16": True}
    with pytest.raises(BelleError, match="fp16 needs a GPU"):
        build_sft_config(recipe)
    recipe.training = {"learning_rate": 3e-4, "packing": True, "max_length": 512}
    args = build_sft_config(recipe)
    assert args.learning_rate == 3e-4 and args.packing and args.max_length == 512


def test_lora_target_modules_per_architecture():
    from belle_hf.train.trainer import build_peft_config, lora_target_modules

    recipe = Recipe(model="m", data=sources({"path": "sample:alpaca"}))
    assert set(lora_target_modules(recipe, "llama")) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                         "up_proj", "down_proj"}
    assert "query_key_value" in lora_target_modules(recipe, "bloom")
    assert lora_target_modules(recipe, "some_new_arch") == "all-linear"
    recipe.lora.target_modules = ["q_proj"]
    config = build_peft_config(recipe, "llama")
    assert config.target_modules == {"q_proj"} and config.r == 8 and config.lora_alpha == 16


def test_a_broken_data_file_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"instruction": "你好", "output": "您好"}\n{broken\n', encoding="utf-8")
    recipe = Recipe(model="m", data=sources({"path": str(path)}))
    with pytest.raises(BelleError, match=r"broken.jsonl:2: invalid JSON"):  # load() names the line itself
        mix_sources(recipe)
