"""Crafted XOR diffs from strangers on the Hub: a manifest path that climbs out of its folder,
is absolute, uses Windows separators or leads through a symbolic link is refused before
anything is written, naming the entry, by a real ``belle xor decode`` process."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NOTES = b"decoding notes: not a secret\n"


@pytest.fixture(scope="module")
def honest_diff(tiny_model_dir, tmp_path_factory):
    """A diff of the tiny model with one changed tensor and one plain file (notes.txt)."""
    from safetensors.numpy import load_file, save_file

    from belle_hf.hub.xor import encode

    root = tmp_path_factory.mktemp("honest")
    target = root / "target"
    shutil.copytree(tiny_model_dir, target)
    tensors = load_file(target / "model.safetensors")
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1
    save_file(tensors, target / "model.safetensors", metadata={"format": "pt"})
    (target / "notes.txt").write_bytes(NOTES)
    encode(tiny_model_dir, target, root / "diff")
    return root / "diff"


def _crafted(honest_diff: Path, folder: Path, change) -> Path:
    diff = folder / "diff"
    shutil.copytree(honest_diff, diff)
    manifest = json.loads((diff / "xor_manifest.json").read_text())
    notes = next(entry for entry in manifest["files"] if entry["path"] == "notes.txt")
    change(notes, diff)
    (diff / "xor_manifest.json").write_text(json.dumps(manifest))
    return diff


def _decode(base, diff, out) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "belle_hf.cli", "xor", "decode", "--base", str(base),
                           "--diff", str(diff), "-o", str(out)], capture_output=True, text=True, timeout=300)


def _every_file(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


OUTSIDE_PATHS = {
    "parent": lambda tmp: "../../PWNED.txt",
    "absolute": lambda tmp: str(tmp / "elsewhere" / "PWNED.txt"),
    "windows": lambda tmp: "..\\..\\PWNED.txt",
}


@pytest.mark.parametrize("kind", sorted(OUTSIDE_PATHS))
def test_output_path_outside_the_folder_is_refused(kind, honest_diff, tiny_model_dir, tmp_path):
    bad = OUTSIDE_PATHS[kind](tmp_path)
    diff = _crafted(honest_diff, tmp_path, lambda entry, _diff: entry.update(path=bad))
    out = tmp_path / "a" / "b" / "out"
    before = _every_file(tmp_path)
    done = _decode(tiny_model_dir, diff, out)
    assert done.returncode == 1, done.stderr
    assert "files[" in done.stderr and "path" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert _every_file(tmp_path) == before  # nothing written anywhere: no PWNED.txt, no out, no staging


def test_output_path_through_a_symlinked_folder_is_refused(honest_diff, tiny_model_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    diff = _crafted(honest_diff, tmp_path, lambda entry, _diff: entry.update(path="sub/PWNED.txt"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(outside, target_is_directory=True)
    done = _decode(tiny_model_dir, diff, out)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "sub" in done.stderr
    assert not any(outside.iterdir())
    assert sorted(os.listdir(out)) == ["sub"]


def test_diff_input_outside_the_diff_folder_is_refused(honest_diff, tiny_model_dir, tmp_path):
    """The diff's own input paths are checked too: a manifest cannot make decode read (and copy
    into the output) a file from elsewhere on the machine."""
    private = tmp_path / "private"
    private.mkdir()
    (private / "notes.txt").write_bytes(NOTES)  # same bytes, so only the path check can refuse it
    diff = _crafted(honest_diff, tmp_path, lambda entry, _diff: entry.update(diff="../private/notes.txt"))
    out = tmp_path / "out"
    done = _decode(tiny_model_dir, diff, out)
    assert done.returncode == 1 and "files[" in done.stderr and ".diff" in done.stderr, done.stderr
    assert not out.exists()


def test_diff_input_through_a_symlink_is_refused(honest_diff, tiny_model_dir, tmp_path):
    private = tmp_path / "private"
    private.mkdir()
    (private / "notes.txt").write_bytes(NOTES)

    def link_plain_folder(_entry, diff):
        shutil.rmtree(diff / "plain")
        (diff / "plain").symlink_to(private, target_is_directory=True)

    diff = _crafted(honest_diff, tmp_path, link_plain_folder)
    out = tmp_path / "out"
    done = _decode(tiny_model_dir, diff, out)
    assert done.returncode == 1 and "symbolic link" in done.stderr, done.stderr
    assert not out.exists()


def test_base_copy_outside_the_base_folder_is_refused(honest_diff, tiny_model_dir, tmp_path):
    def reuse_outside(entry, _diff):
        entry.update(kind="base-copy", path="../../../../PWNED.txt")
        entry.pop("diff")

    diff = _crafted(honest_diff, tmp_path, reuse_outside)
    done = _decode(tiny_model_dir, diff, tmp_path / "out")
    assert done.returncode == 1 and "files[" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def _legacy_file(folder: Path, name: str) -> tuple[Path, Path]:
    key = folder / "key.bin"
    key.write_bytes(os.urandom(4096))
    plain = os.urandom(1000)
    digest = hashlib.sha256(plain)
    stream = (key.read_bytes() * 2)[:len(plain)]
    enc = folder / f"{name}.{digest.hexdigest()}.enc"
    enc.write_bytes(digest.digest() + bytes(a ^ b for a, b in zip(plain, stream)))
    return enc, key


@pytest.mark.parametrize("name", ["..", "..\\..\\PWNED.txt"])
def test_legacy_name_outside_the_folder_is_refused(name, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    enc, key = _legacy_file(inputs, name)
    out = tmp_path / "a" / "out"
    before = _every_file(tmp_path)
    done = subprocess.run([sys.executable, "-m", "belle_hf.cli", "xor", "decode-legacy", str(enc), "--key", str(key),
                           "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and enc.name in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert _every_file(tmp_path) == before


@pytest.mark.parametrize("field, value", [("size", 10**15), ("diff_offset", 10**12), ("offset", 3)])
def test_shard_offsets_outside_the_file_are_refused(field, value, honest_diff, tiny_model_dir, tmp_path):
    """A crafted size or offset cannot make decode write past a shard's end (a sparse file of a
    petabyte) or read outside the diff file."""
    from belle_hf.errors import BelleError
    from belle_hf.hub.xor import decode

    diff = tmp_path / "diff"
    shutil.copytree(honest_diff, diff)
    manifest = json.loads((diff / "xor_manifest.json").read_text())
    shard = next(entry for entry in manifest["files"] if entry["kind"] == "safetensors")
    stored = next(segment for segment in shard["segments"] if segment["stored"])
    (shard if field == "size" else stored)[field] = value
    (diff / "xor_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BelleError, match=r"files\[\d+\]"):
        decode(tiny_model_dir, diff, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
