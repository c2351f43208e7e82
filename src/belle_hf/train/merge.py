"""``belle merge ADAPTER -o OUT``: fold a LoRA adapter into its base model (peft's ``merge_and_unload``)."""

from __future__ import annotations

import os
from pathlib import Path

from belle_hf.errors import BelleError
from belle_hf.io import atomic_dir


def merge_adapter(adapter_dir: str | os.PathLike, out_dir: str | os.PathLike, base_model: str | None = None,
                  dtype: str = "auto") -> Path:
    """Merge the LoRA adapter in ``adapter_dir`` into its base model and save the full model
    (safetensors) and the adapter's tokenizer (with its chat template) to ``out_dir``.

    ``base_model`` overrides the base recorded in ``adapter_config.json``. The result is written
    to a temporary folder and renamed, so ``out_dir`` never holds a half-written model.
    """
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise BelleError(f"{adapter_dir}: no adapter_config.json; is this a LoRA output folder?")
    config = PeftConfig.from_pretrained(str(adapter_dir))
    base = base_model or config.base_model_name_or_path
    if not base:
        raise BelleError(f"{adapter_dir}: the adapter does not name its base model; pass --base")
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    except OSError as error:
        raise BelleError(f"cannot load the base model {base!r}: {error}") from None
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    tokenizer_source = adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else base
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_source))
    with atomic_dir(out_dir) as staging:
        merged.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
    return out_dir
