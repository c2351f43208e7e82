"""``python bench/run.py gpu [--steps N] [--batch-size B] [--max-length L] [--methods full,lora,qlora]``

Training throughput and peak GPU memory of full fine-tuning, LoRA and QLoRA on a randomly
initialised model with Qwen2.5-0.5B's shapes (its config is written here: nothing is downloaded),
Qwen's 151k byte-level BPE (built offline, ``bench/_qwen.py``) and ChatML, packed rows of
``--max-length`` tokens. For each method, in one run:

* *belle*: ``belle_hf.train.build_trainer`` on a recipe (the Python path of ``belle train``:
  prepared data, exact assistant masks, the recipe layer's settings);
* *trl*: plain TRL ``SFTTrainer`` given the same conversations, ``SFTConfig`` values, LoRA and
  4-bit settings, tokenizing with its own ``assistant_only_loss``.

Tokens/s counts non-padding input tokens (``num_input_tokens_seen``) between the end of the warm-up
steps and the last step; peak memory is ``torch.cuda.max_memory_allocated``. ``ratio`` = belle /
trl tokens/s of LoRA. The default sizes finish in about 5 minutes on one H100-class GPU. Without
CUDA it says so and exits 0 (``--allow-cpu --shape tiny`` runs the same code on CPU, to check it).
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import tempfile
import time
from pathlib import Path

WORK = Path(__file__).resolve().parent / "_work"
WARMUP_STEPS = 3

# Qwen/Qwen2.5-0.5B's config.json, shapes only (random weights).
QWEN25_05B = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
    "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
    "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-06, "tie_word_embeddings": True,
    "hidden_act": "silu", "attention_dropout": 0.0, "use_sliding_window": False, "sliding_window": 32768,
    "max_window_layers": 24, "bos_token_id": 151643, "eos_token_id": 151643, "initializer_range": 0.02,
}
TINY = {**QWEN25_05B, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2}


def build_model(folder: Path, shape: dict, tokenizer_dir: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**shape)).to(torch.bfloat16)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    return folder


class Throughput:
    """A ``TrainerCallback`` that times the steps after the warm-up (built lazily: transformers is heavy)."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _Callback(TrainerCallback):
            start: tuple[float, int] | None = None
            end: tuple[float, int] | None = None

            def on_step_end(self, args, state, control, **kwargs):
                import torch

                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                mark = (time.perf_counter(), state.num_input_tokens_seen)
                if state.global_step == WARMUP_STEPS:
                    self.start = mark
                self.end = mark

            def tokens_per_s(self) -> float:
                (t0, n0), (t1, n1) = self.start, self.end
                return (n1 - n0) / (t1 - t0)

        return _Callback()


def training_values(args, gpu: bool) -> dict:
    """The ``SFTConfig`` values both candidates train with."""
    values = {"max_steps": args.steps, "per_device_train_batch_size": args.batch_size,
              "max_length": args.max_length, "packing": True, "learning_rate": 1e-4, "logging_steps": 10**6,
              "save_strategy": "no", "report_to": "none", "activation_checkpointing": True, "disable_tqdm": True,
              "include_num_input_tokens_seen": "non_padding", "dataloader_num_workers": 0, "seed": 0}
    if gpu:
        values["bf16"] = True
    else:
        values.update(use_cpu=True, bf16=False)
    return values


def measure(build, gpu: bool) -> dict:
    """Train what ``build(callback)`` returns; tokens/s after the warm-up and peak memory (GiB)."""
    import torch

    if gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    callback = Throughput()
    trainer = build(callback)
    trainer.train()
    figures = {"tokens_per_s": callback.tokens_per_s(),
               "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if gpu else 0.0}
    del trainer
    gc.collect()
    if gpu:
        torch.cuda.empty_cache()
    return figures


def run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run.py gpu")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--rows", type=int, default=4000, help="synthetic alpaca conversations")
    parser.add_argument("--methods", default="full,lora,qlora")
    parser.add_argument("--shape", choices=("qwen2.5-0.5b", "tiny"), default="qwen2.5-0.5b")
    parser.add_argument("--allow-cpu", action="store_true", help="run on CPU (checks the code, not a figure)")
    args = parser.parse_args(argv)

    import torch

    gpu = torch.cuda.is_available()
    if not gpu and not args.allow_cpu:
        print("bench gpu: no CUDA device on this machine; it measures GPU training, so there is nothing to measure")
        return {"skipped": "no CUDA device"}
    methods = [m for m in args.methods.split(",") if gpu or m != "qlora"]

    from _qwen import chatml_template_file, qwen_tokenizer_dir
    from data import write_synthetic
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from belle_hf.data import load
    from belle_hf.train.recipe import Recipe
    from belle_hf.train.trainer import build_peft_config, build_quantization_config, build_trainer

    WORK.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-", dir=WORK))
    result: dict = {}
    try:
        started = time.perf_counter()
        tokenizer_dir = qwen_tokenizer_dir()
        model_dir = build_model(work / "model", QWEN25_05B if args.shape == "qwen2.5-0.5b" else TINY, tokenizer_dir)
        data_path = write_synthetic(work / "alpaca.jsonl", "alpaca", args.rows)
        template = chatml_template_file(work)
        conversations = load(data_path).select_columns(["messages"])
        for method in methods:
            recipe = Recipe.from_dict({"model": str(model_dir), "method": method, "template": str(template),
                                       "data": [str(data_path)], "output_dir": str(work / f"belle-{method}"),
                                       "training": training_values(args, gpu)})

            def belle(callback, recipe=recipe):
                trainer, _ = build_trainer(recipe, callbacks=[callback])
                return trainer

            def plain(callback, recipe=recipe, method=method):
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(model_dir)
                tokenizer.chat_template = template.read_text(encoding="utf-8")
                config = SFTConfig(output_dir=str(work / f"trl-{method}"), assistant_only_loss=True,
                                   **training_values(args, gpu))
                peft = build_peft_config(recipe, "qwen2") if method != "full" else None
                assert peft is None or isinstance(peft, LoraConfig)
                return SFTTrainer(model=str(model_dir), args=config, train_dataset=conversations,
                                  processing_class=tokenizer, peft_config=peft, callbacks=[callback],
                                  quantization_config=build_quantization_config() if method == "qlora" else None)

            for name, build in (("belle", belle), ("trl", plain)):
                figures = measure(build, gpu)
                result[f"{method}_{name}_tokens_per_s"] = round(figures["tokens_per_s"])
                result[f"{method}_{name}_peak_gib"] = round(figures["peak_gib"], 2)
                print(f"{method:6} {name:6} {figures['tokens_per_s']:9.0f} tokens/s  peak {figures['peak_gib']:.2f} GiB",
                      flush=True)
        key = "lora" if "lora" in methods else methods[0]
        result = {"ratio": result[f"{key}_belle_tokens_per_s"] / result[f"{key}_trl_tokens_per_s"], **result,
                  "seconds": round(time.perf_counter() - started), "device": torch.cuda.get_device_name() if gpu
                  else "cpu", "shape": args.shape}
        print(json.dumps(result))
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)
