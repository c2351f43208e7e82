"""Real training runs of the tiny model through ``belle train`` (a few steps each)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from belle_hf.train.recipe import load_recipe

pytestmark = pytest.mark.slow


def read_metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text(encoding="utf-8"))


def test_lora_run_writes_every_output(run_belle, write_recipe, tmp_path):
    recipe = write_recipe(data=[{"path": "sample:belle-multiturn", "max_samples": 24, "weight": 1},
                                {"path": "sample:alpaca", "max_samples": 24, "weight": 1}],
                          eval_split=4, training={"packing": True, "eval_strategy": "no"})
    code, _, err = run_belle("train", recipe, "training.max_steps=3")
    assert code == 0, err
    output = tmp_path / "out"
    assert (output / "adapter_model.safetensors").is_file()
    assert not (output / "model.safetensors").exists()
    assert "generation" in (output / "chat_template.jinja").read_text(encoding="utf-8")
    metrics = read_metrics(output)
    assert metrics["examples"]["eval"] == 4 and metrics["examples"]["train"] > 0
    assert metrics["train"]["train_loss"] > 0 and "eval_loss" in metrics["eval"]
    assert sum(1 for entry in metrics["log_history"] if "loss" in entry) == 3
    assert metrics["world_size"] == 1
    card = (output / "README.md").read_text(encoding="utf-8")
    assert "library_name: peft" in card and "LoRA" in card and "sample:alpaca" in card
    assert "learning_rate" in card
    assert not list(output.glob(".*.tmp")) and not (output / ".final.tmp").exists()


def test_preview_prints_input_and_loss_tokens_without_training(run_belle, write_recipe, tmp_path):
    code, out, err = run_belle("train", write_recipe(), "--preview", "2")
    assert code == 0, err
    assert out.count("=== example") == 4
    first = out.split("=== example 0: tokens with loss ===\n")[1].split("=== example 1")[0]
    assert "Human:" not in first and "Assistant:" not in first and "</s>" in first
    full = out.split("=== example 0: input ===\n")[1].split("=== example 0: tokens")[0]
    assert full.startswith("Human: \n") and "Assistant: \n" in full
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("checkpoint-*"))


def test_full_fine_tuning_saves_full_weights(run_belle, write_recipe, tmp_path):
    code, out, err = run_belle("train", write_recipe(method="full"), "training.max_steps=1")
    assert code == 0, err
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert "library_name: transformers" in (tmp_path / "out" / "README.md").read_text(encoding="utf-8")


def test_interrupted_run_resumes_from_last_checkpoint(write_recipe, tmp_path):
    from transformers import TrainerCallback

    from belle_hf.train.trainer import train

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt

    recipe = load_recipe(write_recipe(), ["training.max_steps=4", "training.save_steps=2"])
    with pytest.raises(KeyboardInterrupt):
        train(recipe, callbacks=[Interrupt()])
    output = tmp_path / "out"
    assert (output / "checkpoint-2").is_dir() and not (output / "metrics.json").exists()
    result = train(load_recipe(write_recipe(), ["training.max_steps=4", "training.save_steps=2"]))
    assert result.resumed_from and result.resumed_from.endswith("checkpoint-2")
    steps = [entry["step"] for entry in read_metrics(output)["log_history"] if "loss" in entry]
    assert steps == [1, 2, 3, 4]  # steps 1-2 restored from the checkpoint's history, 3-4 trained again
    again = train(load_recipe(write_recipe(), ["training.max_steps=4", "training.save_steps=2"]))
    assert again.completed_before and again.metrics == read_metrics(output)
    longer = train(load_recipe(write_recipe(), ["training.max_steps=5", "training.save_steps=2"]))
    assert longer.resumed_from.endswith("checkpoint-4") and not longer.completed_before


def test_merge_folds_the_adapter_into_the_base(run_belle, write_recipe, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from belle_hf.models import adapter_base, load_model_and_tokenizer

    code, _, err = run_belle("train", write_recipe(), "lora.r=4", "training.max_steps=2",
                             "training.learning_rate=0.05")
    assert code == 0, err
    merged_dir = tmp_path / "merged"
    code, out, err = run_belle("merge", tmp_path / "out", "-o", merged_dir)
    assert code == 0, err
    assert (merged_dir / "model.safetensors").is_file() and (merged_dir / "chat_template.jinja").is_file()
    ids = torch.tensor([[5, 17, 300, 42, 8]])
    # The adapter records its local base relative to itself: belle's loader resolves it (peft alone reads it
    # relative to the working directory).
    adapter, _ = load_model_and_tokenizer(tmp_path / "out", device="cpu")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    base = AutoModelForCausalLM.from_pretrained(adapter_base(tmp_path / "out")).eval()
    with torch.no_grad():
        expected, got, before = adapter(ids).logits, merged(ids).logits, base(ids).logits
    assert torch.allclose(expected, got, atol=1e-4)
    assert not torch.allclose(before, got, atol=1e-4)  # the adapter did change the model


def test_merge_refuses_a_folder_without_adapter(run_belle, tmp_path):
    code, _, err = run_belle("merge", tmp_path, "-o", tmp_path / "m")
    assert code == 1 and "adapter_config.json" in err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_qlora_without_gpu_fails_before_loading_anything(run_belle, write_recipe, tmp_path):
    # A base model that does not exist: reaching the loader would fail differently.
    code, out, err = run_belle("train", write_recipe(model="no-such-owner/no-such-model", method="qlora"))
    assert code == 1
    assert "qlora" in err and "GPU" in err
    assert not (tmp_path / "out").exists()


def test_truncation_is_reported_dropped_or_refused(run_belle, write_recipe, tmp_path):
    code, _, err = run_belle("train", write_recipe(), "training.max_length=40", "truncation=error")
    assert code == 1 and "longer than max_length=40" in err
    code, _, err = run_belle("train", write_recipe(), "training.max_length=40", "training.max_steps=1")
    assert code == 0, err
    report = read_metrics(tmp_path / "out")["truncation"]
    assert report["too_long"] > 0 and report["max_length"] == 40 and report["longest"] > 40


def test_packed_rows_do_not_attend_across_conversations(write_recipe):
    """Packed (bfd, padding-free) batches give each conversation the logits it gets alone."""
    import torch

    from belle_hf.train.trainer import build_trainer

    recipe = load_recipe(write_recipe(data=[{"path": "sample:alpaca", "max_samples": 24}]),
                         ["training.packing=true", "training.per_device_train_batch_size=1"])
    trainer, _ = build_trainer(recipe)
    batch = next(iter(trainer.get_train_dataloader()))
    positions = batch["position_ids"][0]
    starts = [i for i in range(len(positions)) if positions[i] == 0] + [len(positions)]
    assert len(starts) > 2, "the row packs several conversations"
    model = trainer.model.eval()
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        for begin, end in zip(starts, starts[1:]):
            alone = model(input_ids=batch["input_ids"][:, begin:end]).logits[0]
            assert torch.allclose(packed[begin:end], alone, atol=1e-4)


def test_two_processes_on_cpu(write_recipe, tmp_path):
    """A real 2-process (gloo) run through torchrun, from a real ``belle`` process: each message once."""
    import subprocess
    import sys

    recipe = write_recipe(training={"max_steps": 2, "per_device_train_batch_size": 2, "save_steps": 10})
    belle = [str(Path(sys.executable).with_name("belle")), "train", str(recipe), "--nproc", "2"]
    done = subprocess.run(belle, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr
    metrics = read_metrics(tmp_path / "out")
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()
    assert metrics["world_size"] == 2
    assert [entry["step"] for entry in metrics["log_history"] if "loss" in entry] == [1, 2]
    output = done.stdout + done.stderr
    assert output.count("trained model written to") == 1 and output.count("next steps:") == 1
    again = subprocess.run(belle, capture_output=True, text=True, timeout=900, check=False)
    assert again.returncode == 0, again.stderr
    assert (again.stdout + again.stderr).count("already holds this recipe's finished run") == 1


@pytest.mark.slow
def test_deepspeed_zero2_two_processes_on_cpu(run_belle, write_recipe, tmp_path):
    """A real DeepSpeed ZeRO-2 run of the full tiny model, 2 CPU processes, with the shipped config."""
    pytest.importorskip("deepspeed", reason="deepspeed is in the [gpu] and [dev] extras")
    recipe = write_recipe(method="full", training={"max_steps": 2, "per_device_train_batch_size": 2,
                                                   "save_steps": 10, "deepspeed": "zero2.json"})
    code, out, err = run_belle("train", recipe, "--nproc", "2")
    assert code == 0, err
    metrics = read_metrics(tmp_path / "out")
    assert metrics["world_size"] == 2
    assert [entry["step"] for entry in metrics["log_history"] if "loss" in entry] == [1, 2]
    assert (tmp_path / "out" / "model.safetensors").is_file()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "out")  # the ZeRO-2 weights load back as a normal model


@pytest.mark.slow
def test_readme_quickstart_learns(run_belle, tmp_path):
    """README's main job: the quickstart recipe as shipped, on the tiny model it builds itself."""
    from belle_hf.shipped import shipped_path

    out = tmp_path / "quickstart"
    code, stdout, err = run_belle("train", shipped_path("recipes", "quickstart.yaml"), f"output_dir={out}")
    assert code == 0, err
    assert (out / "adapter_model.safetensors").is_file() and (out / "README.md").is_file()
    eval_losses = [entry["eval_loss"] for entry in read_metrics(out)["log_history"] if "eval_loss" in entry]
    assert len(eval_losses) >= 15  # one per epoch, and the final evaluation
    assert eval_losses[-1] < eval_losses[0] - 3  # ~6.8 -> ~1.7: the model learns the sample data
