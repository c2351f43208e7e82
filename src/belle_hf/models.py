"""Model references in one place: what is a Hub id, where a LoRA adapter's base lives, and
loading a model (with its adapter) and its tokenizer for generation.

Every stage that takes a model (``chat``, ``eval generate``, ``train``, ``merge``, ``hub push``)
goes through this module, so a LoRA folder given as the model, a base recorded relative to its
adapter, and a Hub id mean the same thing everywhere.

An adapter written by ``belle train`` records its base (``base_model_name_or_path`` in
``adapter_config.json``) as the Hub id when the base came from the Hub, and otherwise as a path
relative to the adapter folder (the quickstart's ``base-model/``), so the folder keeps working
after it is moved. peft itself only knows absolute or cwd-relative paths, hence
:func:`adapter_base` and :func:`make_adapter_portable` here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from pathlib import Path

from belle_hf.errors import BelleError

ADAPTER_CONFIG = "adapter_config.json"

# The Hub's repo-id shape (huggingface_hub.utils.validate_repo_id): optional namespace, then name;
# letters, digits, ``-``, ``_``, ``.``; no ``--`` or ``..``; at most 96 characters each.
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")


def is_well_formed_hub_id(name: object, namespace: bool = False) -> bool:
    """``name`` has the shape of a Hub repo id (``namespace/name``; with ``namespace=False`` a bare
    ``name`` such as ``gpt2`` also counts). Says nothing about whether the repo exists."""
    if not isinstance(name, str) or not _HUB_ID.match(name) or "--" in name or ".." in name:
        return False
    return "/" in name or not namespace


def is_hub_id(name: str | os.PathLike) -> bool:
    """``name`` names a Hub repository rather than something on this machine: it is
    ``namespace/name`` shaped and no local file or folder of that name exists."""
    text = str(name)
    if text.startswith((".", "/", "~")) or Path(text).expanduser().exists():
        return False
    return is_well_formed_hub_id(text, namespace=True)


def is_adapter_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def _read_adapter_config(adapter_dir: Path) -> dict:
    from belle_hf.io import read_json_file

    config_file = adapter_dir / ADAPTER_CONFIG
    config = read_json_file(config_file, missing=f"{adapter_dir}: no {ADAPTER_CONFIG}; is this a LoRA output folder?")
    if not isinstance(config, dict):
        raise BelleError(f"{config_file}: not a JSON object")
    return config


def recorded_base(adapter_dir: str | os.PathLike) -> str | None:
    """``base_model_name_or_path`` as written in the adapter's config (``None`` when absent)."""
    return _read_adapter_config(Path(adapter_dir)).get("base_model_name_or_path") or None


def adapter_base(adapter_dir: str | os.PathLike) -> str:
    """The base model of the adapter in ``adapter_dir``, ready to load: a Hub id as recorded, a
    relative path resolved against the adapter folder, an absolute path as is."""
    adapter_dir = Path(adapter_dir)
    base = recorded_base(adapter_dir)
    if not base:
        raise BelleError(f"{adapter_dir / ADAPTER_CONFIG}: no base_model_name_or_path; name the base model")
    if Path(base).is_absolute() or base.startswith("~"):
        return str(Path(base).expanduser())
    beside = adapter_dir / base
    if beside.exists():
        return str(beside)
    if is_hub_id(base):
        return base
    raise BelleError(f"{adapter_dir / ADAPTER_CONFIG}: base_model_name_or_path {base!r} is neither a folder "
                     "beside the adapter nor a Hub id")


def portable_base(base: str | os.PathLike, adapter_dir: str | os.PathLike) -> str:
    """How an adapter in ``adapter_dir`` should record ``base``: the Hub id unchanged, a local
    folder as a path relative to ``adapter_dir`` (so the two can move together)."""
    text = str(base)
    if is_hub_id(text) or not Path(text).expanduser().exists():
        return text
    return Path(os.path.relpath(Path(text).expanduser().resolve(), Path(adapter_dir).resolve())).as_posix()


def make_adapter_portable(adapter_dir: str | os.PathLike) -> str | None:
    """Rewrite ``base_model_name_or_path`` in ``adapter_dir``'s config with :func:`portable_base`
    (atomically); returns what it now records."""
    from belle_hf.io import atomic_write_text

    adapter_dir = Path(adapter_dir)
    config = _read_adapter_config(adapter_dir)
    base = config.get("base_model_name_or_path")
    if not base:
        return None
    portable = portable_base(base, adapter_dir)
    if portable != base:
        config["base_model_name_or_path"] = portable
        atomic_write_text(adapter_dir / ADAPTER_CONFIG, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return portable


def check_model_reference(path: str | os.PathLike, what: str = "model") -> None:
    """:class:`BelleError` unless ``path`` is an existing file/folder or a Hub id."""
    if not Path(path).expanduser().exists() and not is_hub_id(path):
        raise BelleError(f"{path}: {what} not found (not a local folder, not a namespace/name Hub id)")


def resolve_adapter(model: str | os.PathLike, adapter: str | os.PathLike | None = None) -> tuple[str, str | None]:
    """``(base model, adapter)``: a LoRA folder given as the model (``belle train``'s LoRA output)
    stands for its base (see :func:`adapter_base`) plus itself."""
    if adapter is None and is_adapter_folder(model):
        return adapter_base(model), str(model)
    return str(model), None if adapter is None else str(adapter)


def load_tokenizer(tokenizer, trust_remote_code: bool = False):
    """A tokenizer from a model folder or Hub id (a tokenizer object passes through unchanged).

    A loaded tokenizer without a pad token pads with its end-of-sequence token, as training
    batches need. A folder or id that cannot be loaded is a one-line :class:`BelleError` naming it
    (transformers' own message spans several lines; its first says what is missing)."""
    if not isinstance(tokenizer, (str, os.PathLike)):
        return tokenizer
    from transformers import AutoTokenizer

    try:
        loaded = AutoTokenizer.from_pretrained(str(tokenizer), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:  # ValueError: a folder without tokenizer files
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise BelleError(f"cannot load the tokenizer of {str(tokenizer)!r}: {reason}") from None
    if loaded.pad_token is None:
        loaded.pad_token = loaded.eos_token
    return loaded


def load_chat_tokenizer(model: str | os.PathLike, adapter: str | os.PathLike | None = None):
    """The tokenizer of the adapter folder if it saved one (training may add a template), else the
    model's; BELLE's chat template is set when it has none."""
    from transformers import AutoTokenizer

    from belle_hf.templates import BELLE_CHAT_TEMPLATE

    model, adapter = resolve_adapter(model, adapter)
    source = adapter if adapter is not None and (Path(adapter) / "tokenizer_config.json").is_file() else model
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as error:
        raise BelleError(f"cannot load the tokenizer of {source}: {error}") from None
    if not tokenizer.chat_template:
        tokenizer.chat_template = BELLE_CHAT_TEMPLATE
    return tokenizer


def load_model_and_tokenizer(model: str | os.PathLike, adapter: str | os.PathLike | None = None,
                             device: str | None = None, dtype: str = "auto"):
    """``(model, tokenizer)`` ready to generate: the base model, with ``adapter`` (a peft LoRA
    folder) applied when given or when ``model`` is itself a LoRA folder, in eval mode on
    ``device`` (CUDA when available by default)."""
    import torch
    from transformers import AutoModelForCausalLM

    check_model_reference(model)
    base, adapter = resolve_adapter(model, adapter)
    check_model_reference(base, "base model")
    if adapter is not None:
        check_model_reference(adapter, "adapter")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = load_chat_tokenizer(base, adapter)
    # Loading a GPTQ model, or a peft adapter, imports gptqmodel when it is installed, which prints
    # a banner and logs on stdout: keep stdout for the reply (``belle chat --prompt`` feeds scripts).
    with contextlib.redirect_stdout(sys.stderr):
        try:
            loaded = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, device_map=device)
        except OSError as error:
            raise BelleError(f"cannot load the model {base}: {error}") from None
        if adapter is not None:
            from peft import PeftModel

            loaded = PeftModel.from_pretrained(loaded, str(adapter))
    loaded.eval()
    return loaded, tokenizer
