"""Push a model, adapter, quantized model, XOR diff or dataset to the Hub with a generated card.

Every push goes through :func:`push_folder`: the card is validated offline, the folder is
scanned for secrets, junk and training state are excluded (``.env``, token files, caches,
``__pycache__``, ``checkpoint-*``, optimizer/scheduler/RNG states, ``training_args.bin``)
unless asked for, and the files and the card go up in one commit. The endpoint is
``HF_ENDPOINT`` (any Hub-compatible server); for servers other than huggingface.co set
``HF_HUB_DISABLE_XET=1``, since hf_xet uploads only work against the Hub's own storage.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from belle_hf.errors import BelleError
from belle_hf.hub.cards import CardOptions, build_model_card, card_for_folder
from belle_hf.hub.ignore import files_to_upload, ignore_patterns
from belle_hf.hub.secrets import scan_for_secrets

logger = logging.getLogger(__name__)


@dataclass
class PushResult:
    repo_id: str
    repo_type: str
    commit_url: str
    files: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"pushed {len(self.files)} files to {self.repo_type} {self.repo_id}: {self.commit_url}"




def _warn_about_xet() -> None:
    from huggingface_hub import constants

    if "huggingface.co" not in constants.ENDPOINT and not constants.HF_HUB_DISABLE_XET:
        logger.warning("HF_ENDPOINT is %s: set HF_HUB_DISABLE_XET=1, hf_xet uploads only work with the "
                       "Hugging Face Hub's own storage", constants.ENDPOINT)


# What to do about each status the Hub answers a push with (printed as one line, no traceback).
_HTTP_ADVICE = {
    401: "Hub refused the token (401 Unauthorized): run `hf auth login` or set HF_TOKEN to a valid token",
    403: "Hub refused access (403 Forbidden): the token cannot write to this namespace; use a token with "
         "write access to it",
    404: "Hub answered 404 Not Found: check the repository id and HF_ENDPOINT",
    413: "Hub refused a file as too large (413)",
    429: "Hub is rate-limiting (429 Too Many Requests): wait a minute and push again",
}


@contextlib.contextmanager
def hub_errors(repo_id: str) -> Iterator[None]:
    """Turn the Hub's HTTP errors into one-line :class:`BelleError` naming the status and what to do."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError

    try:
        yield
    except HfHubHTTPError as error:
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", None)
        server = getattr(error, "server_message", None) or ""
        advice = _HTTP_ADVICE.get(status) or f"Hub request failed ({status or 'no status'})"
        detail = f" [{server.strip().splitlines()[0]}]" if server.strip() else ""
        raise BelleError(f"{repo_id} at {constants.ENDPOINT}: {advice}{detail}") from None


# Files whose values may name local paths (a recipe's output_dir, quantize's sources): uploaded
# with absolute paths reduced to their names, so no machine path reaches the Hub.
PORTABLE_FILES = ("recipe.yaml", "metrics.json", "quality.json", "summary.json", "belle_lineage.json",
                  "adapter_config.json")


def _portable_bytes(path: Path, overrides: dict | None = None) -> bytes | None:
    """The portable version of a provenance file, or ``None`` when it is uploaded as is."""
    import yaml

    from belle_hf.hub.lineage import portable

    if path.name not in PORTABLE_FILES:
        return None
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        values = json.loads(text)
        if overrides:
            values.update(overrides)
        cleaned = portable(values)
        return None if cleaned == json.loads(text) else (json.dumps(cleaned, indent=2, ensure_ascii=False) + "\n").encode()
    values = yaml.safe_load(text)
    cleaned = portable(values)
    return None if cleaned == values else yaml.safe_dump(cleaned, allow_unicode=True, sort_keys=False).encode()


def _warn_about_local_paths(folder: Path, contents: dict[str, bytes | str]) -> None:
    """Warn (naming the file) when a small text file still names this machine's folders."""
    markers = {str(folder.resolve().parent).encode(), str(Path.home()).encode()} - {b"/"}
    for rel, content in contents.items():
        data = content if isinstance(content, bytes) else None
        if data is None:
            path = Path(content)
            if path.suffix not in (".json", ".yaml", ".yml", ".md", ".txt", ".jinja") or path.stat().st_size > 1 << 22:
                continue
            data = path.read_bytes()
        if any(marker in data for marker in markers):
            logger.warning("%s names a local path of this machine; it is uploaded as is", rel)


def push_folder(folder: str | os.PathLike, repo_id: str, card=None, *, repo_type: str = "model",
                private: bool = False, token: str | None = None, include_training_state: bool = False,
                exclude: list[str] | None = None, commit_message: str = "Upload with belle-hf",
                replace: dict[str, bytes] | None = None) -> PushResult:
    """Upload ``folder`` (minus secrets, junk and, unless asked, training state) and ``card`` as
    README.md to ``repo_id``, in one commit; the repo is created if needed.

    Provenance files (:data:`PORTABLE_FILES`) go up without absolute local paths; ``replace``
    gives other contents for some files (by path in the repo). A folder with a lineage record
    remembers where it was published (:func:`belle_hf.hub.lineage.record_publication`).
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    from belle_hf.hub.lineage import record_publication

    folder = Path(folder)
    if not folder.is_dir():
        raise BelleError(f"folder not found: {folder}")
    patterns = ignore_patterns(include_training_state, exclude)
    if card is not None:
        patterns = patterns + ["README.md"]  # replaced by the generated card
    paths = files_to_upload(folder, patterns)
    if not paths:
        raise BelleError(f"{folder}: nothing to upload")
    scan_for_secrets(folder, paths)
    _warn_about_xet()
    contents: dict[str, bytes | str] = {}
    for rel in paths:
        replaced = (replace or {}).get(rel)
        contents[rel] = replaced if replaced is not None else (_portable_bytes(folder / rel) or str(folder / rel))
    _warn_about_local_paths(folder, contents)
    api = HfApi(token=token)
    with hub_errors(repo_id):
        if card is not None:
            card.validate(repo_type=repo_type)  # the Hub's own YAML check (after the offline one)
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        operations = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=content) for rel, content in contents.items()]
        if card is not None:
            operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode("utf-8")))
        info = api.create_commit(repo_id, operations, commit_message=commit_message, repo_type=repo_type)
    uploaded = paths + (["README.md"] if card is not None else [])
    logger.info("pushed %d files to %s", len(uploaded), repo_id)
    record_publication(folder, repo_id)
    return PushResult(repo_id, repo_type, info.commit_url, uploaded)


def _options(card_options: dict) -> CardOptions:
    """``CardOptions`` from keyword arguments (or one ``options=CardOptions(...)``)."""
    options = card_options.pop("options", None) or CardOptions()
    unknown = set(card_options) - set(CardOptions.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown card option(s): {', '.join(sorted(unknown))}")
    for key, value in card_options.items():
        if value is not None:
            setattr(options, key, value)
    return options


def push_model(folder: str | os.PathLike, repo_id: str, *, merged: bool = False, private: bool = False,
               token: str | None = None, include_training_state: bool = False, **card_options) -> PushResult:
    """Push a full fine-tuned (or, with ``merged``, adapter-merged) model folder with its card.

    ``card_options`` are :class:`~belle_hf.hub.cards.CardOptions` fields (``base_model``,
    ``datasets``, ``license``, ``license_name``, ``license_link``, ``eval_summary`` (a dict or
    the path of a summary JSON), ``description``), or ``options=CardOptions(...)``; what they do not
    say comes from the folder (``recipe.yaml``, ``metrics.json``, ``summary.json``, lineage).
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise BelleError(f"{folder}: not a model folder (config.json is missing)")
    kind = "merge" if merged or (_stage(folder) == "merge") else "model"
    card = build_model_card(card_for_folder(folder, repo_id, kind, _options(card_options)))
    return push_folder(folder, repo_id, card, private=private, token=token,
                       include_training_state=include_training_state)


def _stage(folder: Path) -> str | None:
    from belle_hf.hub.lineage import read_lineage

    return (read_lineage(folder) or {}).get("stage")


def push_adapter(folder: str | os.PathLike, repo_id: str, *, private: bool = False, token: str | None = None,
                 include_training_state: bool = False, **card_options) -> PushResult:
    """Push a peft adapter folder, never its base model.

    ``base_model`` defaults to the adapter config's ``base_model_name_or_path`` when that is a
    Hub id; the uploaded config then names that id. A base that is not on the Hub (the
    quickstart's ``base-model/``) stays behind, with a warning: users need their own copy.
    """
    from belle_hf.models import adapter_base, is_adapter_folder, is_hub_id, recorded_base

    folder = Path(folder)
    if not is_adapter_folder(folder):
        raise BelleError(f"{folder}: not a peft adapter folder (adapter_config.json is missing)")
    options = _options(card_options)
    recorded = recorded_base(folder)
    if options.base_model is None and recorded and is_hub_id(recorded):
        options.base_model = recorded
    config = card_for_folder(folder, repo_id, "adapter", options)
    exclude = []
    if recorded and not is_hub_id(recorded):
        base_path = Path(adapter_base(folder)).resolve()
        if base_path.is_relative_to(folder.resolve()):
            exclude = [f"{base_path.relative_to(folder.resolve()).as_posix()}/*"]
    if config.base_model is None:
        logger.warning("the base model of %s (%s) is not on the Hub: it is not uploaded, and users of %s need "
                       "their own copy; push it first and pass its id as base_model to link it",
                       folder, recorded, repo_id)
    replace = {}
    if config.base_model is not None and config.base_model != recorded:
        adapter_config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
        adapter_config["base_model_name_or_path"] = config.base_model
        replace["adapter_config.json"] = (json.dumps(adapter_config, indent=2, sort_keys=True) + "\n").encode()
    card = build_model_card(config)
    return push_folder(folder, repo_id, card, private=private, token=token, exclude=exclude, replace=replace,
                       include_training_state=include_training_state)
def detect_quantization(folder: Path) -> str | None:
    """``GPTQ 4-bit``, ``AWQ 4-bit``, ``bitsandbytes 4-bit``, ``GGUF <type>`` ... from the folder."""
    ggufs = sorted(folder.glob("*.gguf"))
    if ggufs:
        match = re.search(r"[.-]((?:i?q\d[\w]*)|f16|bf16|f32)\.gguf$", ggufs[0].name, re.IGNORECASE)
        return f"GGUF {match.group(1).lower()}" if match else "GGUF"
    config_path = folder / "config.json"
    if config_path.is_file():
        quant = json.loads(config_path.read_text(encoding="utf-8")).get("quantization_config") or {}
        method = quant.get("quant_method")
        bits = quant.get("bits") or (4 if quant.get("load_in_4bit") else 8 if quant.get("load_in_8bit") else None)
        if method:
            name = {"gptq": "GPTQ", "awq": "AWQ", "bitsandbytes": "bitsandbytes"}.get(method, method)
            return f"{name} {bits}-bit" if bits else name
    return None


def push_quantized(folder: str | os.PathLike, repo_id: str, *, private: bool = False, token: str | None = None,
                   quantization: str | None = None, **card_options) -> PushResult:
    """Push a quantized model (GPTQ/AWQ/bitsandbytes folder, or a folder of GGUF files) with its card;
    ``quality.json`` (``belle quantize``) and the lineage record fill it in."""
    folder = Path(folder)
    quantization = quantization or detect_quantization(folder)
    if quantization is None:
        raise BelleError(f"{folder}: no quantized weights found (no *.gguf and no quantization_config in "
                         "config.json); pass quantization= to say what it is")
    gguf_files = sorted(p.name for p in folder.glob("*.gguf"))
    kind = "gguf" if gguf_files else "quantized"
    config = card_for_folder(folder, repo_id, kind, _options(card_options), quantization=quantization)
    card = build_model_card(config, gguf_files=gguf_files)
    return push_folder(folder, repo_id, card, private=private, token=token)


def push_xor(diff_dir: str | os.PathLike, repo_id: str, *, private: bool = False, token: str | None = None,
             gated: bool = True, **card_options) -> PushResult:
    """Push an XOR diff folder (``belle xor encode``) with decode instructions; the repo is gated
    (manual approval) unless ``gated=False``."""
    from huggingface_hub import HfApi

    from belle_hf.hub.xor import read_manifest

    manifest = read_manifest(diff_dir)
    files = [entry["path"] for entry in manifest["files"]]
    options = _options(card_options)
    if options.license is None:  # the base's license governs the decoded weights
        options.license = "other"
    if options.license == "other":
        options.license_name = options.license_name or "llama-license"
        options.license_link = options.license_link or "https://github.com/facebookresearch/llama/blob/main/LICENSE"
    card = build_model_card(card_for_folder(diff_dir, repo_id, "xor", options), xor_files=files)
    result = push_folder(diff_dir, repo_id, card, private=private, token=token)
    if gated:
        with hub_errors(repo_id):
            HfApi(token=token).update_repo_settings(repo_id, gated="manual")
    return result


def push_dataset(source: str | os.PathLike, repo_id: str, *, private: bool = False, token: str | None = None,
                 license: str | None = None, schema: str | None = None, config_name: str = "messages",
                 split: str = "train"):
    """Normalize ``source`` (any BELLE schema, a corpus name or a file) and push it as a Hub dataset
    with its card (:func:`belle_hf.data.publish.publish_to_hub`; the card is validated offline first)."""
    from belle_hf.data import publish
    from belle_hf.hub.cards import validate_card

    # The card publish_to_hub will push, checked offline first (its dataset_info is filled in
    # from the pushed shards later, which does not change what is checked here).
    validate_card(publish.dataset_card(publish.corpus_for(source, license=license), repo_id=repo_id,
                                       config_name=config_name, split=split), require_license_details=False)
    with hub_errors(repo_id):
        return publish.publish_to_hub(source, repo_id, config_name=config_name, split=split, private=private,
                                      schema=schema, license=license, token=token)
