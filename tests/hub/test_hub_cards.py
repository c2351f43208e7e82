"""Model cards: built from model_cards/ with huggingface_hub, validated offline like the Hub."""

from __future__ import annotations

import json

import pytest
import yaml

from belle_hf.errors import BelleError
from belle_hf.hub.cards import CardConfig, build_model_card, validate_card

SUMMARY = {"overall": 0.72, "per_class": {"math": 0.41, "generation": 0.88}, "score_wo_others": 0.8,
           "judge": {"model": "gpt-4"}}


def _meta(card) -> dict:
    return yaml.safe_load(str(card).split("---\n")[1])


@pytest.mark.parametrize("kind, relation, library", [
    ("model", "finetune", "transformers"), ("adapter", "adapter", "peft"), ("quantized", "quantized", "transformers"),
    ("merge", "merge", "transformers"), ("xor", "finetune", None)])
def test_card_metadata_per_kind(kind, relation, library):
    card = build_model_card(CardConfig("me/belle-7b", kind=kind, base_model="huggyllama/llama-7b",
                                       quantization="GPTQ 4-bit" if kind == "quantized" else None,
                                       eval_summary=SUMMARY))
    meta = _meta(card)
    assert meta["base_model_relation"] == relation and meta["base_model"] == "huggyllama/llama-7b"
    assert meta.get("library_name") == library
    assert meta["pipeline_tag"] == "text-generation" and "conversational" in meta["tags"]
    assert all(m["messages"] for m in meta["widget"])
    assert any("\u4e00" <= ch <= "\u9fff" for ch in meta["widget"][0]["messages"][0]["content"])
    results = meta["model-index"][0]["results"][0]
    assert {m["type"]: m["value"] for m in results["metrics"]} == {
        "overall": 0.72, "score_wo_others": 0.8, "score_math": 0.41, "score_generation": 0.88}
    text = str(card)
    assert "research use only" in text and "@misc{BELLE" in text
    assert ("belle xor decode" in text) == (kind == "xor")
    assert ("extra_gated_prompt" in meta) == (kind == "xor")


def test_card_round_trips_through_huggingface_hub(tmp_path):
    from huggingface_hub import ModelCard

    card = build_model_card(CardConfig("me/belle-7b", base_model="huggyllama/llama-7b", license="other",
                                       license_name="llama-license", license_link="LICENSE"))
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    assert loaded.data.license == "other" and loaded.data.license_name == "llama-license"
    assert loaded.data.base_model == "huggyllama/llama-7b"


def test_eval_summary_from_the_eval_command_file(tmp_path, run_belle):
    from belle_hf.hub.cards import load_eval_summary

    path = tmp_path / "summary.json"
    path.write_text(json.dumps({**SUMMARY, "n": 10, "usage": {}}))
    assert load_eval_summary(path)["overall"] == 0.72
    path.write_text(json.dumps({"score": 1}))
    with pytest.raises(BelleError, match="not an eval summary"):
        load_eval_summary(path)


@pytest.mark.parametrize("change, message", [
    ({"license": "llama1"}, "not a Hub license id"),
    ({"license": "other"}, "license_name"),
    ({"datasets": ["BelleGroup/train 0.5M"]}, "datasets"),
    ({"base_model": "a/b/c"}, "base_model"),
    ({"widget": [{"messages": "你好"}]}, "widget"),
])
def test_invalid_cards_are_rejected(change, message):
    config = CardConfig("me/belle-7b", base_model="huggyllama/llama-7b")
    for key, value in change.items():
        setattr(config, key, value)
    with pytest.raises(BelleError, match=message):
        build_model_card(config)


def test_widget_must_be_a_list():
    from huggingface_hub import ModelCard

    card = ModelCard("---\nlicense: mit\nwidget:\n  messages: []\n---\n# x\n")
    with pytest.raises(BelleError, match="widget: must be a list"):
        validate_card(card)
    with pytest.raises(BelleError, match="YAML"):
        validate_card("---\nlicense: [mit\n---\n# x\n")  # the text of a card whose YAML is broken


def test_quantization_is_detected(tmp_path):
    from belle_hf.hub.push import detect_quantization

    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "gptq", "bits": 4}}))
    assert detect_quantization(tmp_path) == "GPTQ 4-bit"
    (tmp_path / "belle-7b-Q4_K_M.gguf").write_bytes(b"GGUF")
    assert detect_quantization(tmp_path) == "GGUF q4_k_m"


def test_ignore_patterns_keep_model_files(tmp_path):
    from belle_hf.hub.ignore import files_to_upload, ignore_patterns

    for rel in ["model.safetensors", "tokenizer.json", "tokenizer_config.json", "sub/.env", ".env.local",
                "hf_token.txt", "checkpoint-5/optimizer.pt", "scheduler.pt", "runs/events", "README.md"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    kept = files_to_upload(tmp_path, ignore_patterns())
    assert kept == ["README.md", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    with_state = files_to_upload(tmp_path, ignore_patterns(include_training_state=True))
    assert "checkpoint-5/optimizer.pt" in with_state and "scheduler.pt" in with_state and "sub/.env" not in with_state
