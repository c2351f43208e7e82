"""BELLE's and point-alpaca's original ``.enc`` files, byte for byte, but vectorized.

An ``.enc`` file is the 32-byte SHA-256 of the plain file followed by the plain file XOR-ed
with a key stream made from the base file (e.g. Meta's ``consolidated.00.pth``): the plain
file is processed in 10 MiB chunks; for each chunk the next 10 MiB piece of the base file is
read (wrapping to the base's start when a read returns nothing) and repeated to cover the
chunk. The file is named ``NAME.<sha256hex>.enc``.

The original tool XOR-ed byte by byte in Python (~24 MiB/s) and compared the checksum only
after writing everything; here numpy does the XOR, the checksum is computed while writing,
and the output only appears (renamed from a temporary file) when it matches.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from belle_hf.errors import BelleError
from belle_hf.io import atomic_path, resolve_inside

PIECE_BYTES = 10 * 1024 * 1024
ENC_NAME = re.compile(r"^(?P<name>.+)\.(?P<sha>[0-9a-f]{64})\.enc$")


class _KeyPieces:
    """The base file read in 10 MiB pieces, wrapping to the start when a read returns nothing."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise BelleError(f"key file not found: {self.path}")
        if self.path.stat().st_size == 0:
            raise BelleError(f"key file is empty: {self.path}")
        self.handle = open(self.path, "rb")

    def next_piece(self) -> bytes:
        piece = self.handle.read(PIECE_BYTES)
        if not piece:
            self.handle.seek(0)
            piece = self.handle.read(PIECE_BYTES)
        return piece

    def close(self) -> None:
        self.handle.close()


def _xor_chunk(chunk: bytes, piece: bytes) -> np.ndarray:
    data = np.frombuffer(chunk, dtype=np.uint8)
    key = np.frombuffer(piece, dtype=np.uint8)
    if len(key) < len(data):
        key = np.resize(key, len(data))  # the piece repeated to cover the chunk
    return np.bitwise_xor(data, key[:len(data)])


def _xor_stream(src, key_file: Path, out, digest_of: str) -> bytes:
    """XOR ``src`` (positioned at the payload) into ``out``; returns the SHA-256 of the
    ``digest_of`` side ("input" when encoding, "output" when decoding)."""
    digest = hashlib.sha256()
    pieces = _KeyPieces(key_file)
    try:
        for chunk in iter(lambda: src.read(PIECE_BYTES), b""):
            result = _xor_chunk(chunk, pieces.next_piece())
            digest.update(chunk if digest_of == "input" else result)
            out.write(memoryview(result))
    finally:
        pieces.close()
    return digest.digest()


def legacy_output_name(enc_file: str | os.PathLike) -> tuple[str, str]:
    """Split ``NAME.<sha256hex>.enc`` into (NAME, sha256hex); :class:`BelleError` otherwise."""
    match = ENC_NAME.match(Path(enc_file).name)
    if not match:
        raise BelleError(f"{enc_file}: not a legacy encrypted file (expected NAME.<sha256 hex>.enc)")
    return match["name"], match["sha"]


def legacy_decode(enc_file: str | os.PathLike, key_file: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Decode one ``NAME.<sha256>.enc`` file with ``key_file`` into ``out_dir/NAME``.

    The checksum is computed while writing; on a mismatch (wrong key file, corrupt download)
    :class:`BelleError` is raised and no output file is left behind.
    """
    enc_file, out_dir = Path(enc_file), Path(out_dir)
    if not enc_file.is_file():
        raise BelleError(f"encrypted file not found: {enc_file}")
    name, sha_hex = legacy_output_name(enc_file)
    # The name comes from a downloaded file's name: ``...<sha>.enc`` would write to OUT/.. .
    out_path = resolve_inside(out_dir, name, f"{enc_file}: decoded file name")
    with open(enc_file, "rb") as src:
        expected = src.read(32)
        if len(expected) < 32:
            raise BelleError(f"{enc_file}: too short to be an encrypted file")
        if expected.hex() != sha_hex:
            raise BelleError(f"{enc_file}: the checksum in the file does not match the one in its name "
                             "(renamed or corrupt file)")
        with atomic_path(out_path) as tmp:
            with open(tmp, "wb") as out:
                actual = _xor_stream(src, Path(key_file), out, digest_of="output")
                if actual != expected:
                    raise BelleError(f"{enc_file}: SHA-256 of the decoded file does not match; wrong key file "
                                     f"{key_file} (it must be the exact original base file) or corrupt download. "
                                     "No output was written.")
                out.flush()
                os.fsync(out.fileno())
    return out_path


def legacy_encode(plain_file: str | os.PathLike, key_file: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Encode ``plain_file`` with ``key_file`` into ``out_dir/NAME.<sha256>.enc`` (the same bytes
    BELLE's and point-alpaca's ``encrypt.py`` produce)."""
    plain_file, out_dir = Path(plain_file), Path(out_dir)
    if not plain_file.is_file():
        raise BelleError(f"file not found: {plain_file}")
    digest = hashlib.sha256()
    with open(plain_file, "rb") as src:
        for block in iter(lambda: src.read(PIECE_BYTES), b""):
            digest.update(block)
    out_path = out_dir / f"{plain_file.name}.{digest.hexdigest()}.enc"
    with atomic_path(out_path) as tmp, open(tmp, "wb") as out, open(plain_file, "rb") as src:
        out.write(digest.digest())
        if _xor_stream(src, Path(key_file), out, digest_of="input") != digest.digest():
            raise BelleError(f"{plain_file} changed while it was being encoded")
    return out_path
