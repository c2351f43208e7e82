"""Where the bytes of a tensor live: safetensors files read by offset, or torch checkpoints.

The XOR codec works on raw tensor bytes, never on values, so bf16 needs no numpy dtype and
nothing is converted. Safetensors headers are parsed by hand (8-byte little-endian length,
then JSON, per the format spec): the ``safetensors`` library loads tensors but does not expose
their byte offsets, and reading by offset with ``os.preadv`` keeps memory bounded by one
chunk whatever the tensor size (a memory map would count every touched page in the RSS).
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from belle_hf.errors import BelleError

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own limit


@dataclass
class TensorSpan:
    """One tensor stored in a file: ``length`` bytes starting at absolute ``offset``."""

    name: str
    dtype: str
    shape: list[int]
    offset: int
    length: int


@dataclass
class SafetensorsLayout:
    """The parsed header of a safetensors file."""

    path: Path
    header_size: int
    """Bytes before the data region: 8 (length prefix) + the JSON header."""
    file_size: int
    tensors: list[TensorSpan] = field(default_factory=list)
    """Tensors sorted by offset."""


def read_safetensors_layout(path: str | os.PathLike) -> SafetensorsLayout:
    """Parse the header of a safetensors file; raise :class:`BelleError` naming the file if malformed."""
    path = Path(path)
    file_size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise BelleError(f"{path}: not a safetensors file (shorter than 8 bytes)")
        (json_size,) = struct.unpack("<Q", prefix)
        if json_size > MAX_HEADER_BYTES or 8 + json_size > file_size:
            raise BelleError(f"{path}: not a safetensors file (header length {json_size} is invalid)")
        try:
            header = json.loads(handle.read(json_size))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BelleError(f"{path}: not a safetensors file (header is not JSON: {error})") from None
    data_start = 8 + json_size
    tensors = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        tensors.append(TensorSpan(name, info["dtype"], list(info["shape"]), data_start + begin, end - begin))
    tensors.sort(key=lambda span: span.offset)
    if tensors and tensors[-1].offset + tensors[-1].length > file_size:
        raise BelleError(f"{path}: truncated safetensors file (tensor {tensors[-1].name} runs past the end)")
    return SafetensorsLayout(path, data_start, file_size, tensors)


def read_full(fd: int, buffer, offset: int) -> None:
    """Fill ``buffer`` (a writable buffer) with the bytes of ``fd`` at ``offset``; fail on a short file."""
    view = memoryview(buffer).cast("B")
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got <= 0:
            raise BelleError(f"unexpected end of file (fd {fd}) at byte {offset + done}")
        done += got


class FileSpanReader:
    """Reads ``length`` bytes that start at ``offset`` of a file, by position (thread safe)."""

    def __init__(self, path: Path, offset: int, length: int, fds: FdCache):
        self.path, self.offset, self.length, self._fds = path, offset, length, fds

    def read_into(self, start: int, buffer) -> None:
        read_full(self._fds.get(self.path), buffer, self.offset + start)


class ArraySpanReader:
    """Reads from an in-memory (or memory-mapped) uint8 numpy array: torch checkpoints."""

    def __init__(self, array):
        self.array, self.length = array, int(array.shape[0])

    def read_into(self, start: int, buffer) -> None:
        import numpy as np

        out = np.frombuffer(memoryview(buffer).cast("B"), dtype=np.uint8)
        out[:] = self.array[start:start + out.shape[0]]


class KeyBytes:
    """The base bytes a target tensor is XOR-ed with: one or more spans read as one sequence
    (Meta's model-parallel ``consolidated.0N.pth`` shards are concatenated in file order)."""

    def __init__(self, name: str, readers: list):
        self.name = name
        self.readers = readers
        self.length = sum(reader.length for reader in readers)

    def read_into(self, start: int, buffer) -> None:
        view = memoryview(buffer).cast("B")
        position, done = 0, 0
        for reader in self.readers:
            if done >= len(view):
                break
            end = position + reader.length
            if start + done < end:
                local = start + done - position
                take = min(len(view) - done, reader.length - local)
                reader.read_into(local, view[done:done + take])
                done += take
            position = end
        if done < len(view):
            raise BelleError(f"base tensor {self.name}: read past its end")


class FdCache:
    """Read-only file descriptors shared by the worker threads (``os.preadv`` needs no seek)."""

    def __init__(self):
        self._fds: dict[Path, int] = {}

    def get(self, path: Path) -> int:
        fd = self._fds.get(path)
        if fd is None:
            fd = self._fds.setdefault(path, os.open(path, os.O_RDONLY))
        return fd

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


# Meta's original LLaMA names (consolidated.*.pth) for Hugging Face Llama parameter names.
_META_NAMES = [
    (r"model\.embed_tokens\.weight", "tok_embeddings.weight"),
    (r"model\.norm\.weight", "norm.weight"),
    (r"lm_head\.weight", "output.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.q_proj\.weight", r"layers.\1.attention.wq.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.k_proj\.weight", r"layers.\1.attention.wk.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.v_proj\.weight", r"layers.\1.attention.wv.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj\.weight", r"layers.\1.attention.wo.weight"),
    (r"model\.layers\.(\d+)\.mlp\.gate_proj\.weight", r"layers.\1.feed_forward.w1.weight"),
    (r"model\.layers\.(\d+)\.mlp\.down_proj\.weight", r"layers.\1.feed_forward.w2.weight"),
    (r"model\.layers\.(\d+)\.mlp\.up_proj\.weight", r"layers.\1.feed_forward.w3.weight"),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", r"layers.\1.attention_norm.weight"),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", r"layers.\1.ffn_norm.weight"),
]


def meta_name(hf_name: str) -> str | None:
    """Meta's checkpoint name for a Hugging Face Llama parameter, or None if it has none."""
    for pattern, replacement in _META_NAMES:
        if re.fullmatch(pattern, hf_name):
            return re.sub(pattern, replacement, hf_name)
    return None


TORCH_SUFFIXES = (".bin", ".pth", ".pt")


class BaseWeights:
    """The license-restricted base model: an HF folder (safetensors or ``.bin``) or Meta's
    ``consolidated.*.pth``, as a folder or a single file.

    :meth:`key_for` returns the bytes a target tensor is XOR-ed with. ``.bin``/``.pth`` files
    are read with ``torch.load(weights_only=True)``: no unsafe pickle is ever executed.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise BelleError(f"base model not found: {self.path}")
        files = [self.path] if self.path.is_file() else sorted(
            p for p in self.path.iterdir() if p.suffix in (".safetensors", *TORCH_SUFFIXES) and p.is_file()
        )
        safetensors_files = [p for p in files if p.suffix == ".safetensors"]
        # A folder with both formats (HF exports often have both) is read through its safetensors.
        self.files = safetensors_files or [p for p in files if p.suffix in TORCH_SUFFIXES]
        if not self.files:
            raise BelleError(f"{self.path}: no weights (*.safetensors, *.bin, consolidated.*.pth) found")
        self.format = "safetensors" if safetensors_files else "torch"
        self.fds = FdCache()
        self._pieces: dict[str, list] = {}  # tensor name -> readers, in file order
        self.tensor_lengths: dict[str, int] = {}
        for file in self.files:
            if self.format == "safetensors":
                for span in read_safetensors_layout(file).tensors:
                    self._add(span.name, FileSpanReader(file, span.offset, span.length, self.fds))
            else:
                for name, array in _torch_tensor_bytes(file).items():
                    self._add(name, ArraySpanReader(array))
        self.meta_layout = "tok_embeddings.weight" in self._pieces

    def _add(self, name: str, reader) -> None:
        self._pieces.setdefault(name, []).append(reader)
        self.tensor_lengths[name] = self.tensor_lengths.get(name, 0) + reader.length

    def key_name(self, target_name: str) -> str | None:
        """The base tensor a target tensor is paired with (same name, or Meta's name for it)."""
        if target_name in self._pieces:
            return target_name
        if self.meta_layout:
            name = meta_name(target_name)
            if name in self._pieces:
                return name
        return None

    def key(self, base_name: str) -> KeyBytes:
        return KeyBytes(base_name, self._pieces[base_name])

    def names(self) -> list[str]:
        return list(self._pieces)

    def close(self) -> None:
        self.fds.close()


def _torch_tensor_bytes(path: Path) -> dict:
    """Raw bytes (uint8 numpy views) of every tensor in a torch checkpoint, loaded safely."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # checkpoints from before the zip format cannot be memory-mapped
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file
        raise BelleError(f"{path}: cannot be read as a weights-only torch checkpoint: {error}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    out = {}
    for name, tensor in state.items():
        if isinstance(tensor, torch.Tensor):
            flat = tensor.detach().contiguous().reshape(-1)
            out[name] = flat.view(torch.uint8).numpy() if flat.numel() else flat.numpy().view("uint8")
    return out
