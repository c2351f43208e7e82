"""End to end on the loopback Hub: train -> eval generate + judge -> merge -> GPTQ -> XOR encode ->
push each, then read every card back: the base_model chain, datasets, metrics, eval scores, no
local paths, and the Hub's own metadata check."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

BASE = "belle-test/tiny-llama"
DATA = "belle-test/mini-alpaca"
REPOS = {"adapter": "belle-test/quick-lora", "merged": "belle-test/quick-merged",
         "gptq": "belle-test/quick-gptq", "xor": "belle-test/quick-xor"}
EVAL_SET = [{"question": "1+1等于几？", "std_answer": "2", "class": "math"},
            {"question": "中国的首都是哪里？", "std_answer": "北京", "class": "open qa"},
            {"question": "写一首关于春天的短诗。", "std_answer": "", "class": "generation"}]
PROMPTS = [{"class": name, "prompt": "请按照\"得分:\"这样的形式输出分数。"} for name in ("math", "open qa", "generation")]


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def _meta(readme: bytes) -> dict:
    return yaml.safe_load(readme.decode("utf-8").split("---\n")[1])


def _scores(meta: dict) -> dict:
    return {m["type"]: m for m in meta["model-index"][0]["results"][0]["metrics"]}


@pytest.mark.slow
def test_every_published_artifact_tells_where_it_came_from(hub, tiny_model_dir, tmp_path, run_belle, monkeypatch):
    from huggingface_hub import ModelCard, snapshot_download

    from belle_hf.hub.cards import validate_card
    from belle_hf.hub.lineage import file_sha256
    from belle_hf.testing import sample_data_path
    from belle_hf.testing.openai_server import FakeOpenAIServer

    def belle(*args):
        code, out, err = run_belle(*args)
        assert code == 0, f"belle {' '.join(map(str, args))}: {err}"
        return out

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    # The base model and one corpus come from the Hub; one data file is local.
    belle("hub", "push-model", tiny_model_dir, BASE)
    belle("hub", "push-dataset", sample_data_path("alpaca"), DATA)
    local_data = shutil.copyfile(sample_data_path("messages"), tmp_path / "my_chats.jsonl")
    recipe = {"model": BASE, "method": "lora", "output_dir": "runs/quick", "template": "belle", "eval_split": 8,
              "data": [{"path": DATA, "max_samples": 40, "weight": 2.0}, {"path": str(local_data), "max_samples": 40}],
              "lora": {"modules_to_save": ["lm_head"]},
              "training": {"max_steps": 3, "per_device_train_batch_size": 8, "max_length": 128, "logging_steps": 1,
                           "learning_rate": 1e-2, "activation_checkpointing": False, "dataloader_num_workers": 0}}
    (tmp_path / "quick.yaml").write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    belle("train", tmp_path / "quick.yaml")
    run = tmp_path / "runs" / "quick"
    assert json.loads((run / "adapter_config.json").read_text())["base_model_name_or_path"] == BASE

    # Eval: answers from the adapter folder, judged into the folder's summary.json.
    belle("eval", "generate", "--model", run, "--eval-set", _jsonl(tmp_path / "eval_set.json", EVAL_SET),
          "-o", tmp_path / "answers.jsonl", "--max-new-tokens", "4")
    with FakeOpenAIServer(responder=lambda body: "得分: 0.75") as judge:
        belle("eval", "judge", "--answers", tmp_path / "answers.jsonl", "--prompts",
              _jsonl(tmp_path / "prompts.json", PROMPTS), "--base-url", judge.base_url, "--model", "gpt-4",
              "-o", tmp_path / "judged.jsonl", "--summary", run / "summary.json")
    kinds = [e["stage"] for e in json.loads((run / "belle_lineage.json").read_text())["evaluations"]]
    assert kinds == ["eval generate", "eval judge"]

    belle("merge", run, "-o", tmp_path / "merged")
    gptq_ran = True
    try:
        import gptqmodel  # noqa: F401
    except ImportError:  # the [quant] extra is optional; the rest of the chain is still checked
        gptq_ran = False
    if gptq_ran:
        belle("quantize", "gptq", tmp_path / "merged", "-o", tmp_path / "gptq", "--bits", "4", "--group-size", "32",
              "--calibration", sample_data_path("messages"), "--n-samples", "8", "--eval-samples", "4")
    belle("xor", "encode", "--base", snapshot_download(BASE), "--target", tmp_path / "merged", "-o", tmp_path / "xor")

    belle("hub", "push-adapter", run, REPOS["adapter"])
    belle("hub", "push-model", tmp_path / "merged", REPOS["merged"])
    if gptq_ran:
        belle("hub", "push-quantized", tmp_path / "gptq", REPOS["gptq"])
    belle("hub", "push-xor", tmp_path / "xor", REPOS["xor"])

    files = {kind: hub.repo_files(repo) for kind, repo in REPOS.items() if kind != "gptq" or gptq_ran}
    meta = {kind: _meta(repo_files["README.md"]) for kind, repo_files in files.items()}
    cards = {kind: repo_files["README.md"].decode() for kind, repo_files in files.items()}

    # base_model chain and relations, as the Hub links them.
    assert (meta["adapter"]["base_model"], meta["adapter"]["base_model_relation"]) == (BASE, "adapter")
    assert (meta["merged"]["base_model"], meta["merged"]["base_model_relation"]) == (BASE, "merge")
    assert (meta["xor"]["base_model"], meta["xor"]["base_model_relation"]) == (BASE, "finetune")
    if gptq_ran:
        assert (meta["gptq"]["base_model"], meta["gptq"]["base_model_relation"]) == (REPOS["merged"], "quantized")
        assert "quality.json" in files["gptq"] and "| perplexity |" in cards["gptq"]
    assert f"published as `{REPOS['adapter']}`" in cards["merged"]
    # datasets: the recipe's Hub source; the local file by name and SHA-256 in the body.
    for kind in meta:
        assert meta[kind]["datasets"] == [DATA], kind
        assert "my_chats.jsonl" in cards[kind] and file_sha256(local_data) in cards[kind], kind
    # Metrics equal metrics.json (the training run's, carried through every derived card).
    metrics = json.loads((run / "metrics.json").read_text())
    for kind in meta:
        for key, value in {**metrics["train"], **metrics["eval"]}.items():
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            assert f"| {key} | {shown} |" in cards[kind], (kind, key)
    # Eval scores in model-index: measured on the adapter, carried (and marked) downstream.
    assert _scores(meta["adapter"])["overall"]["value"] == 0.75
    assert "measured on" not in _scores(meta["adapter"])["overall"]["name"]
    for kind in ("merged", "gptq", "xor"):
        if kind in meta:
            overall = _scores(meta[kind])["overall"]
            assert overall["value"] == 0.75 and f"measured on {REPOS['adapter']}" in overall["name"], kind
    # The widget speaks the chat format.
    for kind in meta:
        assert meta[kind]["widget"][0]["messages"][0]["role"] == "user"
    # No absolute local path in any uploaded file.
    local_roots = {str(tmp_path), str(tmp_path.resolve()), str(Path(snapshot_download(BASE)).parent),
                   str(tiny_model_dir), os.path.expanduser("~")}
    for kind, repo_files in files.items():
        for name, data in repo_files.items():
            for root in local_roots:
                assert root.encode() not in data, (kind, name, root)
    # Every card passes the Hub's metadata validation (validate-yaml on the loopback Hub) and ours.
    for kind, text in cards.items():
        card = ModelCard(text)
        card.validate()
        validate_card(card)
