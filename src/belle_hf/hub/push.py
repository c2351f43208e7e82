"""Push a model, adapter, quantized model, XOR diff or dataset to the Hub with a generated card.

Every push goes through :func:`push_folder`: the card is validated offline, the folder is
scanned for secrets, junk and training state are excluded (``.env``, token files, caches,
``__pycache__``, ``checkpoint-*``, optimizer/scheduler/RNG states, ``training_args.bin``)
unless asked for, and the files and the card go up in one commit. The endpoint is
``HF_ENDPOINT`` (any Hub-compatible server); for servers other than huggingface.co set
``HF_HUB_DISABLE_XET=1``, since hf_xet uploads only work against the Hub's own storage.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from belle_hf.errors import BelleError
from belle_hf.hub.cards import CardConfig, build_model_card, load_eval_summary
from belle_hf.hub.secrets import scan_for_secrets
from belle_hf.quant.report import REPORT_FILE as QUALITY_REPORT_FILE

logger = logging.getLogger(__name__)

SECRET_PATTERNS = [
    ".env", "*/.env", ".env.*", "*/.env.*", "*.env",
    "token", "*/token", ".token", "*/.token", "*.token", "hf_token*", "*/hf_token*", ".hf_token",
    "stored_tokens", "*/stored_tokens", ".netrc", "*/.netrc", ".git-credentials", "*/.git-credentials",
    "*.pem", "*.key", "id_rsa*", "*/id_rsa*", "credentials*", "*/credentials*",
]
"""Never uploaded (fnmatch patterns on the path in the repo; ``*`` also matches ``/``)."""

JUNK_PATTERNS = [
    "__pycache__/*", "*/__pycache__/*", "*.pyc", ".cache/*", "*/.cache/*", ".ipynb_checkpoints/*",
    "*/.ipynb_checkpoints/*", ".DS_Store", "*/.DS_Store", "wandb/*", "runs/*", "*.tmp", ".*.tmp",
]
TRAINING_STATE_PATTERNS = [
    "checkpoint-*", "*/checkpoint-*", "optimizer.pt", "*/optimizer.pt", "optimizer.bin", "*/optimizer.bin",
    "scheduler.pt", "*/scheduler.pt", "rng_state*", "*/rng_state*", "training_args.bin", "*/training_args.bin",
    "trainer_state.json", "*/trainer_state.json", "scaler.pt", "*/scaler.pt", "global_step*", "*/global_step*",
]


@dataclass
class PushResult:
    repo_id: str
    repo_type: str
    commit_url: str
    files: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"pushed {len(self.files)} files to {self.repo_type} {self.repo_id}: {self.commit_url}"


def ignore_patterns(include_training_state: bool = False, extra: list[str] | None = None) -> list[str]:
    """The patterns :func:`push_folder` excludes; training state only when not asked for."""
    patterns = SECRET_PATTERNS + JUNK_PATTERNS + (extra or [])
    return patterns if include_training_state else patterns + TRAINING_STATE_PATTERNS


def files_to_upload(folder: str | os.PathLike, patterns: list[str]) -> list[str]:
    """Relative paths under ``folder`` that survive ``patterns`` (same matching as ``upload_folder``)."""
    from huggingface_hub.utils import filter_repo_objects

    folder = Path(folder)
    paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    paths = [p for p in paths if not p.startswith(".git/") and "/.git/" not in p]
    return list(filter_repo_objects(paths, ignore_patterns=patterns))


def _warn_about_xet() -> None:
    from huggingface_hub import constants

    if "huggingface.co" not in constants.ENDPOINT and not constants.HF_HUB_DISABLE_XET:
        logger.warning("HF_ENDPOINT is %s: set HF_HUB_DISABLE_XET=1, hf_xet uploads only work with the "
                       "Hugging Face Hub's own storage", constants.ENDPOINT)


def push_folder(folder: str | os.PathLike, repo_id: str, card=None, *, repo_type: str = "model",
                private: bool = False, token: str | None = None, include_training_state: bool = False,
                exclude: list[str] | None = None, commit_message: str = "Upload with belle-hf") -> PushResult:
    """Upload ``folder`` (minus secrets, junk and, unless asked, training state) and ``card`` as
    README.md to ``repo_id``, in one commit; the repo is created if needed."""
    from huggingface_hub import CommitOperationAdd, HfApi

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
    api = HfApi(token=token)
    if card is not None:
        card.validate(repo_type=repo_type)  # the Hub's own YAML check (after the offline one)
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    operations = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(folder / rel)) for rel in paths]
    if card is not None:
        operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode("utf-8")))
    info = api.create_commit(repo_id, operations, commit_message=commit_message, repo_type=repo_type)
    uploaded = paths + (["README.md"] if card is not None else [])
    logger.info("pushed %d files to %s", len(uploaded), repo_id)
    return PushResult(repo_id, repo_type, info.commit_url, uploaded)


def _card_config(repo_id: str, kind: str, **options) -> CardConfig:
    summary = options.pop("eval_summary", None)
    if summary is not None and not isinstance(summary, dict):
        summary = load_eval_summary(summary)
    options = {key: value for key, value in options.items() if value is not None}
    return CardConfig(repo_id=repo_id, kind=kind, eval_summary=summary, **options)


def push_model(folder: str | os.PathLike, repo_id: str, *, merged: bool = False, private: bool = False,
               token: str | None = None, include_training_state: bool = False, **card_options) -> PushResult:
    """Push a full fine-tuned (or, with ``merged``, adapter-merged) model folder with its card.

    ``card_options`` are :class:`~belle_hf.hub.cards.CardConfig` fields (``base_model``,
    ``datasets``, ``license``, ``license_name``, ``license_link``, ``eval_summary`` (a dict or
    the path of a summary JSON), ``description``...).
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise BelleError(f"{folder}: not a model folder (config.json is missing)")
    card = build_model_card(_card_config(repo_id, "merge" if merged else "model", **card_options))
    return push_folder(folder, repo_id, card, private=private, token=token,
                       include_training_state=include_training_state)


def push_adapter(folder: str | os.PathLike, repo_id: str, *, private: bool = False, token: str | None = None,
                 include_training_state: bool = False, **card_options) -> PushResult:
    """Push a peft adapter folder; ``base_model`` defaults to the adapter config's
    ``base_model_name_or_path`` when that is a Hub id."""
    folder = Path(folder)
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        raise BelleError(f"{folder}: not a peft adapter folder (adapter_config.json is missing)")
    if card_options.get("base_model") is None:
        base = json.loads(config_path.read_text(encoding="utf-8")).get("base_model_name_or_path")
        if base and not Path(base).exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", base):
            card_options["base_model"] = base
    card = build_model_card(_card_config(repo_id, "adapter", **card_options))
    return push_folder(folder, repo_id, card, private=private, token=token,
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
                   **card_options) -> PushResult:
    """Push a quantized model (GPTQ/AWQ/bitsandbytes folder or GGUF files) with its card."""
    folder = Path(folder)
    quantization = card_options.pop("quantization", None) or detect_quantization(folder)
    if quantization is None:
        raise BelleError(f"{folder}: no quantized weights found (no *.gguf and no quantization_config in "
                         "config.json); pass quantization= to say what it is")
    quality_file = folder / QUALITY_REPORT_FILE  # written by ``belle quantize``
    quality = json.loads(quality_file.read_text(encoding="utf-8")) if quality_file.is_file() else None
    card = build_model_card(_card_config(repo_id, "quantized", quantization=quantization, **card_options),
                            quality=quality)
    return push_folder(folder, repo_id, card, private=private, token=token)


def push_xor(diff_dir: str | os.PathLike, repo_id: str, *, private: bool = False, token: str | None = None,
             gated: bool = True, **card_options) -> PushResult:
    """Push an XOR diff folder (``belle xor encode``) with decode instructions; the repo is gated
    (manual approval) unless ``gated=False``."""
    from huggingface_hub import HfApi

    from belle_hf.hub.xor import read_manifest

    manifest = read_manifest(diff_dir)
    files = [entry["path"] for entry in manifest["files"]]
    if card_options.get("license") is None:  # the base's license governs the decoded weights
        card_options["license"] = "other"
    if card_options["license"] == "other":
        card_options["license_name"] = card_options.get("license_name") or "llama-license"
        card_options["license_link"] = (card_options.get("license_link")
                                        or "https://github.com/facebookresearch/llama/blob/main/LICENSE")
    card = build_model_card(_card_config(repo_id, "xor", **card_options), xor_files=files)
    result = push_folder(diff_dir, repo_id, card, private=private, token=token)
    if gated:
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
    return publish.publish_to_hub(source, repo_id, config_name=config_name, split=split, private=private,
                                  schema=schema, license=license, token=token)
