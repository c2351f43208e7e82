"""What a training output folder already holds, and what a (re)run may do with it.

A run records its recipe (``recipe.yaml``) when it starts and its ``metrics.json`` when it ends, so a
rerun can tell the cases apart:

* the folder holds this recipe's finished run: nothing to train;
* it holds this recipe's interrupted run: resume from the newest *complete* checkpoint;
* it holds another recipe's run: refuse, naming the fields that differ (resuming would mix two runs
  and report settings that were never trained), unless the caller overwrites it.

Changes that are safe to resume (:data:`RESUMABLE_FIELDS`) only touch how a run is logged, saved,
evaluated or checkpointed in memory, not what it computes; :data:`LENGTH_FIELDS` may grow (the run
goes on from its last checkpoint, the learning-rate schedule stretched to the new length from there)
but never shrink. Every other field changes the run itself.

Transformers' ``get_last_checkpoint`` takes the newest ``checkpoint-N`` folder even when a kill
left it half written, and the resume then fails, on every rerun. :func:`newest_complete_checkpoint`
checks that a checkpoint's files are there and readable, and sets incomplete ones aside under a name
that neither transformers' resume nor its checkpoint rotation matches.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from belle_hf.errors import BelleError

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
RECIPE_FILE = "recipe.yaml"
CARD_FILE = "README.md"
BASE_MODEL_DIR = "base-model"
STAGING_DIR = ".final.tmp"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
INCOMPLETE_PREFIX = "incomplete-"
"""An incomplete ``checkpoint-N`` is renamed ``incomplete-checkpoint-N-<time>``: transformers only
resumes from and rotates names that start with ``checkpoint-``."""

RESUMABLE_FIELDS = frozenset({
    "description",
    "output_dir",  # the folder itself, which may have been moved or copied since
    *(f"training.{name}" for name in (
        "logging_steps", "logging_strategy", "logging_first_step", "logging_dir", "log_level", "disable_tqdm",
        "save_steps", "save_strategy", "save_total_limit", "eval_steps", "eval_strategy", "eval_delay",
        "per_device_eval_batch_size", "eval_accumulation_steps", "report_to", "run_name",
        "dataloader_num_workers", "dataloader_pin_memory", "activation_checkpointing",
        "gradient_checkpointing")),
})
"""Recipe fields a rerun may change and still resume: they change reporting, saving and memory use,
not the weights a step computes."""
LENGTH_FIELDS = {"training.max_steps": -1, "training.num_train_epochs": 3.0}
"""Fields (with transformers' defaults) that may grow on a rerun, which then trains the extra steps."""

# Files ``belle train`` writes at the top of its output folder (besides checkpoints): what
# ``overwrite`` removes. Anything else in the folder is the user's and stays.
RUN_FILE_PATTERNS = (RECIPE_FILE, METRICS_FILE, CARD_FILE, "*.safetensors", "*.safetensors.index.json",
                     "adapter_config.json", "config.json", "generation_config.json", "tokenizer*",
                     "special_tokens_map.json", "added_tokens.json", "chat_template.jinja", "vocab.*",
                     "merges.txt", "training_args.bin", "checkpoint-*", INCOMPLETE_PREFIX + "checkpoint-*",
                     STAGING_DIR)


class RecipeConflict(BelleError):
    """The output folder holds a run of another recipe; ``differences`` lists ``field: old -> new``."""

    def __init__(self, output_dir: Path, differences: list[str]):
        self.output_dir = output_dir
        self.differences = differences
        super().__init__(f"{output_dir} holds a run of another recipe ({'; '.join(differences)}); resuming it would "
                         "mix the two runs. Choose another output_dir, or overwrite the old run")


@dataclass
class RunPlan:
    """What a (re)run of a recipe does with its output folder."""

    finished_metrics: dict[str, Any] | None = None
    """The metrics of this recipe's finished run already in the folder: nothing to train."""
    resume_from: str | None = None
    """The newest complete checkpoint to go on from."""
    set_aside: list[Path] = field(default_factory=list)
    """Incomplete checkpoints renamed out of the way."""
    overwrite: bool = False
    """The folder's previous run is removed before training."""


# ---------------------------------------------------------------------------------- recipes
def flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    """``{"lora": {"r": 8}, "data": [{"path": p}]}`` -> ``{"lora.r": 8, "data[0].path": p}``."""
    if isinstance(values, dict):
        flat: dict[str, Any] = {}
        for key, value in values.items():
            flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(values, list) and values and all(isinstance(item, dict) for item in values):
        flat = {}
        for index, value in enumerate(values):
            flat.update(flatten(value, f"{prefix}[{index}]"))
        return flat
    return {prefix: values}


def recipe_differences(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Fields whose values differ between two recipes (as plain YAML values), ``field -> (old, new)``."""
    missing = object()
    old_flat, new_flat = flatten(old), flatten(new)
    differences = {}
    for key in sorted(set(old_flat) | set(new_flat)):
        before, after = old_flat.get(key, missing), new_flat.get(key, missing)
        if before != after:
            differences[key] = (None if before is missing else before, None if after is missing else after)
    return differences


def unsafe_differences(differences: dict[str, tuple[Any, Any]]) -> list[str]:
    """The differences that rule out resuming, as ``field: old -> new``."""
    unsafe = []
    for key, (before, after) in differences.items():
        if key in RESUMABLE_FIELDS:
            continue
        if key in LENGTH_FIELDS:
            default = LENGTH_FIELDS[key]
            before = default if before is None else before
            after = default if after is None else after
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (before, after))
            if numbers and before >= 0 and after >= before:
                continue
        unsafe.append(f"{key}: {before!r} -> {after!r}")
    return unsafe


def saved_recipe(output_dir: Path) -> dict[str, Any] | None:
    """The recipe recorded in ``output_dir`` (plain YAML values), if any."""
    from belle_hf.train.recipe import read_yaml

    path = output_dir / RECIPE_FILE
    if not path.is_file():
        return None
    try:
        values = read_yaml(path.read_text(encoding="utf-8"))
    except Exception as error:  # noqa: BLE001 - a damaged record is reported, whatever the parser raised
        raise BelleError(f"{path}: cannot read the recorded recipe ({error}); remove it or overwrite the run") from None
    return values if isinstance(values, dict) else None


# ------------------------------------------------------------------------------ checkpoints
def checkpoint_problem(path: Path) -> str | None:
    """Why checkpoint folder ``path`` cannot be resumed from, or ``None`` when its files are all there
    and readable: ``trainer_state.json`` (written last) parses, the weights' safetensors headers and
    sizes agree, and the optimizer, scheduler and RNG files (``torch.save`` zip archives) have their
    central directory, which a write cut short lacks."""
    state = path / "trainer_state.json"
    if not state.is_file():
        return "trainer_state.json is missing"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return "trainer_state.json is cut short"
    weights = sorted(path.glob("*.safetensors"))
    if not weights and not list(path.glob("pytorch_model*.bin")) and not (path / "latest").is_file():
        return "it holds no model or adapter weights"
    for index in path.glob("*.safetensors.index.json"):
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (ValueError, KeyError, UnicodeDecodeError):
            return f"{index.name} is cut short"
        missing = sorted(name for name in shards if not (path / name).is_file())
        if missing:
            return f"weight shard {missing[0]} is missing"
    for weight in weights:
        problem = _safetensors_problem(weight)
        if problem:
            return problem
    archives: list[Path] = []
    if (path / "latest").is_file():  # DeepSpeed: its own optimizer/model states under the tag `latest` names
        tag = path / (path / "latest").read_text(encoding="utf-8").strip()
        if not tag.is_dir() or not list(tag.glob("*.pt")):
            return f"DeepSpeed state folder {tag.name} is missing or empty"
        archives += sorted(tag.glob("*.pt"))
    else:
        for name in ("optimizer.pt", "scheduler.pt"):
            if not (path / name).is_file():
                return f"{name} is missing"
            archives.append(path / name)
    rng = sorted(path.glob("rng_state*.pth"))
    if not rng:
        return "the RNG state (rng_state.pth) is missing"
    for archive in archives + rng:
        if not zipfile.is_zipfile(archive):
            return f"{archive.relative_to(path)} is cut short"
    return None


def _safetensors_problem(path: Path) -> str | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except Exception:  # noqa: BLE001 - safetensors raises its own error types for a header cut short or a size mismatch
        return f"{path.name} is cut short"
    return None


def checkpoints(output_dir: Path) -> list[Path]:
    """``checkpoint-N`` folders of ``output_dir``, newest (highest N) first."""
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if CHECKPOINT.match(p.name) and p.is_dir()]
    return sorted(found, key=lambda p: int(CHECKPOINT.match(p.name).group(1)), reverse=True)


def newest_complete_checkpoint(output_dir: Path, set_aside: bool = True) -> tuple[str | None, list[Path]]:
    """(the newest complete checkpoint, the incomplete newer ones renamed out of the way).

    Only the main process renames (``set_aside``); other processes of a multi-process run come to the
    same choice by checking the same files."""
    moved: list[Path] = []
    for path in checkpoints(output_dir):
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path), moved
        if set_aside:
            target = path.with_name(f"{INCOMPLETE_PREFIX}{path.name}-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(path, target)
            logger.warning("%s is incomplete (%s), probably cut short by a kill while saving; set aside as %s",
                           path, problem, target.name)
            moved.append(target)
    return None, moved


# ---------------------------------------------------------------------------------- the plan
def plan_run(output_dir: Path, recipe_values: dict[str, Any], *, overwrite: bool = False,
             main_process: bool = True) -> RunPlan:
    """Decide what a run of the recipe (``recipe_values``: its public fields as plain YAML values) does
    with ``output_dir``; raises :class:`RecipeConflict` for a folder holding another recipe's run."""
    output_dir = Path(output_dir)
    saved = saved_recipe(output_dir)
    if overwrite:
        return RunPlan(overwrite=saved is not None or bool(checkpoints(output_dir)))
    metrics_path = output_dir / METRICS_FILE
    if saved is not None and not metrics_path.is_file() and not any(output_dir.glob("checkpoint-*")):
        saved = None  # that run stopped before it saved anything (bad data, say): nothing of it to keep apart
    if saved is not None:
        differences = recipe_differences(saved, recipe_values)
        unsafe = unsafe_differences(differences)
        if unsafe:
            raise RecipeConflict(output_dir, unsafe)
        longer = any(key in LENGTH_FIELDS for key in differences)
        if metrics_path.is_file() and not longer:
            try:
                metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
            except ValueError:
                metrics = None  # cut short: the run did not finish writing; resume it
            if isinstance(metrics, dict):
                return RunPlan(finished_metrics=metrics)
    resume, moved = newest_complete_checkpoint(output_dir, set_aside=main_process)
    return RunPlan(resume_from=resume, set_aside=moved)


def clear_run(output_dir: Path, keep_base_model: bool) -> None:
    """Remove what ``belle train`` wrote in ``output_dir`` (the files of :data:`RUN_FILE_PATTERNS`,
    and ``base-model`` unless kept); the user's other files stay."""
    for pattern in RUN_FILE_PATTERNS + (() if keep_base_model else (BASE_MODEL_DIR,)):
        for path in output_dir.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def start_run(output_dir: Path, recipe_yaml: str, plan: RunPlan, keep_base_model: bool) -> None:
    """Before training (main process): clear an overwritten run, record the recipe and drop the metrics
    of any earlier run, so that a kill from here on leaves a folder that resumes rather than one
    that claims to be finished."""
    from belle_hf.io import atomic_write_text

    if plan.overwrite:
        clear_run(output_dir, keep_base_model)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / METRICS_FILE).unlink(missing_ok=True)
    atomic_write_text(output_dir / RECIPE_FILE, recipe_yaml)
