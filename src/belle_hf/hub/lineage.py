"""``belle_lineage.json``: where a model folder came from, written by every stage that makes one.

One record per folder: the stage that wrote it (``train``, ``merge``, ``quantize``, ``xor-encode``,
``gguf-export``), its settings, the SHA-256 of every file it wrote, and its parent:
the Hub id, or the name, relative path and content hash of a local folder, with the parent's own
record nested inside, so the chain back to the base model and the data travels with every
artifact. Eval results (``belle eval generate`` / ``belle eval judge`` writing into a model folder)
are attached as ``evaluations``; a child stage carries its parent's evaluations forward, marked as
measured on that parent.

Hand-written because nothing in huggingface_hub or peft records provenance across stages: the Hub
only links ``base_model`` one step back, and that is what :mod:`belle_hf.hub.cards` derives from here.
No absolute local path is stored: paths are kept relative to the folder or reduced to their name.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from belle_hf.errors import BelleError

LINEAGE_FILE = "belle_lineage.json"
EVAL_SUMMARY_FILE = "summary.json"
"""An eval summary (``belle eval judge --summary``) saved in a model folder is that model's score."""
LINEAGE_FORMAT = 1
RELATIONS = {"train": None, "merge": "merge", "quantize": "quantized", "gguf-export": "quantized",
             "xor-encode": "finetune"}
"""The Hub's ``base_model_relation`` of each stage's output to its parent (train depends on the method)."""

# Not part of a folder's content hash: the record itself, cards and run-time state.
_UNHASHED = {LINEAGE_FILE, "README.md", EVAL_SUMMARY_FILE}


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def output_hashes(folder: str | os.PathLike) -> dict[str, str]:
    """SHA-256 of every file a push would upload from ``folder`` (records and cards aside)."""
    from belle_hf.hub.ignore import files_to_upload, ignore_patterns

    folder = Path(folder)
    if folder.is_file():
        return {folder.name: file_sha256(folder)}
    return {rel: file_sha256(folder / rel) for rel in files_to_upload(folder, ignore_patterns())
            if rel not in _UNHASHED}


def content_hash(hashes: dict[str, str]) -> str:
    """One SHA-256 naming a folder's content: of its sorted ``path  sha256`` lines."""
    lines = "".join(f"{path}  {sha}\n" for path, sha in sorted(hashes.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def read_lineage(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The record in ``folder`` (or beside the file ``folder``), or ``None`` when there is none."""
    path = Path(folder)
    path = (path if path.is_dir() else path.parent) / LINEAGE_FILE
    if not path.is_file():
        return None
    from belle_hf.io import read_json_file

    record = read_json_file(path)
    if not isinstance(record, dict) or "stage" not in record:
        raise BelleError(f"{path}: not a belle lineage record (no 'stage')")
    return record


def portable(value: Any) -> Any:
    """``value`` with every absolute local path reduced to its last component (recursively)."""
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(item) for item in value]
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and "\n" not in value and "://" not in value and len(value) > 1 \
            and (os.path.isabs(value) or value.startswith("~")):
        return Path(value).name
    return value


def parent_reference(parent: str | os.PathLike | None, child: str | os.PathLike) -> dict[str, Any] | None:
    """How ``child``'s record names ``parent``: a Hub id as is; a local folder or file by name,
    path relative to ``child``, content hash and its own record."""
    from belle_hf.models import is_hub_id

    if parent is None:
        return None
    text = os.fspath(parent)
    if is_hub_id(text):
        return {"id": text}
    path = Path(text).expanduser()
    if not path.exists():
        return {"name": path.name}
    child_dir = Path(child) if Path(child).is_dir() or not Path(child).suffix else Path(child).parent
    record = read_lineage(path) if path.is_dir() else None
    # A folder with a record is named by the hashes it recorded (no second read of its weights).
    hashes = record["outputs"] if record is not None and record.get("outputs") else output_hashes(path)
    reference: dict[str, Any] = {
        "name": path.resolve().name,
        "path": Path(os.path.relpath(path.resolve(), child_dir.resolve())).as_posix(),
        "sha256": content_hash(hashes),
    }
    if record is not None:
        reference["lineage"] = record
        if record.get("published_as"):
            reference["id"] = record["published_as"]
    return reference


def _parent_evaluations(parent: dict[str, Any] | None, parent_path: Path | None) -> list[dict[str, Any]]:
    """The evaluations of the parent, to carry forward, each marked with where it was measured."""
    if parent is None:
        return []
    found = []
    for evaluation in (parent.get("lineage") or {}).get("evaluations", []):
        found.append(evaluation if evaluation.get("measured_on") else
                     {**evaluation, "measured_on": parent.get("id") or parent.get("name")})
    if parent_path is not None and (parent_path / EVAL_SUMMARY_FILE).is_file():
        summary = json.loads((parent_path / EVAL_SUMMARY_FILE).read_text(encoding="utf-8"))
        sha = file_sha256(parent_path / EVAL_SUMMARY_FILE)
        if not any(e.get("summary_sha256") == sha for e in found):
            found.append(_evaluation(summary, sha, measured_on=parent.get("id") or parent.get("name")))
    return found


def _evaluation(summary: dict[str, Any], sha: str, measured_on: str | None = None) -> dict[str, Any]:
    keep = ("overall", "score_wo_others", "per_class", "n", "n_scored", "answers_sha256")
    judge = summary.get("judge") or {}
    evaluation = {"stage": "eval judge", "summary_sha256": sha, "judge_model": judge.get("model"),
                  **{key: summary[key] for key in keep if key in summary}}
    if measured_on:
        evaluation["measured_on"] = measured_on
    return evaluation


def write_lineage(folder: str | os.PathLike, *, stage: str, parent: str | os.PathLike | None = None,
                  settings: dict[str, Any] | None = None, relation: str | None = None,
                  data: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write ``folder/belle_lineage.json`` for the output of ``stage`` and return the record.

    ``parent`` is the model this output derives from (Hub id, folder or file); ``settings`` the
    stage's settings (absolute paths are reduced to names); ``relation`` overrides the Hub
    relation of the stage (``adapter`` / ``finetune`` for train); ``data`` the training sources
    (``{"source", "hub_id", "sha256", ...}``). The parent's evaluations are carried forward.
    For a single-file output (GGUF), the record goes beside it and names the file.
    """
    from belle_hf.io import atomic_write_text

    target = Path(folder)
    record_dir = target if target.is_dir() else target.parent
    if parent is not None and not target.is_dir() and Path(parent).is_dir() \
            and Path(parent).resolve() == record_dir.resolve():
        # A file exported into its own parent folder (a GGUF beside the weights): that folder's
        # record stays the parent's.
        return read_lineage(record_dir) or {}
    reference = parent_reference(parent, target)
    parent_path = None
    if reference is not None and "path" in reference:
        parent_path = (record_dir / reference["path"]).resolve()
        parent_path = parent_path if parent_path.is_dir() else None
    from belle_hf import __version__

    record: dict[str, Any] = {
        "belle_lineage": LINEAGE_FORMAT,
        "stage": stage,
        "relation": relation or RELATIONS.get(stage),
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "belle_hf": __version__,
        "parent": reference,
        "settings": portable(settings or {}),
        "outputs": output_hashes(target),
    }
    previous = read_lineage(record_dir) if not target.is_dir() else None
    if previous and previous.get("stage") == stage and (previous.get("parent") or {}).get("sha256") == \
            (reference or {}).get("sha256"):
        record["outputs"] = {**previous.get("outputs", {}), **record["outputs"]}  # several files of one export
    if data is not None:
        record["data"] = portable(data)
    evaluations = _parent_evaluations(reference, parent_path)
    if evaluations:
        record["evaluations"] = evaluations
    atomic_write_text(record_dir / LINEAGE_FILE, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return record


def _update(folder: Path, change) -> None:
    from belle_hf.io import atomic_write_text

    record = read_lineage(folder) or {"belle_lineage": LINEAGE_FORMAT, "stage": "external", "parent": None,
                                      "settings": {}, "outputs": output_hashes(folder)}
    change(record)
    atomic_write_text(folder / LINEAGE_FILE, json.dumps(record, indent=2, ensure_ascii=False) + "\n")


def is_model_folder(folder: str | os.PathLike) -> bool:
    folder = Path(folder)
    return (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file()


def attach_evaluation(folder: str | os.PathLike, *, summary: str | os.PathLike | None = None,
                      answers: str | os.PathLike | None = None, settings: dict[str, Any] | None = None) -> bool:
    """Attach eval results to the model folder they measure (no-op elsewhere; returns whether it did).

    ``belle eval generate`` attaches the answers it wrote (``answers``: their SHA-256 and the
    generation settings); ``belle eval judge`` attaches a summary written into the model folder.
    """
    folder = Path(folder)
    if not folder.is_dir() or not is_model_folder(folder):
        return False
    if summary is not None:
        summary = Path(summary)
        values = json.loads(summary.read_text(encoding="utf-8"))
        entry = _evaluation(values, file_sha256(summary))
        entry["summary"] = summary.name
    else:
        entry = {"stage": "eval generate", "answers": Path(answers).name if answers else None,
                 "answers_sha256": file_sha256(answers) if answers and Path(answers).is_file() else None,
                 "settings": portable(settings or {})}

    def add(record: dict[str, Any]) -> None:
        kept = [e for e in record.get("evaluations", []) if e.get("measured_on")
                or (e.get("summary") != entry.get("summary") if summary is not None
                    else e.get("answers") != entry.get("answers") or e.get("stage") != entry["stage"])]
        record["evaluations"] = kept + [entry]

    _update(folder, add)
    return True


def record_publication(folder: str | os.PathLike, repo_id: str) -> None:
    """Remember in ``folder``'s record that it was pushed to ``repo_id`` (children then name that id)."""
    folder = Path(folder)
    if folder.is_dir() and (folder / LINEAGE_FILE).is_file():
        _update(folder, lambda record: record.__setitem__("published_as", repo_id))


def chain(record: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The records from ``record`` back to the first one, child first."""
    found = []
    while record:
        found.append(record)
        record = (record.get("parent") or {}).get("lineage")
    return found


def root_parent(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The reference of the first parent in the chain (the base model the chain started from)."""
    records = chain(record)
    return (records[-1].get("parent") if records else None)
