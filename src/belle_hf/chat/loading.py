"""Load a chat model (optionally with a LoRA adapter) and make sure it has a chat template."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from belle_hf.errors import BelleError
from belle_hf.templates import BELLE_CHAT_TEMPLATE

# Files a model folder needs besides its tokenizer; linked (not copied) into a serving folder.
_MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".safetensors.index.json", ".bin.index.json")
_MODEL_FILES = ("config.json", "generation_config.json")


def _check_folder(path: str | os.PathLike, what: str) -> None:
    if not Path(path).exists() and not _looks_like_hub_id(str(path)):
        raise BelleError(f"{path}: {what} not found")


def _looks_like_hub_id(name: str) -> bool:
    return name.count("/") == 1 and not name.startswith((".", "/", "~"))


def resolve_adapter(model: str | os.PathLike, adapter: str | os.PathLike | None) -> tuple[str, str | None]:
    """``(base model, adapter)``: a LoRA folder given as the model (``belle train``'s LoRA output)
    stands for its base (``base_model_name_or_path`` in ``adapter_config.json``) plus itself."""
    config_file = Path(model) / "adapter_config.json"
    if adapter is None and config_file.is_file():
        base = json.loads(config_file.read_text(encoding="utf-8")).get("base_model_name_or_path")
        if not base:
            raise BelleError(f"{config_file}: no base_model_name_or_path; pass the base model and --adapter")
        return str(base), str(model)
    return str(model), None if adapter is None else str(adapter)


def load_tokenizer(model: str | os.PathLike, adapter: str | os.PathLike | None = None):
    """The tokenizer of the adapter folder if it saved one (training may add a template), else the
    model's; BELLE's chat template is set when it has none."""
    from transformers import AutoTokenizer

    source = adapter if adapter is not None and (Path(adapter) / "tokenizer_config.json").is_file() else model
    tokenizer = AutoTokenizer.from_pretrained(source)
    if not tokenizer.chat_template:
        tokenizer.chat_template = BELLE_CHAT_TEMPLATE
    return tokenizer


def load_chat_model(model: str | os.PathLike, adapter: str | os.PathLike | None = None, device: str | None = None):
    """``(model, tokenizer)`` ready to generate: the base model, with ``adapter`` (a peft LoRA
    folder) applied when given, in eval mode on ``device`` (CUDA when available by default)."""
    import torch
    from transformers import AutoModelForCausalLM

    _check_folder(model, "model")
    model, adapter = resolve_adapter(model, adapter)
    _check_folder(model, "base model")
    if adapter is not None:
        _check_folder(adapter, "adapter")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = load_tokenizer(model, adapter)
    # Loading a GPTQ model, or a peft adapter, imports gptqmodel when it is installed, which prints
    # a banner and logs on stdout: keep stdout for the reply (``belle chat --prompt`` feeds scripts).
    with contextlib.redirect_stdout(sys.stderr):
        loaded = AutoModelForCausalLM.from_pretrained(model, dtype="auto", device_map=device)
        if adapter is not None:
            from peft import PeftModel

            loaded = PeftModel.from_pretrained(loaded, str(adapter))
    loaded.eval()
    return loaded, tokenizer


def prepare_model_folder(model: str | os.PathLike, adapter: str | os.PathLike | None, work_dir: str | os.PathLike) -> Path:
    """A folder that any HF server can load as is: ``model`` itself when it has a chat template
    and no adapter is given; otherwise a folder in ``work_dir`` with the adapter merged into the
    weights (peft ``merge_and_unload``) or the model's weights linked, and the tokenizer saved with
    BELLE's chat template."""
    from transformers import AutoTokenizer

    _check_folder(model, "model")
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
        tokenizer = load_tokenizer(model)
        for file in model_path.iterdir():
            if file.name in _MODEL_FILES or file.name.endswith(_MODEL_FILE_SUFFIXES):
                (out / file.name).symlink_to(file.resolve())
    tokenizer.save_pretrained(out)
    return out
