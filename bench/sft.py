"""Padded vs packed SFT throughput on the tiny model and a BELLE-like length mix.

``python bench/run.py sft [--examples N] [--max-length L]``

Both candidates train the same conversations for one epoch through ``belle_hf.train`` (TRL's
SFTTrainer): *padded* batches (dynamic padding to the longest in the batch) and *packed* rows
(``packing=True``, ``packing_strategy="bfd"``, padding-free with position ids). Throughput counts
only real tokens; ``ratio`` = packed tokens/s over padded tokens/s (goal >= 1.5). The padding
fraction is the share of pad positions in what the model computes on. On a CUDA machine a LoRA
run's tokens/s is reported as well.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path


def belle_like_conversations(count: int, seed: int = 0) -> list[dict]:
    """Many short single-turn conversations and some long multi-turn ones (BELLE's mix: most
    instructions are short, multi-turn dialogues are long), from the bundled sample data."""
    from belle_hf.data import load
    from belle_hf.samples import sample_data_path

    rng = random.Random(seed)
    pairs = []
    for key in ("alpaca", "messages", "conversations"):
        for messages in load(sample_data_path(key))["messages"]:
            turns = [m for m in messages if m["role"] in ("user", "assistant")]
            pairs.extend(zip(turns[0::2], turns[1::2]))
    conversations = []
    for _ in range(count):
        turns = 1 if rng.random() < 0.8 else rng.randint(6, 14)
        messages = []
        for user, assistant in rng.sample(pairs, turns):
            messages += [dict(user), dict(assistant)]
        conversations.append({"messages": messages})
    return conversations


def padding_fraction(trainer) -> tuple[float, int]:
    """(pad positions / all positions, real tokens) over one pass of the train dataloader."""
    padded = real = 0
    for batch in trainer.get_train_dataloader():
        total = batch["input_ids"].numel()
        tokens = int(batch["attention_mask"].sum()) if "attention_mask" in batch else total
        padded += total - tokens
        real += tokens
    return padded / max(padded + real, 1), real


def measure(recipe_values: dict, workdir: Path, name: str) -> dict:
    from belle_hf.train.recipe import Recipe
    from belle_hf.train.trainer import build_trainer

    values = json.loads(json.dumps(recipe_values))
    values["output_dir"] = str(workdir / name)
    recipe = Recipe.from_dict(values)
    trainer, _ = build_trainer(recipe)
    fraction, real_tokens = padding_fraction(trainer)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return {"tokens_per_s": real_tokens / seconds, "padding": fraction, "seconds": seconds,
            "steps": trainer.state.global_step, "tokens": real_tokens}


def run(argv: list[str]) -> dict:
    import torch

    parser = argparse.ArgumentParser(prog="bench/run.py sft")
    parser.add_argument("--examples", type=int, default=384)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)

    from belle_hf.tiny_model import save_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model_dir = save_tiny_model(workdir / "tiny")
        data_path = workdir / "mix.jsonl"
        data_path.write_text("\n".join(json.dumps(row, ensure_ascii=False)
                                       for row in belle_like_conversations(args.examples)), encoding="utf-8")
        base = {
            "model": str(model_dir), "method": "full", "template": "belle", "data": [str(data_path)],
            "training": {"num_train_epochs": 1, "max_length": args.max_length, "learning_rate": 1e-4,
                         "per_device_train_batch_size": args.batch_size, "logging_steps": 1000,
                         "save_strategy": "no", "gradient_checkpointing": False, "disable_tqdm": True},
        }
        padded = measure(base, workdir, "padded")
        packed_values = json.loads(json.dumps(base))
        # The same token budget per step: rows of max_length, as many as the padded batch could hold.
        packed_values["training"].update(packing=True, packing_strategy="bfd",
                                         per_device_train_batch_size=max(1, args.batch_size // 4))
        packed = measure(packed_values, workdir, "packed")
        result = {
            "ratio": packed["tokens_per_s"] / padded["tokens_per_s"],
            "packed_tokens_per_s": round(packed["tokens_per_s"]),
            "padded_tokens_per_s": round(padded["tokens_per_s"]),
            "padded_padding_fraction": round(padded["padding"], 3),
            "packed_padding_fraction": round(packed["padding"], 3),
            "examples": args.examples,
            "tokens": padded["tokens"],
            "padded_steps": padded["steps"],
            "packed_steps": packed["steps"],
        }
        if torch.cuda.is_available():
            lora_values = json.loads(json.dumps(packed_values))
            lora_values["method"] = "lora"
            result["lora_packed_tokens_per_s_gpu"] = round(measure(lora_values, workdir, "lora")["tokens_per_s"])
        return result
