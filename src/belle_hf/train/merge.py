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

    ``base_model`` overrides the base recorded in ``adapter_config.json`` (a Hub id, or a path
    relative to the adapter folder). The result is written to a temporary folder and renamed, so
    ``out_dir`` never holds a half-written model; its ``belle_lineage.json`` names the adapter as
    parent and carries the adapter's eval results, marked as measured on it.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from belle_hf.hub.lineage import write_lineage
    from belle_hf.models import adapter_base, is_adapter_folder

    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    if not is_adapter_folder(adapter_dir):
        raise BelleError(f"{adapter_dir}: no adapter_config.json; is this a LoRA output folder?")
    base = base_model or adapter_base(adapter_dir)
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
        write_lineage(staging, stage="merge", parent=adapter_dir, settings={"dtype": dtype, "base_model": base})
    return out_dir
