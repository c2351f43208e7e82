"""A chat model ready to serve (loading itself lives in :mod:`belle_hf.models`)."""

from __future__ import annotations

import os
from pathlib import Path

from belle_hf.models import check_model_reference, load_chat_tokenizer, load_model_and_tokenizer, resolve_adapter

# Files a model folder needs besides its tokenizer; linked (not copied) into a serving folder.
_MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".safetensors.index.json", ".bin.index.json")
_MODEL_FILES = ("config.json", "generation_config.json")

load_chat_model = load_model_and_tokenizer
"""``(model, tokenizer)`` ready to chat; see :func:`belle_hf.models.load_model_and_tokenizer`."""


def prepare_model_folder(model: str | os.PathLike, adapter: str | os.PathLike | None, work_dir: str | os.PathLike) -> Path:
    """A folder that any HF server can load as is: ``model`` itself when it has a chat template
    and no adapter is given; otherwise a folder in ``work_dir`` with the adapter merged into the
    weights (peft ``merge_and_unload``) or the model's weights linked, and the tokenizer saved with
    BELLE's chat template."""
    from transformers import AutoTokenizer

    check_model_reference(model)
    model, adapter = resolve_adapter(model, adapter)
    model_path = Path(model)
    if adapter is None:
        tokenizer = AutoTokenizer.from_pretrained(model)
        if tokenizer.chat_template:
            return model_path
    out = Path(work_dir) / (model_path.name or "model")
    out.mkdir(parents=True, exist_ok=True)
    if adapter is not None or not model_path.is_dir():
        merged, tokenizer = load_chat_model(model, adapter, device="cpu")
        if adapter is not None:
            merged = merged.merge_and_unload()
        merged.save_pretrained(out)
    else:
        tokenizer = load_chat_tokenizer(model)
        for file in model_path.iterdir():
            if file.name in _MODEL_FILES or file.name.endswith(_MODEL_FILE_SUFFIXES):
                (out / file.name).symlink_to(file.resolve())
    tokenizer.save_pretrained(out)
    return out
