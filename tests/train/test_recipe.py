"""Recipes: YAML round trip, command-line overrides, validation, and every shipped recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from belle_hf.errors import BelleError
from belle_hf.train.recipe import DataSource, Recipe, apply_overrides, load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
PAPER_RECIPES = sorted(p for p in RECIPES.rglob("*.yaml") if p.name != "quickstart.yaml")


def test_yaml_round_trip(tmp_path):
    recipe = Recipe(model="bigscience/bloomz-7b1-mt", data=[DataSource("train_2M_CN", weight=2.0, max_samples=200_000)],
                    method="full", eval_split=0.01, training={"learning_rate": 8e-6, "packing": True})
    path = tmp_path / "r.yaml"
    path.write_text(recipe.to_yaml(), encoding="utf-8")
    assert load_recipe(path) == recipe


def test_overrides_are_dotted_and_yaml_typed(write_recipe):
    path = write_recipe()
    recipe = load_recipe(path, ["lora.r=16", "training.learning_rate=1e-4", "data.0.max_samples=10",
                                "packing=true", "lora.target_modules=[q_proj, v_proj]", "method=full"])
    assert recipe.lora.r == 16
    assert recipe.training["learning_rate"] == pytest.approx(1e-4)
    assert recipe.data[0].max_samples == 10
    assert recipe.training["packing"] is True  # an SFTConfig field at top level goes under training
    assert recipe.lora.target_modules == ["q_proj", "v_proj"]
    assert recipe.method == "full"


def test_override_can_extend_bare_data_paths():
    values = apply_overrides({"model": "m", "data": ["train_2M_CN"]}, ["data.0.weight=3"])
    assert values["data"] == [{"path": "train_2M_CN", "weight": 3}]


@pytest.mark.parametrize("override, message", [
    ("nonsense=1", "neither a recipe field"),
    ("method=adapter", "method must be one of"),
    ("data.5.weight=1", "not an index"),
    ("lora.rank=4", "unknown lora field"),
    ("novalue", "expected key=value"),
])
def test_bad_overrides_name_the_problem(write_recipe, override, message):
    with pytest.raises(BelleError, match=message):
        load_recipe(write_recipe(), [override])


def test_unknown_fields_and_missing_data_are_refused(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: m\ndata: [train_2M_CN]\nlearning_rate: 1\n", encoding="utf-8")
    with pytest.raises(BelleError, match="unknown recipe field.*learning_rate"):
        load_recipe(path)
    path.write_text("model: m\n", encoding="utf-8")
    with pytest.raises(BelleError, match="'data' is required"):
        load_recipe(path)
    recipe = Recipe(model="m", data=[DataSource("no_such_corpus_or_file.jsonl")])
    with pytest.raises(BelleError, match="no_such_corpus_or_file"):
        recipe.check_data_names()
    recipe = Recipe(model="m", data=[DataSource("BelleGroup/train_9M_CN")])
    with pytest.raises(BelleError, match="not a BELLE corpus"):
        recipe.check_data_names()
    recipe = Recipe(model="m", data=[DataSource("train_2M_CN")], training={"max_seq_length": 1024})
    with pytest.raises(BelleError, match="max_seq_length"):
        recipe.check_training_fields()


def test_quickstart_recipe_is_valid():
    recipe = load_recipe(RECIPES / "quickstart.yaml")
    recipe.check_data_names()
    recipe.check_training_fields()
    assert recipe.model == "tiny" and recipe.method == "lora"


def test_every_paper_recipe_is_shipped():
    names = {p.stem for p in PAPER_RECIPES}
    expected = {"bloomz-7b1-mt-0.2M", "bloomz-7b1-mt-0.6M", "bloomz-7b1-mt-1M", "bloomz-7b1-mt-2M",
                "llama-7b-full-2M", "llama-7b-full-0.6M", "llama-7b-lora-0.6M", "llama-7b-lora-2M", "llama-7b-lora-4M",
                "llama-13b-lora-2M", "llama-7b-full-2M-math-lora", "llama-7b-full-2M-math-full"}
    assert expected <= names


@pytest.mark.parametrize("path", PAPER_RECIPES, ids=lambda p: p.stem)
def test_paper_recipe_validates_without_download(path):
    recipe = load_recipe(path)
    recipe.check_data_names()          # every BELLE corpus name resolves in the registry
    recipe.check_training_fields()     # every training key is an SFTConfig field
    header = path.read_text(encoding="utf-8").splitlines()[:6]
    assert any("arXiv" in line for line in header), "the header cites the paper"
    assert any("score" in line.lower() for line in header), "the header cites the score it reproduces"
    assert recipe.training["max_length"] == 1024
    assert recipe.training["lr_scheduler_type"] == "cosine"
    from belle_hf.train.trainer import sft_config_values

    values = sft_config_values(recipe, gpu=True)  # what SFTConfig(**values) receives on a GPU machine
    stage = json.loads(Path(values["deepspeed"]).read_text())["zero_optimization"]["stage"]
    assert stage == (3 if recipe.method == "full" else 2)
    assert values["assistant_only_loss"] is True


@pytest.mark.parametrize("name, stage", [("zero2.json", 2), ("zero3_offload.json", 3)])
def test_deepspeed_configs_parse_and_reach_sft_config(name, stage, write_recipe):
    config = json.loads((RECIPES / "deepspeed" / name).read_text())
    assert config["zero_optimization"]["stage"] == stage
    if stage == 3:
        assert config["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
        assert config["zero_optimization"]["offload_param"]["device"] == "cpu"
    # "auto" values let the Trainer fill batch sizes and precision from SFTConfig.
    assert config["train_micro_batch_size_per_gpu"] == "auto"
    pytest.importorskip("deepspeed", reason="deepspeed is in the [gpu] extra")
    from belle_hf.train.trainer import build_sft_config

    recipe = load_recipe(write_recipe(), [f"training.deepspeed={name}"])
    args = build_sft_config(recipe)
    assert Path(args.deepspeed) == RECIPES / "deepspeed" / name


def test_recipe_yaml_is_plain_yaml():
    for path in [RECIPES / "quickstart.yaml", *PAPER_RECIPES]:
        assert isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict)


def test_recipes_refuse_tokens(write_recipe):
    with pytest.raises(BelleError, match="must not hold tokens"):
        load_recipe(write_recipe(), ["training.hub_token=hf_secret"])


def test_model_card_draft_of_a_paper_recipe():
    from belle_hf.train.card import training_card

    recipe = load_recipe(RECIPES / "belle" / "llama-7b-lora-2M.yaml")
    card = training_card(recipe, {"train": {"train_loss": 1.25}, "examples": {"train": 10, "eval": 1}})
    assert card.data.base_model == "huggyllama/llama-7b"
    assert card.data.base_model_relation == "adapter"
    assert card.data.datasets == ["BelleGroup/train_2M_CN"]
    assert card.data.library_name == "peft"
    text = str(card)
    assert "| learning_rate | 0.0002 |" in text and "| LoRA r / alpha / dropout | 8 / 16 / 0.05 |" in text
    assert "| train_loss | 1.25 |" in text and "research use only" in text
    full = training_card(load_recipe(RECIPES / "belle" / "llama-7b-full-2M.yaml"))
    assert full.data.library_name == "transformers" and full.data.base_model_relation == "finetune"


@pytest.mark.parametrize("override, field, expected", [
    ("training.learning_rate=abc", "training.learning_rate", "float"),
    ("training.max_steps=six", "training.max_steps", "int"),
    ("lora.r=abc", "lora.r", "int"),
    ("data.0.weight=heavy", "data[0].weight", "float | None"),
])
def test_wrong_types_are_refused_by_a_real_belle_train_before_any_model_loads(write_recipe, tmp_path, override,
                                                                                field, expected):
    import subprocess
    import sys

    recipe = write_recipe(model=str(tmp_path / "no-model-here"))  # reaching the loader would fail differently
    done = subprocess.run([str(Path(sys.executable).with_name("belle")), "train", str(recipe), override],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{field} must be {expected}" in errors[0], done.stderr
    assert not (tmp_path / "out").exists()


def test_string_numbers_become_numbers(write_recipe):
    recipe = load_recipe(write_recipe(), ["training.max_steps='6'", "lora.r='4'"])
    recipe.check_training_fields()
    assert recipe.training["max_steps"] == 6 and recipe.lora.r == 4


def test_an_empty_data_file_is_named_by_a_real_belle_train(write_recipe, tmp_path):
    import subprocess
    import sys

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n \n", encoding="utf-8")
    recipe = write_recipe(data=[{"path": str(empty)}])
    done = subprocess.run([str(Path(sys.executable).with_name("belle")), "train", str(recipe)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"error: recipe: data[0]: {empty} is empty: it holds no records"


def test_sft_config_of_a_recipe_without_checkpointing_settings_does_not_warn(write_recipe):
    import warnings

    from belle_hf.train.trainer import build_sft_config

    recipe = load_recipe(write_recipe())
    recipe.training.pop("activation_checkpointing")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # TRL's default once came as a deprecated name
        args = build_sft_config(recipe)
    assert args.activation_checkpointing is True  # TRL's default, kept
