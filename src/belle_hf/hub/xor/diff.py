"""Tensor-wise XOR diffs: publish a fine-tune of a license-restricted base so that only holders
of the base can rebuild it, byte for byte.

Layout of a diff folder::

    xor_manifest.json              what to rebuild and every checksum (see below)
    <shard>.safetensors.xor        the shard's header, then its stored tensor payloads in order
    plain/<file>                   small non-weight files (config, tokenizer, index)

For every tensor of every target safetensors shard the manifest records the base tensor it is
paired with, the SHA-256 of the base bytes used (checked before anything is written, so a
wrong base fails at once and names the first mismatching tensor) and of the target bytes
(checked while writing). The payload is ``target XOR base`` over the bytes both have; bytes the
base lacks (extra vocabulary rows, new heads) are XOR-ed with a SHAKE-256 keystream keyed by a
hash of base content that the manifest does not publish (plus a random per-diff nonce, so two
diffs never share keystream bytes): nothing is published in plaintext.
A tensor equal to its base stores nothing. Everything is streamed in fixed chunks with numpy,
and several tensors are processed in parallel threads (hashlib and file I/O release the GIL).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import os
import re
import shutil
import struct
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from belle_hf.errors import BelleError
from belle_hf.hub.lineage import write_lineage
from belle_hf.hub.xor.sources import BaseWeights, KeyBytes, read_full, read_safetensors_layout
from belle_hf.io import _default_file_mode, atomic_write, atomic_write_text, relative_path, resolve_inside

logger = logging.getLogger(__name__)

FORMAT_NAME = "belle-xor"
FORMAT_VERSION = 1
MANIFEST_NAME = "xor_manifest.json"
CHUNK_BYTES = 4 * 1024 * 1024
KEYSTREAM_BLOCK = 1024 * 1024
KEY_SOURCE_BYTES = 16 * 1024 * 1024
KEYSTREAM_DOMAIN = b"belle-xor keystream v1\0"
WEIGHT_SUFFIXES = (".bin", ".pth", ".pt", ".ckpt", ".gguf", ".h5", ".msgpack", ".onnx", ".npz")
SKIPPED_PARTS = {".git", ".cache", "__pycache__", ".huggingface"}


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass
class XorReport:
    """What an encode or decode did."""

    files: int = 0
    tensors: int = 0
    stored_tensors: int = 0
    equal_tensors: int = 0
    keystream_bytes: int = 0
    """Target bytes the base has no counterpart for (encrypted with the base-derived keystream)."""
    weight_bytes: int = 0
    diff_bytes: int = 0
    skipped_files: list[str] = field(default_factory=list)
    """Decode: output files already complete and verified (a rerun after an interruption)."""

    def summary(self) -> str:
        text = (f"{self.files} files, {self.tensors} tensors ({self.stored_tensors} stored, "
                f"{self.equal_tensors} equal to the base, {self.keystream_bytes} bytes without a base "
                f"counterpart), {self.weight_bytes / 2**20:.1f} MiB of weights")
        if self.skipped_files:
            text += f", {len(self.skipped_files)} files already complete"
        return text


# --------------------------------------------------------------------------- helpers


def _keystream(key: bytes, label: bytes, start: int, length: int) -> np.ndarray:
    """``length`` bytes of the keystream for ``label`` from position ``start`` (SHAKE-256 in
    counter mode: block i is SHAKE-256(key || label || i))."""
    first, last = start // KEYSTREAM_BLOCK, (start + length - 1) // KEYSTREAM_BLOCK
    blocks = b"".join(
        hashlib.shake_256(key + label + struct.pack("<Q", index)).digest(KEYSTREAM_BLOCK)
        for index in range(first, last + 1)
    )
    begin = start - first * KEYSTREAM_BLOCK
    return np.frombuffer(blocks, dtype=np.uint8)[begin:begin + length]


def _label(nonce: str, file: str, tensor: str) -> bytes:
    """What makes each tensor's keystream unique: the diff's random nonce (two diffs made from the
    same base never share a keystream), the file and the tensor."""
    return bytes.fromhex(nonce) + file.encode() + b"\0" + tensor.encode() + b"\0"


def _sha256_of(key: KeyBytes, length: int, buffer: np.ndarray) -> str:
    digest = hashlib.sha256()
    position = 0
    while position < length:
        n = min(len(buffer), length - position)
        key.read_into(position, buffer[:n])
        digest.update(buffer[:n])
        position += n
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_full(fd: int, buffer, offset: int) -> None:
    view = memoryview(buffer).cast("B")
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


class _Buffers(threading.local):
    """Two chunk buffers per worker thread: memory stays bounded by workers x 2 chunks."""

    def __init__(self):
        self.data = np.empty(CHUNK_BYTES, dtype=np.uint8)
        self.key = np.empty(CHUNK_BYTES, dtype=np.uint8)


def _target_files(target: Path, report: XorReport) -> list[Path]:
    """The files of ``target`` to encode: everything but secrets, caches and training state
    (the same exclusions as an upload, so a diff never carries a ``.env`` or optimizer state)."""
    from belle_hf.hub.ignore import files_to_upload, ignore_patterns

    every = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    every = [rel for rel in every if not (set(rel.split("/")) & SKIPPED_PARTS)]
    kept = set(files_to_upload(target, ignore_patterns()))
    report.skipped_files = [rel for rel in every if rel not in kept]
    for rel in report.skipped_files:
        logger.warning("not encoded (secret, cache or training state): %s", rel)
    return [target / rel for rel in every if rel in kept]


def _derive_key(base: BaseWeights, source: dict, buffer: np.ndarray) -> bytes:
    """The keystream key: SHA-256 over a domain prefix and the first bytes of one base tensor.
    The manifest publishes only the plain SHA-256 of those bytes, from which the key cannot be
    computed without them."""
    key = base.key(source["tensor"])
    digest_key = hashlib.sha256(KEYSTREAM_DOMAIN)
    digest_plain = hashlib.sha256()
    position = 0
    while position < source["length"]:
        n = min(len(buffer), source["length"] - position)
        key.read_into(position, buffer[:n])
        digest_key.update(buffer[:n])
        digest_plain.update(buffer[:n])
        position += n
    if "sha256" in source and digest_plain.hexdigest() != source["sha256"]:
        raise BelleError(f"wrong base model: tensor {source['tensor']} does not match the base the diff was made "
                         "from (checksum of its first bytes differs)")
    source["sha256"] = digest_plain.hexdigest()
    return digest_key.digest()


# --------------------------------------------------------------------------- encode


def encode(base: str | os.PathLike, target: str | os.PathLike, out_dir: str | os.PathLike) -> XorReport:
    """Write the XOR diff of the ``target`` model folder against ``base`` to ``out_dir``.

    Every file of ``target`` is covered: safetensors shards tensor by tensor, other small files
    stored plainly (or not at all when the base folder has the identical file). PyTorch pickle
    weights in the target are refused: they would be published in plaintext.
    """
    target, out_dir = Path(target), Path(out_dir)
    if not target.is_dir():
        raise BelleError(f"target model folder not found: {target}")
    if out_dir.resolve() == target.resolve() or out_dir.resolve() == Path(base).resolve():
        raise BelleError("the diff folder must differ from the base and target folders")
    report = XorReport()
    files = _target_files(target, report)
    weights = [p for p in files if p.suffix in WEIGHT_SUFFIXES]
    if weights:
        raise BelleError(f"{weights[0]}: non-safetensors weights would be published in plaintext; "
                         "save the model with safetensors (save_pretrained(..., safe_serialization=True))")
    if not any(p.suffix == ".safetensors" for p in files):
        raise BelleError(f"{target}: no *.safetensors weights to encode")
    base_weights = BaseWeights(base)
    buffers = _Buffers()
    try:
        names = base_weights.names()
        source_name = max(names, key=lambda name: (base_weights.tensor_lengths[name], name))
        key_source = {"tensor": source_name, "length": min(KEY_SOURCE_BYTES, base_weights.tensor_lengths[source_name])}
        stream_key = _derive_key(base_weights, key_source, buffers.key)
        nonce = os.urandom(16).hex()
        entries = []
        for path in files:
            rel = path.relative_to(target).as_posix()
            if rel == MANIFEST_NAME:
                raise BelleError(f"{path}: the target already contains an XOR manifest")
            if path.suffix == ".safetensors":
                logger.info("encoding %s", rel)
                entries.append(_encode_shard(path, rel, base_weights, stream_key, nonce, out_dir, buffers, report))
            else:
                entries.append(_encode_plain(path, rel, base_weights, out_dir))
            report.files += 1
        manifest = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "base": {"format": base_weights.format, "files": [p.name for p in base_weights.files],
                     "meta_layout": base_weights.meta_layout},
            "keystream": {"algorithm": "shake256-ctr", "block": KEYSTREAM_BLOCK, "nonce": nonce,
                          "source": key_source},
            "files": entries,
        }
        atomic_write_text(out_dir / MANIFEST_NAME, json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    finally:
        base_weights.close()
    write_lineage(out_dir, stage="xor-encode", parent=target, settings={"base": Path(base).name})
    return report


def _encode_plain(path: Path, rel: str, base: BaseWeights, out_dir: Path) -> dict:
    sha = _file_sha256(path)
    entry = {"path": rel, "size": path.stat().st_size, "sha256": sha}
    base_file = base.path / rel if base.path.is_dir() else None
    if base_file is not None and base_file.is_file() and base_file.stat().st_size == entry["size"] \
            and _file_sha256(base_file) == sha:
        entry["kind"] = "base-copy"  # e.g. the base's own tokenizer.model: publish nothing of it
        return entry
    entry["kind"] = "plain"
    entry["diff"] = f"plain/{rel}"
    with atomic_write(out_dir / entry["diff"]) as out, open(path, "rb") as src:
        shutil.copyfileobj(src, out, CHUNK_BYTES)
    return entry


def _shard_segments(layout) -> list[tuple[str, int, int]]:
    """(name, offset, length) covering the whole data region; gaps become unnamed segments."""
    segments, position = [], layout.header_size
    for span in layout.tensors:
        if span.offset > position:
            segments.append((f"<gap@{position}>", position, span.offset - position))
        if span.offset < position:
            raise BelleError(f"{layout.path}: overlapping tensors at {span.name}")
        segments.append((span.name, span.offset, span.length))
        position = span.offset + span.length
    if layout.file_size > position:
        segments.append((f"<gap@{position}>", position, layout.file_size - position))
    return segments


def _encode_shard(path: Path, rel: str, base: BaseWeights, stream_key: bytes, nonce: str, out_dir: Path,
                  buffers: _Buffers, report: XorReport) -> dict:
    layout = read_safetensors_layout(path)
    diff_rel = f"{rel}.xor"
    entry = {"path": rel, "kind": "safetensors", "size": layout.file_size, "header_size": layout.header_size,
             "diff": diff_rel, "segments": []}
    fd = os.open(path, os.O_RDONLY)
    try:
        with atomic_write(out_dir / diff_rel) as out:
            header = os.pread(fd, layout.header_size, 0)
            entry["header_sha256"] = hashlib.sha256(header).hexdigest()
            out.write(header)
            written = layout.header_size
            for name, offset, length in _shard_segments(layout):
                base_name = base.key_name(name) if not name.startswith("<gap@") else None
                key = base.key(base_name) if base_name else None
                xor_length = min(length, key.length) if key else 0
                data, key_buf = buffers.data, buffers.key
                target_sha, base_sha = hashlib.sha256(), hashlib.sha256()
                all_zero = key is not None and key.length == length
                label = _label(nonce, rel, name)
                position = 0
                while position < length:
                    n = min(CHUNK_BYTES, length - position)
                    chunk = data[:n]
                    read_full(fd, chunk, offset + position)
                    target_sha.update(chunk)
                    x = max(0, min(n, xor_length - position))
                    if x:
                        key.read_into(position, key_buf[:x])
                        base_sha.update(key_buf[:x])
                        np.bitwise_xor(chunk[:x], key_buf[:x], out=chunk[:x])
                        if all_zero and chunk[:x].any():
                            all_zero = False
                    if n > x:
                        np.bitwise_xor(chunk[x:], _keystream(stream_key, label, position + x - xor_length, n - x),
                                       out=chunk[x:])
                    out.write(memoryview(chunk))
                    position += n
                stored = not all_zero
                if not stored:  # equal to the base: drop what was just written
                    out.seek(written)
                    out.truncate()
                segment = {"tensor": name, "offset": offset, "length": length, "base": base_name,
                           "base_length": key.length if key else 0, "xor_length": xor_length,
                           "base_sha256": base_sha.hexdigest() if key else None,
                           "sha256": target_sha.hexdigest(), "stored": stored,
                           "diff_offset": written if stored else None}
                entry["segments"].append(segment)
                if stored:
                    written += length
                report.tensors += not name.startswith("<gap@")
                report.stored_tensors += stored
                report.equal_tensors += not stored
                report.keystream_bytes += length - xor_length
                report.weight_bytes += length
            entry["diff_size"] = written
            report.diff_bytes += written
    finally:
        os.close(fd)
    return entry


# --------------------------------------------------------------------------- decode


def read_manifest(diff_dir: str | os.PathLike) -> dict:
    """The diff's manifest, checked: every path in it (output files, and the diff's own input
    files) is a relative path that stays inside its folder, and every shard's segments tile it.
    A crafted manifest is refused here, naming the entry, before anything is read or written."""
    path = Path(diff_dir) / MANIFEST_NAME
    if not path.is_file():
        raise BelleError(f"{diff_dir}: not an XOR diff folder ({MANIFEST_NAME} is missing)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BelleError(f"{path}: invalid JSON: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME \
            or manifest.get("version") != FORMAT_VERSION:
        found = manifest if isinstance(manifest, dict) else {}
        raise BelleError(f"{path}: unsupported diff format {found.get('format')!r} version {found.get('version')!r}")
    _check_manifest(manifest, path, Path(diff_dir))
    return manifest


def _check_manifest(manifest: dict, path: Path, diff_dir: Path) -> None:
    files = manifest.get("files")
    keystream = manifest.get("keystream")
    source = keystream.get("source") if isinstance(keystream, dict) else None
    if not isinstance(files, list) or not all(isinstance(entry, dict) for entry in files) \
            or not isinstance(source, dict) or not isinstance(source.get("tensor"), str) \
            or not isinstance(source.get("length"), int) \
            or not re.fullmatch(r"(?:[0-9a-f]{2})+", str(keystream.get("nonce"))):
        raise BelleError(f"{path}: 'files' must be a list of entries and 'keystream' an object with a hex nonce "
                         "and a source tensor")
    seen: set[str] = set()
    for index, entry in enumerate(files):
        where = f"{path}: files[{index}]"
        rel = relative_path(entry.get("path"), f"{where}.path").as_posix()
        if rel in seen or rel == MANIFEST_NAME:
            raise BelleError(f"{where}.path: {rel!r} is listed twice or names the manifest itself")
        seen.add(rel)
        kind = entry.get("kind")
        if kind not in ("safetensors", "plain", "base-copy"):
            raise BelleError(f"{where}.kind: unknown kind {kind!r}")
        if kind != "base-copy":
            resolve_inside(diff_dir, entry.get("diff"), f"{where}.diff")
        if not isinstance(entry.get("size"), int) or (kind != "safetensors" and not isinstance(entry.get("sha256"), str)):
            raise BelleError(f"{where}: needs an integer size and a sha256")
        if kind == "safetensors":
            _check_segments(entry, where)


def _check_segments(entry: dict, where: str) -> None:
    """The segments must cover the shard's data region exactly, in order, and stored ones must lie
    inside the diff file: a crafted manifest cannot make the decoder write past the file's end."""
    def number(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    fields = ("size", "header_size", "diff_size")
    segments = entry.get("segments")
    if not all(number(entry.get(name)) for name in fields) or not isinstance(segments, list) \
            or not isinstance(entry.get("header_sha256"), str):
        raise BelleError(f"{where}: needs integer {', '.join(fields)}, a header_sha256 and a list of segments")
    position = entry["header_size"]
    for number_, segment in enumerate(segments):
        ok = isinstance(segment, dict) and all(number(segment.get(k)) for k in ("offset", "length", "xor_length")) \
            and isinstance(segment.get("tensor"), str) and isinstance(segment.get("sha256"), str) \
            and segment["offset"] == position and segment["xor_length"] <= segment["length"] \
            and (isinstance(segment.get("base"), str) and isinstance(segment.get("base_sha256"), str)
                 or segment.get("base") is None and segment["xor_length"] == 0 and segment.get("stored") is True)
        if ok and segment.get("stored"):
            ok = number(segment.get("diff_offset")) and segment["diff_offset"] + segment["length"] <= entry["diff_size"]
        if not ok:
            raise BelleError(f"{where}.segments[{number_}]: offsets or lengths do not tile the shard")
        position += segment["length"]
    if position != entry["size"]:
        raise BelleError(f"{where}: segments end at byte {position}, the shard has {entry['size']}")


def decode(base: str | os.PathLike, diff_dir: str | os.PathLike, out_dir: str | os.PathLike,
           workers: int | None = None) -> XorReport:
    """Rebuild the target folder from ``diff_dir`` and the ``base`` it was made from.

    The manifest is checked first (:func:`read_manifest`), then the output folder: it must be
    new, empty or a previous decode of the same diff (:class:`~belle_hf.hub.xor.output.DecodeOutput`),
    so no stale file (a leftover ``model.safetensors`` beside decoded shards) is ever loaded with
    the result. Then the base (sizes, then SHA-256 of every base tensor used): a wrong base raises
    :class:`BelleError` naming the first mismatching tensor. Nothing is written before all of
    that passes. A new decode is written in ``OUT.partial`` and renamed to ``OUT`` when every
    file matches its checksum; a failed check removes it, an interruption keeps it for the rerun
    to resume. Files already complete and verified are never decoded again.
    """
    from belle_hf.hub.xor.output import DecodeOutput

    diff_dir, out_dir = Path(diff_dir), Path(out_dir)
    if out_dir.resolve() in (diff_dir.resolve(), Path(base).resolve()):
        raise BelleError("the output folder must differ from the base and diff folders")
    manifest = read_manifest(diff_dir)
    workers = workers or default_workers()
    base_weights = BaseWeights(base)
    report = XorReport()
    try:
        _check_diff_files(manifest, diff_dir)
        _check_base_layout(manifest, base_weights)
        buffers = _Buffers()
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            output = DecodeOutput(out_dir, manifest, _file_sha256(diff_dir / MANIFEST_NAME),
                                  lambda entry, path: _already_complete(entry, path, pool, buffers))
            stream_key = _derive_key(base_weights, dict(manifest["keystream"]["source"]), buffers.key)
            logger.info("checking the base model against the diff's checksums")
            _verify_base(manifest, base_weights, pool, buffers)
            with output.writing() as folder:
                finisher = _Finisher()
                try:
                    shards = [entry["path"] for entry in manifest["files"] if entry["kind"] == "safetensors"]
                    for entry in manifest["files"]:
                        out_path = resolve_inside(folder, entry["path"], f"{MANIFEST_NAME}: output {entry['path']}")
                        if entry["kind"] == "safetensors":
                            report.tensors += sum(not s["tensor"].startswith("<gap@") for s in entry["segments"])
                            report.weight_bytes += entry["size"]
                        if entry["path"] in output.complete:
                            report.skipped_files.append(entry["path"])
                        elif entry["kind"] == "safetensors":
                            logger.info("decoding %s (%d/%d)", entry["path"], shards.index(entry["path"]) + 1,
                                        len(shards))
                            _decode_shard(entry, base_weights, stream_key, manifest["keystream"]["nonce"], diff_dir,
                                          out_path, pool, buffers, report, finisher)
                        else:
                            _decode_plain(entry, base_weights, diff_dir, out_path)
                        report.files += 1
                except BaseException:
                    finisher.close()
                    raise
                finisher.wait()
    finally:
        base_weights.close()
    # No record of its own: the decoded folder is the target byte for byte, with the target's
    # belle_lineage.json among its files (a record added here would be a stale file to a rerun).
    return report


def _check_diff_files(manifest: dict, diff_dir: Path) -> None:
    for entry in manifest["files"]:
        if "diff" not in entry:
            continue
        path = diff_dir / entry["diff"]
        expected = entry.get("diff_size", entry["size"])
        if not path.is_file():
            raise BelleError(f"{path}: missing from the diff folder")
        if path.stat().st_size != expected:
            raise BelleError(f"{path}: has {path.stat().st_size} bytes, the manifest expects {expected} "
                             "(incomplete download?)")


def _check_base_layout(manifest: dict, base: BaseWeights) -> None:
    """Fail fast, before hashing anything, when the base lacks a tensor or has another size."""
    for entry in manifest["files"]:
        if entry["kind"] == "base-copy":
            source = resolve_inside(base.path, entry["path"], f"{MANIFEST_NAME}: base file {entry['path']}") \
            if base.path.is_dir() else None
            if source is None or not source.is_file():
                raise BelleError(f"wrong base model: it has no file {entry['path']} (the diff reuses the base's copy)")
        for segment in entry.get("segments", []):
            name = segment["base"]
            if name is None:
                continue
            if name not in base.tensor_lengths:
                raise BelleError(f"wrong base model: it has no tensor {name} (needed for {segment['tensor']})")
            if base.tensor_lengths[name] != segment["base_length"]:
                raise BelleError(f"wrong base model: tensor {name} has {base.tensor_lengths[name]} bytes, the diff "
                                 f"was made from a base where it has {segment['base_length']} (another model size "
                                 "or vocabulary?)")
    source = manifest["keystream"]["source"]
    if base.tensor_lengths.get(source["tensor"], -1) < source["length"]:
        raise BelleError(f"wrong base model: tensor {source['tensor']} is missing or too small")


def _verify_base(manifest: dict, base: BaseWeights, pool, buffers: _Buffers) -> None:
    jobs: dict[tuple[str, int], str] = {}
    for entry in manifest["files"]:
        for segment in entry.get("segments", []):
            if segment["base"] is not None and segment["xor_length"]:
                jobs.setdefault((segment["base"], segment["xor_length"]), segment["base_sha256"])
    futures = [(name, expected, pool.submit(lambda n=name, l=length: _sha256_of(base.key(n), l, buffers.key)))
               for (name, length), expected in jobs.items()]
    try:
        for name, expected, future in futures:
            if future.result() != expected:
                raise BelleError(f"wrong base model: tensor {name} differs from the base the diff was made from "
                                 "(SHA-256 mismatch); nothing was written")
    except BaseException:
        for _, _, future in futures:
            future.cancel()
        raise
    for entry in manifest["files"]:
        if entry["kind"] == "base-copy" and _file_sha256(base.path / entry["path"]) != entry["sha256"]:
            raise BelleError(f"wrong base model: file {entry['path']} differs from the base the diff was made from")


def _decode_segment(segment: dict, base: BaseWeights, stream_key: bytes, label: bytes, diff_fd: int,
                    out_fd: int, buffers: _Buffers) -> str:
    data, key_buf = buffers.data, buffers.key
    key = base.key(segment["base"]) if segment["base"] else None
    length, xor_length = segment["length"], segment["xor_length"]
    digest = hashlib.sha256()
    position = 0
    while position < length:
        n = min(CHUNK_BYTES, length - position)
        chunk = data[:n]
        if segment["stored"]:
            read_full(diff_fd, chunk, segment["diff_offset"] + position)
            x = max(0, min(n, xor_length - position))
            if x:
                key.read_into(position, key_buf[:x])
                np.bitwise_xor(chunk[:x], key_buf[:x], out=chunk[:x])
            if n > x:
                np.bitwise_xor(chunk[x:], _keystream(stream_key, label, position + x - xor_length, n - x),
                               out=chunk[x:])
            digest.update(chunk)
        else:
            key.read_into(position, chunk)  # equal to the base: already verified by _verify_base
        _write_full(out_fd, chunk, segment["offset"] + position)
        position += n
    return digest.hexdigest() if segment["stored"] else segment["base_sha256"]


def _segment_sha_in_file(segment: dict, fd: int, buffers: _Buffers) -> str:
    digest = hashlib.sha256()
    position = 0
    while position < segment["length"]:
        n = min(CHUNK_BYTES, segment["length"] - position)
        read_full(fd, buffers.data[:n], segment["offset"] + position)
        digest.update(buffers.data[:n])
        position += n
    return digest.hexdigest()


def _already_complete(entry: dict, path: Path, pool, buffers: _Buffers) -> bool:
    """True when ``path`` is a complete, verified output (left by an interrupted earlier run)."""
    if not path.is_file() or path.stat().st_size != entry["size"]:
        return False
    if entry["kind"] != "safetensors":
        return _file_sha256(path) == entry["sha256"]
    fd = os.open(path, os.O_RDONLY)
    try:
        if hashlib.sha256(os.pread(fd, entry["header_size"], 0)).hexdigest() != entry["header_sha256"]:
            return False
        futures = [pool.submit(_segment_sha_in_file, segment, fd, buffers) for segment in entry["segments"]]
        return all(future.result() == segment["sha256"] for future, segment in zip(futures, entry["segments"]))
    finally:
        os.close(fd)


class _Finisher:
    """Flushes finished output files to disk (fsync) and renames them into place in a background
    thread, so that one shard's flush overlaps the next shard's decoding; on failure, removes
    every temporary file that was not renamed."""

    def __init__(self):
        self._thread = concurrent.futures.ThreadPoolExecutor(1)
        self._pending: list[tuple[concurrent.futures.Future, Path]] = []

    def submit(self, fd: int, tmp: Path, path: Path) -> None:
        def finish() -> None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)

        self._pending.append((self._thread.submit(finish), tmp))

    def wait(self) -> None:
        try:
            for future, _ in self._pending:
                future.result()
        finally:
            self.close()

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        for _, tmp in self._pending:
            tmp.unlink(missing_ok=True)


def _decode_shard(entry: dict, base: BaseWeights, stream_key: bytes, nonce: str, diff_dir: Path, out_path: Path,
                  pool, buffers: _Buffers, report: XorReport, finisher: _Finisher) -> None:
    diff_fd = os.open(diff_dir / entry["diff"], os.O_RDONLY)
    try:
        header = os.pread(diff_fd, entry["header_size"], 0)
        if hashlib.sha256(header).hexdigest() != entry["header_sha256"]:
            raise BelleError(f"{diff_dir / entry['diff']}: corrupt header (checksum mismatch)")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
        tmp = Path(tmp_name)
        os.fchmod(out_fd, _default_file_mode(out_path))  # as atomic_write does: not mkstemp's 0600
        futures: list[concurrent.futures.Future] = []
        try:
            os.ftruncate(out_fd, entry["size"])
            _write_full(out_fd, header, 0)
            futures = [
                pool.submit(_decode_segment, segment, base, stream_key,
                            _label(nonce, entry["path"], segment["tensor"]), diff_fd, out_fd, buffers)
                for segment in entry["segments"]
            ]
            for segment, future in zip(entry["segments"], futures):
                if future.result() != segment["sha256"]:
                    raise BelleError(f"{entry['path']}: decoded tensor {segment['tensor']} does not match its "
                                     f"SHA-256 (corrupt diff file {entry['diff']}?)")
                report.stored_tensors += segment["stored"]
                report.equal_tensors += not segment["stored"]
                report.keystream_bytes += segment["length"] - segment["xor_length"]
        except BaseException:
            for future in futures:
                future.cancel()
            concurrent.futures.wait(futures)
            os.close(out_fd)
            tmp.unlink(missing_ok=True)
            raise
        finisher.submit(out_fd, tmp, out_path)  # fsync + rename, overlapping the next shard
    finally:
        os.close(diff_fd)


def _decode_plain(entry: dict, base: BaseWeights, diff_dir: Path, out_path: Path) -> None:
    source = diff_dir / entry["diff"] if entry["kind"] == "plain" else base.path / entry["path"]
    digest = hashlib.sha256()
    with atomic_write(out_path) as out, open(source, "rb") as src:
        for block in iter(lambda: src.read(CHUNK_BYTES), b""):
            digest.update(block)
            out.write(block)
        if digest.hexdigest() != entry["sha256"]:
            raise BelleError(f"{source}: checksum mismatch for {entry['path']}")

