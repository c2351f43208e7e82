"""XOR-diff benchmark: ``python bench/run.py xor [--layers N] [--keep]``.

Builds a synthetic >= 1 GiB Llama-like model (several safetensors shards, bf16 and fp32
tensors) and a "fine-tune" of it (changed layers, equal layers, 64 extra vocabulary rows) in
``bench/_work/xor`` (git-ignored, deleted at the end unless ``--keep``), then measures:

* ``ratio``: ``belle xor decode`` time / ``sha256sum`` time over the same (target) bytes
  (goal <= 1.25); the decode runs in a fresh process and also verifies every base tensor
  and every decoded tensor against its SHA-256;
* ``peak_rss_mib`` of that decode process against ``rss_goal_mib`` = largest tensor + 128 MiB;
* encode time, diff size, and the legacy ``.enc`` codec on a 64 MiB slice: the original
  pure-Python byte loop (BELLE / point-alpaca) against the vectorized one here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

WORK = Path(__file__).resolve().parent / "_work" / "xor"
MIB = 1024 * 1024

# Peak RSS is read from VmHWM, which starts afresh at exec (ru_maxrss would carry over the
# parent's peak from before the fork).
DECODE_SCRIPT = """
import json, re, sys, time
from pathlib import Path
from belle_hf.hub.xor import decode
start = time.perf_counter()
report = decode(sys.argv[1], sys.argv[2], sys.argv[3])
seconds = time.perf_counter() - start
hwm = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
print(json.dumps({"seconds": seconds, "maxrss_kib": hwm, "summary": report.summary()}))
"""


def _layer_shapes(hidden: int, intermediate: int) -> list[tuple[str, tuple[int, ...], str]]:
    return [
        ("self_attn.q_proj.weight", (hidden, hidden), "bf16"),
        ("self_attn.k_proj.weight", (hidden, hidden), "bf16"),
        ("self_attn.v_proj.weight", (hidden, hidden), "bf16"),
        ("self_attn.o_proj.weight", (hidden, hidden), "bf16"),
        ("mlp.gate_proj.weight", (intermediate, hidden), "bf16"),
        ("mlp.up_proj.weight", (intermediate, hidden), "bf16"),
        ("mlp.down_proj.weight", (hidden, intermediate), "bf16"),
        ("input_layernorm.weight", (hidden,), "fp32"),
        ("post_attention_layernorm.weight", (hidden,), "fp32"),
    ]


def build_models(work: Path, layers: int, hidden: int = 2048, intermediate: int = 5504, vocab: int = 32000,
                 extra_rows: int = 64) -> dict:
    """Write base/ and target/ (same layout, target fine-tuned) shard by shard; returns sizes."""
    import torch
    from safetensors.torch import save_file

    dtypes = {"bf16": torch.bfloat16, "fp32": torch.float32}
    generator = torch.Generator().manual_seed(0)
    (work / "base").mkdir(parents=True, exist_ok=True)
    (work / "target").mkdir(parents=True, exist_ok=True)
    shards: list[list[tuple[str, tuple[int, ...], str]]] = [[
        ("model.embed_tokens.weight", (vocab, hidden), "bf16"),
        ("model.norm.weight", (hidden,), "fp32"),
        ("lm_head.weight", (vocab, hidden), "fp32"),  # an fp32 head: the largest tensor
    ]]
    per_shard = 3
    for start in range(0, layers, per_shard):
        shards.append([(f"model.layers.{i}.{name}", shape, dtype)
                       for i in range(start, min(layers, start + per_shard)) for name, shape, dtype in _layer_shapes(
                           hidden, intermediate)])
    largest = 0
    index = {"metadata": {"total_size": 0}, "weight_map": {}}
    for number, shard in enumerate(shards, 1):
        name = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        base, target = {}, {}
        for tensor_name, shape, dtype in shard:
            tensor = torch.randn(shape, generator=generator, dtype=torch.float32).to(dtypes[dtype]) * 0.02
            base[tensor_name] = tensor
            if tensor_name in ("model.embed_tokens.weight", "lm_head.weight"):
                extra = torch.randn((extra_rows, hidden), generator=generator).to(dtypes[dtype]) * 0.02
                changed = tensor + (torch.randn(shape, generator=generator) * 1e-3).to(dtypes[dtype])
                target[tensor_name] = torch.cat([changed, extra])
            elif ".layers." in tensor_name and int(tensor_name.split(".")[2]) % 4 == 3:
                target[tensor_name] = tensor  # some layers unchanged (e.g. frozen)
            else:
                target[tensor_name] = tensor + (torch.randn(shape, generator=generator) * 1e-3).to(dtypes[dtype])
            largest = max(largest, target[tensor_name].numel() * target[tensor_name].element_size())
            index["weight_map"][tensor_name] = name
            index["metadata"]["total_size"] += target[tensor_name].numel() * target[tensor_name].element_size()
        save_file(base, work / "base" / name, metadata={"format": "pt"})
        save_file(target, work / "target" / name, metadata={"format": "pt"})
        del base, target
    (work / "target" / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (work / "target" / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": hidden,
                                                              "vocab_size": vocab + extra_rows}))
    target_bytes = sum(p.stat().st_size for p in (work / "target").iterdir())
    return {"target_bytes": target_bytes, "largest_tensor": largest, "shards": len(shards)}


def legacy_python_xor(data: bytes, key: bytes) -> bytes:
    """The original tool's inner loop (BELLE / point-alpaca ``xor_bytes``), for comparison."""
    return bytes(a ^ b for a, b in zip(data, (key * (len(data) // len(key) + 1))[:len(data)]))


def bench_legacy(work: Path) -> dict:
    import numpy as np

    from belle_hf.hub.xor import legacy_encode

    rng = np.random.default_rng(1)
    plain = work / "slice.bin"
    key = work / "key.bin"
    plain.write_bytes(rng.integers(0, 256, 64 * MIB, dtype=np.uint8).tobytes())
    key.write_bytes(rng.integers(0, 256, 10 * MIB, dtype=np.uint8).tobytes())
    data, key_bytes = plain.read_bytes(), key.read_bytes()
    start = time.perf_counter()
    for offset in range(0, len(data), 10 * MIB):
        legacy_python_xor(data[offset:offset + 10 * MIB], key_bytes)
    python_seconds = time.perf_counter() - start
    start = time.perf_counter()
    legacy_encode(plain, key, work / "enc")
    vectorized_seconds = time.perf_counter() - start
    return {"legacy_python_mib_s": 64 / python_seconds, "legacy_vectorized_mib_s": 64 / vectorized_seconds}


def run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run.py xor")
    parser.add_argument("--layers", type=int, default=8, help="decoder layers (8: ~1.1 GiB target)")
    parser.add_argument("--keep", action="store_true", help="keep bench/_work/xor")
    args = parser.parse_args(argv)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    try:
        sizes = build_models(WORK, args.layers)
        from belle_hf.hub.xor import encode

        start = time.perf_counter()
        encode_report = encode(WORK / "base", WORK / "target", WORK / "diff")
        encode_seconds = time.perf_counter() - start

        os.sync()  # flush the models just written: in real use base and diff have long been on disk
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", DECODE_SCRIPT, str(WORK / "base"), str(WORK / "diff"),
                               str(WORK / "out")], capture_output=True, text=True, check=True)
        decode_wall = time.perf_counter() - start
        decoded = json.loads(done.stdout.strip().splitlines()[-1])

        outputs = sorted(str(p) for p in (WORK / "out").iterdir())
        start = time.perf_counter()
        subprocess.run(["sha256sum", *outputs], capture_output=True, check=True)
        sha256sum_seconds = time.perf_counter() - start
        for path in (WORK / "target").iterdir():  # byte identity, independently of decode's own checks
            with open(path, "rb") as a, open(WORK / "out" / path.name, "rb") as b:
                while True:
                    block_a, block_b = a.read(16 * MIB), b.read(16 * MIB)
                    if block_a != block_b:
                        raise AssertionError(f"{path.name} differs after decode")
                    if not block_a:
                        break
        start = time.perf_counter()
        for path in outputs:  # the same bytes through Python's hashlib, for reference
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(16 * MIB), b""):
                    digest.update(block)
        hashlib_seconds = time.perf_counter() - start
        legacy = bench_legacy(WORK)
        diff_bytes = sum(p.stat().st_size for p in (WORK / "diff").rglob("*") if p.is_file())
        peak_rss = decoded["maxrss_kib"] / 1024
        rss_goal = sizes["largest_tensor"] / MIB + 128
        return {
            "ratio": decoded["seconds"] / sha256sum_seconds,
            "decode_s": round(decoded["seconds"], 2),
            "decode_process_s": round(decode_wall, 2),
            "sha256sum_s": round(sha256sum_seconds, 2),
            "hashlib_sha256_s": round(hashlib_seconds, 2),
            "encode_s": round(encode_seconds, 2),
            "target_gib": round(sizes["target_bytes"] / 2**30, 3),
            "shards": sizes["shards"],
            "diff_gib": round(diff_bytes / 2**30, 3),
            "equal_tensors": encode_report.equal_tensors,
            "keystream_bytes": encode_report.keystream_bytes,
            "peak_rss_mib": round(peak_rss, 1),
            "rss_goal_mib": round(rss_goal, 1),
            "rss_ok": peak_rss < rss_goal,
            "decode_mib_s": round(sizes["target_bytes"] / MIB / decoded["seconds"], 1),
            "legacy_python_mib_s": round(legacy["legacy_python_mib_s"], 1),
            "legacy_vectorized_mib_s": round(legacy["legacy_vectorized_mib_s"], 1),
        }
    finally:
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)
