"""What a push leaves behind: secrets, junk and training state, as ``fnmatch`` patterns.

Its own module so that everything that needs to know "which files of a folder are published"
(pushing, the XOR diff, lineage hashes) imports it without importing the push machinery.
"""

from __future__ import annotations

import os
from pathlib import Path

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


def ignore_patterns(include_training_state: bool = False, extra: list[str] | None = None) -> list[str]:
    """The patterns a push excludes; training state only when not asked for."""
    patterns = SECRET_PATTERNS + JUNK_PATTERNS + (extra or [])
    return patterns if include_training_state else patterns + TRAINING_STATE_PATTERNS


def files_to_upload(folder: str | os.PathLike, patterns: list[str]) -> list[str]:
    """Relative paths under ``folder`` that survive ``patterns`` (same matching as ``upload_folder``)."""
    from huggingface_hub.utils import filter_repo_objects

    folder = Path(folder)
    paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    paths = [p for p in paths if not p.startswith(".git/") and "/.git/" not in p]
    return list(filter_repo_objects(paths, ignore_patterns=patterns))
