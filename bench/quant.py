"""Quantization quality benchmark: ``python bench/run.py quant [--steps N] [--keep]``.

A random tiny model has a perplexity near its vocabulary size, which says nothing about what
quantization costs. This benchmark first trains the tiny Llama (hidden 128, 4 layers) on the
bundled sample conversations for ``--steps`` steps (plain AdamW loop), then measures held-out
perplexity on conversations it never trained on (``messages`` sample file, records 16-39; records
0-15 are the GPTQ calibration set) for:

* the full-precision model;
* GPTQ 4-bit and 8-bit, group size 32 (``belle_hf.quant.quantize_gptq``, GPTQModel on CPU);
* round-to-nearest 4-bit with the same groups (the naive baseline GPTQ improves on);
* GGUF q8_0 and q4_0 (``belle_hf.quant.export_gguf``), dequantized back into the HF model.

``ratio`` = GPTQ 4-bit perplexity / full-precision perplexity. Work files go to
``bench/_work/quant`` (git-ignored), deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

WORK = Path(__file__).resolve().parent / "_work" / "quant"
TRAIN_FILES = ("alpaca", "alpaca-array", "belle-multiturn", "generated-chat", "conversations")


def _train(model_dir: Path, steps: int) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from belle_hf.data import load
    from belle_hf.quant import chat_texts
    from belle_hf.samples import sample_data_path

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    texts = []
    for key in TRAIN_FILES:
        texts += chat_texts(load(str(sample_data_path(key)))["messages"], tokenizer)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    started = time.perf_counter()
    for step in range(steps):
        batch = [texts[(step * 8 + i) % len(texts)] for i in range(8)]
        enc = tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=256,
                        add_special_tokens=False)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(model_dir)
    return time.perf_counter() - started


def _rtn_perplexity(model_dir: Path, texts: list[str], bits: int, group_size: int) -> float:
    """Round-to-nearest asymmetric quantization per group of ``group_size`` input columns."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from belle_hf.quant import perplexity

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    levels = 2**bits - 1
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head"):
                w = module.weight.data
                groups = w.reshape(w.shape[0], -1, group_size)
                low, high = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
                scale = (high - low).clamp(min=1e-8) / levels
                q = ((groups - low) / scale).round().clamp(0, levels)
                module.weight.data = (q * scale + low).reshape(w.shape)
    return perplexity(model, tokenizer, texts)[0]


def _gguf_perplexity(model_dir: Path, gguf_file: Path, texts: list[str]) -> float:
    """Perplexity of the HF model with every weight replaced by its GGUF dequantization."""
    import gguf
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from belle_hf.quant import perplexity
    from belle_hf.quant.gguf_export import permute_for_rope

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    config = model.config
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    tensors = {t.name: t for t in gguf.GGUFReader(str(gguf_file)).tensors}
    state = model.state_dict()
    with torch.no_grad():
        for hf_name, param in state.items():
            tensor = tensors[name_map.get_name(hf_name, try_suffixes=(".weight",))]
            data = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(param.shape)
            heads = config.num_attention_heads
            if hf_name.endswith(("q_proj.weight", "k_proj.weight")):
                kv = heads if hf_name.endswith("q_proj.weight") else config.num_key_value_heads
                # Undo the rope permutation: apply the inverse by sorting the permuted row indices.
                index = permute_for_rope(__import__("numpy").arange(param.shape[0])[:, None], heads, kv)[:, 0]
                data = data[index.argsort()]
            param.copy_(torch.from_numpy(data.copy()))
    return perplexity(model, tokenizer, texts)[0]


def run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run.py quant")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    from belle_hf.quant import GPTQSettings, chat_texts, export_gguf, quantize_gptq
    from belle_hf.quant.calibration import load_conversations
    from belle_hf.samples import sample_data_path
    from belle_hf.tiny_model import TinyModelConfig, save_tiny_model

    shutil.rmtree(WORK, ignore_errors=True)
    model_dir = save_tiny_model(WORK / "model", TinyModelConfig(hidden_size=128, intermediate_size=256,
                                                                 num_hidden_layers=4, num_attention_heads=4,
                                                                 num_key_value_heads=2))
    train_seconds = _train(model_dir, args.steps)
    calibration = str(sample_data_path("messages"))
    settings = dict(calibration=calibration, group_size=32, n_samples=16, eval_samples=24)
    results = {}
    for bits in (4, 8):
        started = time.perf_counter()
        report = quantize_gptq(model_dir, WORK / f"gptq{bits}", GPTQSettings(bits=bits, **settings))
        results[bits] = (report, time.perf_counter() - started)
    fp = results[4][0].ppl_fp
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    heldout = chat_texts(load_conversations(calibration, 24, skip=16), tokenizer)
    rtn4 = _rtn_perplexity(model_dir, heldout, 4, 32)
    gguf_ppl = {}
    for kind in ("q8_0", "q4_0"):
        path = export_gguf(model_dir, WORK / f"model.{kind}.gguf", kind)
        gguf_ppl[kind] = _gguf_perplexity(model_dir, path, heldout)
    figures = {
        "ratio": results[4][0].ppl_quantized / fp,
        "ppl_fp": fp,
        "ppl_gptq4_g32": results[4][0].ppl_quantized,
        "ppl_rtn4_g32": rtn4,
        "ppl_gptq8_g32": results[8][0].ppl_quantized,
        "ppl_gguf_q8_0": gguf_ppl["q8_0"],
        "ppl_gguf_q4_0": gguf_ppl["q4_0"],
        "heldout_tokens": results[4][0].heldout_tokens,
        "size_fp_kib": results[4][0].size_before_bytes // 1024,
        "size_gptq4_kib": results[4][0].size_after_bytes // 1024,
        "gptq4_seconds": results[4][1],
        "train_steps": args.steps,
        "train_seconds": train_seconds,
    }
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()}, indent=1))
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)
    assert all(math.isfinite(v) for v in figures.values() if isinstance(v, float))
    return figures
