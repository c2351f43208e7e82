"""XOR diffs: byte-identical round trips, wrong bases caught before writing, nothing published
in plaintext, resumable decodes, torch and Meta bases, and BELLE's legacy .enc files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def diff_dir(tiny_model_dir, finetuned_dir, tmp_path_factory):
    from belle_hf.hub.xor import encode

    out = tmp_path_factory.mktemp("diff")
    encode(tiny_model_dir, finetuned_dir, out)
    return out


def test_cli_round_trip_is_byte_identical(tiny_model_dir, finetuned_dir, tmp_path, run_belle):
    diff, out = tmp_path / "diff", tmp_path / "out"
    code, stdout, err = run_belle("xor", "encode", "--base", tiny_model_dir, "--target", finetuned_dir, "-o", diff)
    assert code == 0, err
    code, _stdout, err = run_belle("xor", "decode", "--base", tiny_model_dir, "--diff", diff, "-o", out)
    assert code == 0, err
    target = _files(finetuned_dir)
    assert len([p for p in target if p.endswith(".safetensors")]) > 1  # sharded, with an index
    assert "model.safetensors.index.json" in target and "tokenizer.json" in target
    assert _files(out) == target
    assert not any(name.startswith(".") for name in os.listdir(out))  # no temp files left


def test_manifest_records_checksums_and_stores_nothing_for_equal_tensors(diff_dir, finetuned_dir):
    manifest = json.loads((diff_dir / "xor_manifest.json").read_text())
    segments = {s["tensor"]: s for entry in manifest["files"] for s in entry.get("segments", [])}
    equal = segments["model.layers.1.self_attn.q_proj.weight"]
    changed = segments["model.layers.0.self_attn.q_proj.weight"]
    assert equal["stored"] is False and equal["base_sha256"] == equal["sha256"]
    assert changed["stored"] is True and changed["base_sha256"] != changed["sha256"]
    embed = segments["model.embed_tokens.weight"]
    assert embed["length"] > embed["xor_length"] == embed["base_length"]  # 8 new rows, not in the base
    shard_sizes = {e["path"]: e["diff_size"] for e in manifest["files"] if e["kind"] == "safetensors"}
    stored = sum(s["length"] for s in segments.values() if s["stored"])
    headers = sum(e["header_size"] for e in manifest["files"] if e["kind"] == "safetensors")
    assert sum(shard_sizes.values()) == stored + headers
    assert sum(os.path.getsize(diff_dir / (p + ".xor")) for p in shard_sizes) == stored + headers


def test_nothing_is_published_in_plaintext(diff_dir, finetuned_dir):
    """The new vocabulary rows (absent from the base) and the changed tensors never appear as-is."""
    from safetensors.numpy import load_file

    target = {}
    for shard in finetuned_dir.glob("*.safetensors"):
        target.update(load_file(shard))
    published = b"".join(p.read_bytes() for p in diff_dir.glob("*.xor"))
    new_rows = target["model.embed_tokens.weight"][-8:]
    for row in new_rows:
        assert row.tobytes()[:64] not in published
    changed = target["model.layers.0.self_attn.q_proj.weight"]
    assert changed.tobytes()[:64] not in published
    assert changed.tobytes()[4096:4160] not in published


def test_wrong_base_fails_before_writing_and_names_the_tensor(diff_dir, tiny_model_dir, tmp_path, run_belle):
    from safetensors.numpy import load_file, save_file

    wrong = tmp_path / "wrong-base"
    shutil.copytree(tiny_model_dir, wrong)
    tensors = load_file(wrong / "model.safetensors")
    name = "model.layers.1.mlp.up_proj.weight"
    tensors[name] = tensors[name].copy()
    tensors[name][0, 0] += 1.0  # one value differs: same shapes, same sizes
    save_file(tensors, wrong / "model.safetensors", metadata={"format": "pt"})
    out = tmp_path / "out"
    code, _stdout, err = run_belle("xor", "decode", "--base", wrong, "--diff", diff_dir, "-o", out)
    assert code == 1
    assert name in err and "wrong base" in err
    assert not out.exists() or not any(out.rglob("*"))


def test_base_of_another_size_fails_at_once(diff_dir, tmp_path, run_belle):
    from belle_hf.testing import TinyModelConfig, save_tiny_model

    other = save_tiny_model(tmp_path / "other", TinyModelConfig(hidden_size=32, intermediate_size=64))
    code, _stdout, err = run_belle("xor", "decode", "--base", other, "--diff", diff_dir, "-o", tmp_path / "out")
    assert code == 1 and "bytes" in err and "wrong base" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def test_corrupt_diff_leaves_no_output(diff_dir, tiny_model_dir, tmp_path):
    from belle_hf.errors import BelleError
    from belle_hf.hub.xor import decode

    corrupt = tmp_path / "corrupt"
    shutil.copytree(diff_dir, corrupt)
    shard = sorted(corrupt.glob("*.xor"))[0]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(BelleError, match="does not match its SHA-256"):
        decode(tiny_model_dir, corrupt, out)
    assert not (out / shard.name[:-4]).exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_rerun_completes_a_previous_decode_in_place(diff_dir, tiny_model_dir, finetuned_dir, tmp_path):
    """A decoded folder missing a file (and holding a temporary file a kill left) is completed:
    verified files are kept, the leftover is removed."""
    from belle_hf.hub.xor import decode

    out = tmp_path / "out"
    decode(tiny_model_dir, diff_dir, out)
    shards = sorted(out.glob("*.safetensors"))
    shards[0].unlink()
    (out / f".{shards[1].name}.k1l2m3n4.tmp").write_bytes(b"half-written")
    report = decode(tiny_model_dir, diff_dir, out)
    assert shards[0].name not in report.skipped_files
    assert shards[1].name in report.skipped_files and shards[2].name in report.skipped_files
    assert _files(out) == _files(finetuned_dir)


def test_a_folder_whose_file_differs_is_not_overwritten(diff_dir, tiny_model_dir, tmp_path):
    from belle_hf.errors import BelleError
    from belle_hf.hub.xor import decode

    out = tmp_path / "out"
    decode(tiny_model_dir, diff_dir, out)
    (out / "config.json").write_text("{}")
    with pytest.raises(BelleError, match="config.json: differs from the file the diff rebuilds"):
        decode(tiny_model_dir, diff_dir, out)
    assert (out / "config.json").read_text() == "{}"


def test_torch_bin_base(tiny_model_dir, finetuned_dir, tmp_path):
    """A base saved as pytorch_model.bin (read with weights_only, no unsafe pickle)."""
    import torch
    from safetensors.torch import load_file

    from belle_hf.hub.xor import decode, encode

    base = tmp_path / "bin-base"
    base.mkdir()
    torch.save(load_file(tiny_model_dir / "model.safetensors"), base / "pytorch_model.bin")
    encode(base, finetuned_dir, tmp_path / "diff")
    decode(base, tmp_path / "diff", tmp_path / "out")
    assert _files(tmp_path / "out") == _files(finetuned_dir)


@pytest.mark.parametrize("shards", [1, 2])
def test_meta_consolidated_base(tiny_model_dir, finetuned_dir, tmp_path, run_belle, shards):
    """Meta's consolidated.0N.pth names (tok_embeddings, layers.N.attention.wq ...) pair with HF
    names; model-parallel shards (matrices split, norms replicated) are read in file order."""
    import torch
    from safetensors.torch import load_file

    from belle_hf.hub.xor import read_manifest
    from belle_hf.hub.xor.sources import meta_name

    state = load_file(tiny_model_dir / "model.safetensors")
    meta_state = {meta_name(k): v.to(torch.float16) for k, v in state.items() if meta_name(k)}
    assert "layers.0.attention.wq.weight" in meta_state and "tok_embeddings.weight" in meta_state
    base = tmp_path / "llama-7b"
    base.mkdir()
    for index in range(shards):
        part = {k: (v.chunk(shards)[index].clone() if v.dim() == 2 else v) for k, v in meta_state.items()}
        torch.save(part, base / f"consolidated.{index:02d}.pth")
    (base / "params.json").write_text("{}")
    assert run_belle("xor", "encode", "--base", base, "--target", finetuned_dir, "-o", tmp_path / "diff")[0] == 0
    segments = [s for e in read_manifest(tmp_path / "diff")["files"] for s in e.get("segments", [])]
    assert {s["base"] for s in segments} >= {"tok_embeddings.weight", "layers.1.feed_forward.w2.weight"}
    decode_base = base / "consolidated.00.pth" if shards == 1 else base
    assert run_belle("xor", "decode", "--base", decode_base, "--diff", tmp_path / "diff",
                     "-o", tmp_path / "out")[0] == 0
    assert _files(tmp_path / "out") == _files(finetuned_dir)


def test_target_with_pickle_weights_is_refused(tiny_model_dir, tmp_path, run_belle):
    target = tmp_path / "target"
    shutil.copytree(tiny_model_dir, target)
    (target / "pytorch_model.bin").write_bytes(b"pickle")
    code, _stdout, err = run_belle("xor", "encode", "--base", tiny_model_dir, "--target", target, "-o", tmp_path / "d")
    assert code == 1 and "plaintext" in err


# ----------------------------------------------------------------------------- legacy .enc

PIECE = 10 * 1024 * 1024


def _reference_encrypt(plain: bytes, key_path: Path) -> bytes:
    """BELLE / point-alpaca encrypt.py semantics, written independently with Python big ints."""
    out = [hashlib.sha256(plain).digest()]
    with open(key_path, "rb") as key_file:
        for start in range(0, len(plain), PIECE):
            chunk = plain[start:start + PIECE]
            piece = key_file.read(PIECE)
            if not piece:
                key_file.seek(0)
                piece = key_file.read(PIECE)
            key = (piece * (len(chunk) // len(piece) + 1))[:len(chunk)]
            value = int.from_bytes(chunk, "little") ^ int.from_bytes(key, "little")
            out.append(value.to_bytes(len(chunk), "little"))
    return b"".join(out)


@pytest.fixture(scope="module")
def legacy_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("legacy")
    rng = np.random.default_rng(0)
    plain = folder / "pytorch_model-00001-of-00002.bin"
    plain.write_bytes(rng.integers(0, 256, 25 * 1024 * 1024 + 12345, dtype=np.uint8).tobytes())
    key = folder / "consolidated.00.pth"  # 13 MiB: a short second piece, then wrap-around
    key.write_bytes(rng.integers(0, 256, 13 * 1024 * 1024 + 7, dtype=np.uint8).tobytes())
    return plain, key


def test_legacy_encode_matches_the_original_format(legacy_files, tmp_path, run_belle):
    plain, key = legacy_files
    code, _out, err = run_belle("xor", "encode-legacy", plain, "--key", key, "-o", tmp_path)
    assert code == 0, err
    sha = hashlib.sha256(plain.read_bytes()).hexdigest()
    enc = tmp_path / f"{plain.name}.{sha}.enc"
    assert enc.read_bytes() == _reference_encrypt(plain.read_bytes(), key)


def test_legacy_decode_and_wrong_key(legacy_files, tmp_path, run_belle):
    plain, key = legacy_files
    data = plain.read_bytes()
    enc = tmp_path / f"{plain.name}.{hashlib.sha256(data).hexdigest()}.enc"
    enc.write_bytes(_reference_encrypt(data, key))
    code, out, err = run_belle("xor", "decode-legacy", enc, "--key", key, "-o", tmp_path / "out")
    assert code == 0, err
    assert (tmp_path / "out" / plain.name).read_bytes() == data

    code, _out, err = run_belle("xor", "decode-legacy", enc, "--key", plain, "-o", tmp_path / "wrong")
    assert code == 1 and "wrong key" in err
    assert not (tmp_path / "wrong").exists() or not list((tmp_path / "wrong").iterdir())


def test_legacy_name_must_carry_the_checksum(tmp_path, run_belle):
    bad = tmp_path / "model.bin.enc"
    bad.write_bytes(b"x" * 64)
    code, _out, err = run_belle("xor", "decode-legacy", bad, "--key", bad, "-o", tmp_path / "out")
    assert code == 1 and "NAME.<sha256 hex>.enc" in err


def test_secrets_and_training_state_are_not_encoded(tiny_model_dir, finetuned_dir, tmp_path):
    from belle_hf.hub.xor import decode, encode

    target = tmp_path / "target"
    shutil.copytree(finetuned_dir, target)
    (target / ".env").write_text("HF_TOKEN=not-for-publishing\n")
    (target / "optimizer.pt").write_bytes(b"optimizer state")
    (target / "checkpoint-3").mkdir()
    (target / "checkpoint-3" / "model.safetensors").write_bytes(b"x")
    report = encode(tiny_model_dir, target, tmp_path / "diff")
    assert sorted(report.skipped_files) == [".env", "checkpoint-3/model.safetensors", "optimizer.pt"]
    published = b"".join(p.read_bytes() for p in (tmp_path / "diff").rglob("*") if p.is_file())
    assert b"not-for-publishing" not in published and b"optimizer state" not in published
    decode(tiny_model_dir, tmp_path / "diff", tmp_path / "out")
    assert _files(tmp_path / "out") == _files(finetuned_dir)


def test_two_diffs_never_share_a_keystream(tiny_model_dir, finetuned_dir, diff_dir, tmp_path):
    from belle_hf.hub.xor import encode, read_manifest

    encode(tiny_model_dir, finetuned_dir, tmp_path / "again")
    first, second = read_manifest(diff_dir), read_manifest(tmp_path / "again")
    assert first["keystream"]["nonce"] != second["keystream"]["nonce"]
    entry = next(e for e in first["files"] for s in e.get("segments", []) if s["tensor"] == "model.embed_tokens.weight")
    embed = next(s for s in entry["segments"] if s["tensor"] == "model.embed_tokens.weight")
    start = embed["diff_offset"]

    def part(folder, begin, end):
        with open(folder / entry["diff"], "rb") as handle:
            handle.seek(begin)
            return handle.read(end - begin)

    xor_end, stream_end = start + embed["xor_length"], start + embed["length"]
    assert part(diff_dir, start, xor_end) == part(tmp_path / "again", start, xor_end)  # target XOR base
    assert part(diff_dir, xor_end, stream_end) != part(tmp_path / "again", xor_end, stream_end)


def test_decoded_files_get_the_ordinary_mode(diff_dir, tiny_model_dir, tmp_path):
    from belle_hf.hub.xor import decode

    decode(tiny_model_dir, diff_dir, tmp_path / "out")
    umask = os.umask(0)
    os.umask(umask)
    for path in (tmp_path / "out").iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path.name


# ----------------------------------------------------------------------------- output folder


def test_stale_file_in_the_output_folder_is_refused(diff_dir, tiny_model_dir, tmp_path, run_belle):
    """A leftover model.safetensors beside decoded shards is what from_pretrained would load."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"old weights")
    code, _stdout, err = run_belle("xor", "decode", "--base", tiny_model_dir, "--diff", diff_dir, "-o", out)
    assert code == 1 and "model.safetensors" in err and "not a decode of this diff" in err
    assert os.listdir(out) == ["model.safetensors"] and (out / "model.safetensors").read_bytes() == b"old weights"
    assert not (tmp_path / "out.partial").exists()


def test_failed_verification_leaves_no_folder(diff_dir, tiny_model_dir, tmp_path):
    from belle_hf.errors import BelleError
    from belle_hf.hub.xor import decode

    corrupt = tmp_path / "corrupt"
    shutil.copytree(diff_dir, corrupt)
    later = max(sorted(corrupt.glob("*.xor"))[1:], key=lambda p: p.stat().st_size)  # the first decodes fine
    data = bytearray(later.read_bytes())
    data[-1] ^= 0xFF
    later.write_bytes(bytes(data))
    with pytest.raises(BelleError, match="does not match its SHA-256"):
        decode(tiny_model_dir, corrupt, tmp_path / "out")
    assert sorted(os.listdir(tmp_path)) == ["corrupt"]  # no out, no out.partial


def test_sigkill_mid_decode_then_rerun_resumes(tmp_path):
    """A decode killed with SIGKILL leaves no OUT (only OUT.partial); the rerun keeps the
    verified files and finishes with byte-identical output."""
    import signal
    import subprocess
    import sys
    import time

    from safetensors.numpy import save_file

    from belle_hf.hub.xor import decode, encode

    rng = np.random.default_rng(0)
    base, target = tmp_path / "base", tmp_path / "target"
    base.mkdir()
    target.mkdir()
    tensors = {f"layer.{i:02d}.weight": rng.standard_normal((1024, 1024), dtype=np.float32) for i in range(16)}
    save_file(tensors, base / "model.safetensors")
    for i, (name, value) in enumerate(tensors.items()):  # 16 shards of 4 MiB, every tensor changed
        save_file({name: value + 1}, target / f"model-{i:05d}-of-00016.safetensors")
    encode(base, target, tmp_path / "diff")
    out = tmp_path / "out"
    staging = tmp_path / "out.partial"
    process = subprocess.Popen([sys.executable, "-m", "belle_hf.cli", "xor", "decode", "--base", str(base),
                                "--diff", str(tmp_path / "diff"), "-o", str(out), "--workers", "1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (staging.is_dir() and list(staging.glob("model-*.safetensors"))):
            assert process.poll() is None and time.monotonic() < deadline, "decode ended before it could be killed"
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not out.exists()  # never a half-written OUT
    done_before = {p.name for p in staging.glob("model-*.safetensors")}
    assert 0 < len(done_before) < 16
    report = decode(base, tmp_path / "diff", out)
    assert done_before <= set(report.skipped_files)
    assert _files(out) == _files(target) and not staging.exists()
