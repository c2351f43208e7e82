"""Seed tasks: the human-written examples that every self-instruct prompt shows the model.

BELLE's ``zh_seed_tasks.json`` (and Alpaca's ``seed_tasks.jsonl``) are JSON Lines of
``{"id", "name", "instruction", "instances": [{"input", "output"}], "is_classification"}``;
flat ``{"instruction", "input", "output"}`` rows (alpaca schema) are accepted too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from belle_hf.data.files import iter_records
from belle_hf.errors import BelleError, DataFormatError

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "self_instruct"
DEFAULT_SEED_TASKS = RESOURCES / "seed_tasks_zh.jsonl"
"""The project's own small Chinese seed file (12 tasks). BELLE's 175 tasks are in its repository."""


@dataclass(frozen=True)
class SeedTask:
    """One example task: an instruction, its input (``""`` for none) and the expected output."""

    instruction: str
    input: str
    output: str
    id: str | None = None


def _text(record: dict, field: str, location: str, required: bool = True) -> str:
    value = record.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise DataFormatError("missing or not a string", location=location, field=field)
    return value


def seed_task_from_record(record: object, location: str) -> SeedTask:
    """Read one seed record in BELLE's (``instances``) or the flat alpaca layout."""
    if not isinstance(record, dict):
        raise DataFormatError("expected a JSON object", location=location)
    instruction = _text(record, "instruction", location)
    if not instruction.strip():
        raise DataFormatError("empty", location=location, field="instruction")
    if "instances" in record:
        instances = record["instances"]
        if not isinstance(instances, list) or not instances or not isinstance(instances[0], dict):
            raise DataFormatError("expected a non-empty list of {input, output}", location=location,
                                  field="instances")
        first = instances[0]  # BELLE's and Alpaca's scripts use the first instance only
        input_text = _text(first, "input", location, required=False)
        output = _text(first, "output", location)
    else:
        input_text = _text(record, "input", location, required=False)
        output = _text(record, "output", location)
    record_id = record.get("id")
    return SeedTask(instruction=instruction, input=input_text, output=output,
                    id=None if record_id is None else str(record_id))


def load_seed_tasks(path: str | os.PathLike) -> list[SeedTask]:
    """All seed tasks of a JSON Lines / JSON array file; a bad record raises naming its line."""
    tasks = [seed_task_from_record(record, location) for location, record in iter_records(path)]
    if not tasks:
        raise BelleError(f"{path}: no seed tasks")
    return tasks
