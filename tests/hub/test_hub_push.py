"""End to end against the loopback Hub: push with the real clients, load back, compare."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def _planted_junk(folder: Path) -> None:
    (folder / ".env").write_text("OPENAI_API_KEY=not-for-upload\n")
    (folder / "token").write_text("not-for-upload\n")
    (folder / "optimizer.pt").write_bytes(b"optimizer state")
    (folder / "rng_state.pth").write_bytes(b"rng")
    (folder / "training_args.bin").write_bytes(b"args")
    (folder / "checkpoint-10").mkdir()
    (folder / "checkpoint-10" / "model.safetensors").write_bytes(b"old")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"pyc")


def _card_meta(readme: bytes) -> dict:
    import yaml

    text = readme.decode("utf-8")
    return yaml.safe_load(text.split("---\n")[1])


def test_push_model_excludes_junk_and_loads_back(hub, tiny_model_dir, tmp_path, run_belle):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    _planted_junk(folder)
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"overall": 0.61, "per_class": {"math": 0.3, "open qa": 0.7},
                                   "score_wo_others": 0.66, "judge": {"model": "gpt-4o"}}))
    code, _out, err = run_belle("hub", "push-model", folder, "belle-test/tiny-chat", "--base-model",
                               "belle-test/tiny-base", "--eval-summary", summary, "--dataset", "BelleGroup/train_1M_CN")
    assert code == 0, err
    files = hub.repo_files("belle-test/tiny-chat")
    for junk in (".env", "token", "optimizer.pt", "rng_state.pth", "training_args.bin",
                 "checkpoint-10/model.safetensors", "__pycache__/x.cpython-311.pyc"):
        assert junk not in files
    assert not any(b"not-for-upload" in data for data in files.values())
    assert "model.safetensors" in files and "README.md" in files
    meta = _card_meta(files["README.md"])
    assert meta["base_model"] == "belle-test/tiny-base"
    assert meta["base_model_relation"] == "finetune"
    assert meta["pipeline_tag"] == "text-generation" and "conversational" in meta["tags"]
    assert meta["datasets"] == ["BelleGroup/train_1M_CN"]
    assert isinstance(meta["widget"], list) and meta["widget"][0]["messages"][0]["role"] == "user"
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics["overall"] == 0.61 and metrics["score_math"] == 0.3
    assert "gpt-4o" in files["README.md"].decode()

    remote = AutoModelForCausalLM.from_pretrained("belle-test/tiny-chat")
    local = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    for (name, a), (_, b) in zip(remote.state_dict().items(), local.state_dict().items()):
        assert torch.equal(a, b), name
    tokenizer = AutoTokenizer.from_pretrained("belle-test/tiny-chat")
    text = tokenizer.apply_chat_template([{"role": "user", "content": "你好"}], tokenize=False)
    assert text == AutoTokenizer.from_pretrained(tiny_model_dir).apply_chat_template(
        [{"role": "user", "content": "你好"}], tokenize=False)


def test_push_adapter_and_load_back(hub, tiny_model_dir, tmp_path, run_belle):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            task_type="CAUSAL_LM", init_lora_weights=False))
    adapter_dir = tmp_path / "adapter"
    model.save_pretrained(adapter_dir)
    (adapter_dir / "optimizer.pt").write_bytes(b"state")
    code, _out, err = run_belle("hub", "push-adapter", adapter_dir, "belle-test/tiny-lora",
                               "--base-model", "belle-test/tiny-base")
    assert code == 0, err
    files = hub.repo_files("belle-test/tiny-lora")
    assert "adapter_config.json" in files and "optimizer.pt" not in files
    meta = _card_meta(files["README.md"])
    assert meta["base_model_relation"] == "adapter" and meta["library_name"] == "peft"

    fresh_base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    loaded = PeftModel.from_pretrained(fresh_base, "belle-test/tiny-lora")
    expected = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    got = {k: v for k, v in loaded.state_dict().items() if "lora_" in k}
    assert expected.keys() == got.keys() and expected
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    ids = torch.tensor([[5, 6, 7, 8]])
    assert torch.allclose(model(ids).logits, loaded(ids).logits)


def test_push_dataset_and_load_back(hub, tmp_path, run_belle):
    from datasets import load_dataset

    from belle_hf.data import load
    from belle_hf.testing import sample_data_path

    source = sample_data_path("belle-multiturn")
    code, _out, err = run_belle("hub", "push-dataset", source, "belle-test/multiturn-sample")
    assert code == 0, err
    files = hub.repo_files("belle-test/multiturn-sample", repo_type="dataset")
    assert any(path.endswith(".parquet") for path in files) and "README.md" in files
    remote = load_dataset("belle-test/multiturn-sample", split="train", cache_dir=str(tmp_path / "ds"))
    local = load(source)
    assert len(remote) == len(local) > 0
    assert remote["messages"] == local["messages"]


def test_push_xor_is_gated_and_decodes_from_hub(hub, tiny_model_dir, finetuned_dir, tmp_path, run_belle):
    from huggingface_hub import HfApi, snapshot_download

    target = finetuned_dir
    diff = tmp_path / "diff"
    assert run_belle("xor", "encode", "--base", tiny_model_dir, "--target", target, "-o", diff)[0] == 0
    code, _out, err = run_belle("hub", "push-xor", diff, "belle-test/tiny-chat-xor", "--base-model",
                               "belle-test/llama-base")
    assert code == 0, err
    info = HfApi().model_info("belle-test/tiny-chat-xor")
    assert info.gated == "manual"
    files = hub.repo_files("belle-test/tiny-chat-xor")
    assert "model.safetensors" not in files and "xor_manifest.json" in files
    meta = _card_meta(files["README.md"])
    assert meta["license"] == "other" and meta["license_name"] and meta["license_link"]
    assert "extra_gated_prompt" in meta and "belle xor decode" in files["README.md"].decode()
    downloaded = snapshot_download("belle-test/tiny-chat-xor", local_dir=tmp_path / "downloaded")
    out_dir = tmp_path / "decoded"
    assert run_belle("xor", "decode", "--base", tiny_model_dir, "--diff", downloaded, "-o", out_dir)[0] == 0
    for path in target.iterdir():
        assert (out_dir / path.name).read_bytes() == path.read_bytes(), path.name


def test_push_refuses_a_file_containing_a_token(hub, tiny_model_dir, tmp_path, run_belle):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "notes.txt").write_text("login with hf_" + "a1B2" * 9 + "\n")
    code, _out, err = run_belle("hub", "push-model", folder, "belle-test/leaky")
    assert code == 1 and "notes.txt" in err and "token" in err
    assert ("model", "belle-test/leaky") not in hub.state.repos


def test_invalid_card_is_rejected_before_upload(hub, tiny_model_dir, run_belle):
    code, out, err = run_belle("hub", "push-model", tiny_model_dir, "belle-test/bad-license", "--license", "llama1")
    assert code == 1 and "license" in err
    code, _out, err = run_belle("hub", "push-model", tiny_model_dir, "belle-test/bad-dataset",
                               "--dataset", "not a/valid id")
    assert code == 1 and "datasets" in err
    assert not any(repo_id.startswith("belle-test/bad-") for _, repo_id in hub.state.repos)


def test_push_quantized_detects_the_method(hub, tiny_model_dir, tmp_path, run_belle):
    folder = tmp_path / "gptq"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    (folder / "config.json").write_text(json.dumps(config))
    from belle_hf.quant.report import QualityReport

    QualityReport(method="gptq", bits=4, group_size=32, desc_act=False, calibration_source="sample.jsonl",
                  calibration_samples=16, heldout_source="sample.jsonl", heldout_samples=8, heldout_tokens=321,
                  ppl_fp=812.25, ppl_quantized=815.5, size_before_bytes=3 * 2**20, size_after_bytes=2**20,
                  base_model="tiny", quantizer="gptqmodel 7.6.0", seconds=1.0).save(folder)
    code, _out, err = run_belle("hub", "push-quantized", folder, "belle-test/tiny-chat-gptq",
                               "--base-model", "belle-test/tiny-chat")
    assert code == 0, err
    files = hub.repo_files("belle-test/tiny-chat-gptq")
    meta = _card_meta(files["README.md"])
    assert meta["base_model_relation"] == "quantized" and "gptq" in meta["tags"]
    card = files["README.md"].decode()
    assert "GPTQ 4-bit" in card
    # belle quantize's quality report reaches the card.
    assert "| perplexity | 812.250 | 815.500 |" in card and "| weights on disk | 3.0 MiB | 1.0 MiB |" in card
    assert files["model.safetensors"] == (folder / "model.safetensors").read_bytes()


def test_a_fresh_process_needs_only_hf_endpoint(hub_server, tiny_model_dir, tmp_path):
    """What users run: the `belle` command with HF_ENDPOINT and HF_HUB_DISABLE_XET=1, nothing patched."""
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items()
           if key not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=hub_server.url, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf-home"),
               HF_TOKEN="hf_" + "x" * 34)
    done = subprocess.run([sys.executable, "-m", "belle_hf.cli", "hub", "push-model", str(tiny_model_dir),
                           "belle-test/from-subprocess"], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    files = hub_server.repo_files("belle-test/from-subprocess")
    assert files["model.safetensors"] == (tiny_model_dir / "model.safetensors").read_bytes()
    assert not any(env["HF_TOKEN"].encode() in data for data in files.values())
