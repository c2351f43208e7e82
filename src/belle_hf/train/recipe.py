"""A training recipe: one YAML file that says what to train, on what data, and how.

A recipe names the base model, the data (BELLE corpora, Hub datasets or files, with mixing
weights and an eval split), the method (full fine-tuning, LoRA or QLoRA), the chat template,
and passes any TRL ``SFTConfig`` / ``TrainingArguments`` field through unchanged under
``training``. ``belle train RECIPE.yaml key=value ...`` overrides any field from the command
line; dotted keys reach nested fields (``lora.r=16``, ``training.learning_rate=1e-4``,
``data.0.max_samples=1000``) and values are read as YAML (``true``, ``1e-4``, ``[q_proj, v_proj]``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from belle_hf.errors import BelleError

METHODS = ("full", "lora", "qlora")
TRUNCATION_POLICIES = ("truncate", "drop", "error")
SAMPLE_PREFIX = "sample:"
"""Data paths starting with ``sample:`` name the bundled sample files (``sample:belle-multiturn``)."""
TINY_MODEL = "tiny"
SECRET_FIELDS = ("hub_token", "push_to_hub_token")
"""``SFTConfig`` fields that hold secrets: refused in recipes (use ``HF_TOKEN`` or ``hf auth login``)."""
"""``model: tiny`` builds the offline tiny Llama of :mod:`belle_hf.tiny_model` into the output folder."""


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, also reading ``1e-4`` as a float (YAML 1.1 wants ``1.0e-4``)."""


_RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+|\.(?:inf|Inf|INF|nan|NaN|NAN)"
               r"|[-+]?(?:[0-9][0-9_]*)?\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF))$"),
    list("-+0123456789."),
)


def read_yaml(text: str):
    """Parse recipe YAML (safe loader, scientific notation as floats)."""
    return yaml.load(text, Loader=_RecipeLoader)


@dataclass
class DataSource:
    """One corpus of the training mix."""

    path: str
    """A BELLE corpus name (``train_2M_CN``), a Hub dataset id, an ``hf://`` path, a local file or
    folder, or ``sample:<key>`` for a bundled sample file."""
    weight: float | None = None
    """Mixing weight. When any source has one, sources are interleaved with probabilities
    proportional to their weights (a source without one counts 1.0) until one runs out;
    otherwise they are concatenated."""
    max_samples: int | None = None
    """Keep only the first ``max_samples`` records of this source (BELLE's 0.2M/0.6M/1M subsets)."""
    schema: str | None = None
    """Record layout; ``None`` takes the registry's for BELLE corpora and detects it otherwise."""
    split: str = "train"


@dataclass
class LoraSettings:
    """LoRA adapter settings (also used by QLoRA)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] | str | None = None
    """Module names to adapt; ``None`` picks per-architecture defaults (all linear layers of the
    attention and MLP blocks, as BELLE's LoRA runs did), ``all-linear`` lets peft find them."""
    modules_to_save: list[str] | None = None
    """Extra modules trained in full and saved with the adapter (e.g. ``[embed_tokens, lm_head]``
    after a vocabulary extension)."""


@dataclass
class Recipe:
    """Everything ``belle train`` needs. Round-trips YAML with :meth:`from_yaml` / :meth:`to_yaml`."""

    model: str
    """Hub model id or local folder of the base model; ``tiny`` builds the offline tiny model."""
    data: list[DataSource]
    """The training corpora, with optional mixing weights."""
    method: str = "lora"
    """``full`` fine-tuning, ``lora``, or ``qlora`` (4-bit base through bitsandbytes; needs a GPU)."""
    output_dir: str = "runs/belle-sft"
    template: str = "auto"
    """``auto`` (the model's own chat template, else BELLE's), ``belle``, ``model``, or a path to a
    ``.jinja`` file."""
    eval_split: float = 0.0
    """Held-out part of the data for evaluation: a fraction (``0.05``) or a count (``200``)."""
    max_samples: int | None = None
    """Cap on the number of training conversations after mixing (before the eval split)."""
    truncation: str = "truncate"
    """What to do with conversations longer than ``training.max_length``: ``truncate`` (and report
    how many), ``drop`` them, or stop with an ``error``."""
    seed: int = 42
    dataset_num_proc: int | None = None
    """Processes that tokenize the data (and TRL's ``dataset_num_proc``); ``None`` takes the available
    CPU cores, at most 8 and one per 10,000 conversations."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    training: dict[str, Any] = field(default_factory=dict)
    """Any ``trl.SFTConfig`` field (``learning_rate``, ``num_train_epochs``, ``max_length``,
    ``packing``, ``deepspeed``, ...), passed through unchanged."""
    description: str = ""
    """Free text (which paper run the recipe reproduces); goes into the model card."""

    # ----------------------------------------------------------------------------------- YAML
    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "recipe") -> "Recipe":
        """Build a recipe from plain values (as read from YAML), checking names and types."""
        if not isinstance(values, dict):
            raise BelleError(f"{source}: a recipe is a mapping of fields, got {type(values).__name__}")
        values = dict(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise BelleError(f"{source}: unknown recipe field(s) {', '.join(unknown)}; "
                             f"fields are {', '.join(sorted(known))} (SFTConfig fields go under 'training')")
        for required in ("model", "data"):
            if values.get(required) in (None, "", []):
                raise BelleError(f"{source}: field '{required}' is required")
        values["data"] = [_data_source(item, f"{source}: data[{i}]") for i, item in enumerate(_as_list(values["data"]))]
        lora = values.get("lora") or {}
        if not isinstance(lora, dict):
            raise BelleError(f"{source}: field 'lora' must be a mapping")
        lora_known = {f.name for f in dataclasses.fields(LoraSettings)}
        if set(lora) - lora_known:
            raise BelleError(f"{source}: unknown lora field(s) {', '.join(sorted(set(lora) - lora_known))}")
        values["lora"] = LoraSettings(**check_types(LoraSettings, lora, f"{source}: lora."))
        training = values.get("training") or {}
        if not isinstance(training, dict):
            raise BelleError(f"{source}: field 'training' must be a mapping of SFTConfig fields")
        values["training"] = dict(training)
        values = check_types(cls, values, f"{source}: ", skip=("data", "lora", "training"))
        recipe = cls(**values)
        recipe.check(source)
        return recipe

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, overrides: list[str] | None = None) -> "Recipe":
        """Read a recipe file and apply ``key=value`` overrides."""
        path = Path(path)
        if not path.is_file():
            raise BelleError(f"{path}: recipe file not found")
        try:
            values = read_yaml(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise BelleError(f"{path}: not valid YAML: {error}") from None
        if overrides:
            values = apply_overrides(values, overrides)
        return cls.from_dict(values, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), allow_unicode=True, sort_keys=False)

    # ----------------------------------------------------------------------------- checks
    def check(self, source: str = "recipe") -> None:
        """Check values that need no download: method, template, split, LoRA sizes."""
        if self.method not in METHODS:
            raise BelleError(f"{source}: method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.truncation not in TRUNCATION_POLICIES:
            raise BelleError(f"{source}: truncation must be one of {', '.join(TRUNCATION_POLICIES)}, "
                             f"got {self.truncation!r}")
        if not isinstance(self.eval_split, (int, float)) or self.eval_split < 0:
            raise BelleError(f"{source}: eval_split must be a fraction in [0, 1) or a count, got {self.eval_split!r}")
        if isinstance(self.eval_split, float) and self.eval_split >= 1:
            raise BelleError(f"{source}: eval_split {self.eval_split} must be below 1 (or an integer count)")
        if self.lora.r <= 0 or self.lora.alpha <= 0:
            raise BelleError(f"{source}: lora.r and lora.alpha must be positive")
        if not 0 <= self.lora.dropout < 1:
            raise BelleError(f"{source}: lora.dropout must be in [0, 1)")
        secrets = sorted(set(self.training) & set(SECRET_FIELDS))
        if secrets:
            raise BelleError(f"{source}: training.{secrets[0]}: recipes are shared files and must not hold tokens; "
                             "set HF_TOKEN or run `hf auth login` instead")
        if self.dataset_num_proc is not None and (not isinstance(self.dataset_num_proc, int) or self.dataset_num_proc < 1):
            raise BelleError(f"{source}: dataset_num_proc must be a positive integer, got {self.dataset_num_proc!r}")
        if "dataset_num_proc" in self.training:
            raise BelleError(f"{source}: set 'dataset_num_proc' at the top level of the recipe, not under 'training'")
        if "output_dir" in self.training:
            raise BelleError(f"{source}: set 'output_dir' at the top level of the recipe, not under 'training'")

    def check_training_fields(self, source: str = "recipe") -> None:
        """Check that every ``training`` key is a field of TRL's ``SFTConfig`` and its value has the
        field's type (imports TRL), before any model loads; ``"6"`` for an integer becomes ``6``.

        Importing ``SFTConfig`` imports transformers' training code, torch, peft and torchao: four
        seconds, most of what a rerun of ``belle data prepare`` on prepared data would cost. The
        answer depends only on the ``training`` values and the versions of TRL, transformers and
        pydantic, so a passed check is remembered under a hash of those (``<cache>/checked/``) and
        not run again; any changed value or version checks afresh."""
        remembered = _checked_training_file(self.training)
        if remembered is not None and remembered.is_file():
            try:
                self.training = json.loads(remembered.read_text(encoding="utf-8"))
                return
            except (OSError, ValueError):
                pass  # unreadable: check again
        from trl import SFTConfig

        known = {f.name for f in dataclasses.fields(SFTConfig)}
        unknown = sorted(set(self.training) - known)
        if unknown:
            raise BelleError(f"{source}: unknown training field(s) {', '.join(unknown)}: not SFTConfig / "
                             "TrainingArguments fields (see trl.SFTConfig)")
        self.training = check_types(SFTConfig, self.training, f"{source}: training.")
        if remembered is not None:
            try:
                if json.loads(json.dumps(self.training)) == self.training:  # only what JSON keeps exactly
                    from belle_hf.io import atomic_write_text

                    atomic_write_text(remembered, json.dumps(self.training))
            except (OSError, TypeError, ValueError):
                pass  # a cache that cannot be written only costs the next run the import

    def check_data_names(self, source: str = "recipe") -> None:
        """Check that every data path resolves without downloading: a BELLE corpus name in the
        registry, a bundled sample, an existing local path, an ``hf://`` path or a Hub id."""
        from belle_hf.data.registry import resolve_corpus
        from belle_hf.models import is_hub_id

        for i, item in enumerate(self.data):
            path = item.path
            if path.startswith(SAMPLE_PREFIX):
                from belle_hf.samples import SAMPLE_FILES

                if path[len(SAMPLE_PREFIX):] not in SAMPLE_FILES:
                    raise BelleError(f"{source}: data[{i}]: unknown sample {path!r}; samples are "
                                     + ", ".join(SAMPLE_PREFIX + key for key in SAMPLE_FILES))
            elif Path(path).expanduser().is_file():
                if _is_blank(Path(path).expanduser()):
                    raise BelleError(f"{source}: data[{i}]: {path} is empty: it holds no records")
            elif resolve_corpus(path) is not None or Path(path).expanduser().exists() or path.startswith("hf://"):
                continue
            elif path.startswith("BelleGroup/"):
                raise BelleError(f"{source}: data[{i}]: {path!r} is not a BELLE corpus in the registry")
            elif not is_hub_id(path):
                raise BelleError(f"{source}: data[{i}]: {path!r} is not a BELLE corpus name, an existing file "
                                 "or folder, an hf:// path or a Hub dataset id")

    @property
    def is_peft(self) -> bool:
        return self.method in ("lora", "qlora")


def check_types(cls: type, values: dict[str, Any], where: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check ``values`` against the annotated types of dataclass ``cls``'s fields, naming the first
    field that does not fit (``recipe.yaml: training.learning_rate must be float, got 'abc'``).

    pydantic validates each value in its lax mode, so ``"6"`` passes for an int and is returned as
    ``6``; a value that validates equal to itself is kept as written (``15`` stays ``15`` for a float)."""
    import typing

    from pydantic import ConfigDict, TypeAdapter, ValidationError

    hints = typing.get_type_hints(cls)
    checked = dict(values)
    for name, value in values.items():
        if name in skip or name not in hints:
            continue
        try:
            adapter = TypeAdapter(hints[name], config=ConfigDict(arbitrary_types_allowed=True))
        except Exception:  # noqa: BLE001 - a type pydantic cannot describe is left to the library that owns it
            continue
        try:
            valid = adapter.validate_python(value)
        except ValidationError:
            raise BelleError(f"{where}{name} must be {_type_name(hints[name])}, got {value!r}") from None
        if valid != value:
            checked[name] = valid
    return checked


def _checked_training_file(training: dict[str, Any]) -> Path | None:
    """Where a passed check of ``training`` is remembered (see ``Recipe.check_training_fields``);
    ``None`` when the values are not plain JSON."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    from belle_hf.train.prepared import cache_root

    try:
        versions = {name: version(name) for name in ("trl", "transformers", "pydantic")}
        text = json.dumps({"format": 1, "training": training, "versions": versions}, sort_keys=True)
    except (PackageNotFoundError, TypeError, ValueError):
        return None
    return cache_root() / "checked" / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.json"


def _type_name(hint: Any) -> str:
    """``int``, ``float``, ``int | None``, ``list[str] | str | None``: the type as a reader writes it."""
    name = getattr(hint, "__name__", None) if isinstance(hint, type) else None
    return name or str(hint).replace("typing.", "").replace("NoneType", "None")


def _is_blank(path: Path, chunk: int = 1 << 20) -> bool:
    """Whether the file holds nothing but whitespace (datasets' JSON reader stops with a bare
    StopIteration on such a file); reads only up to the first other byte."""
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            if block.strip():
                return False
    return True


def load_recipe(path: str | os.PathLike, overrides: list[str] | None = None) -> Recipe:
    """Read ``path`` (YAML) and apply ``key=value`` overrides; see :class:`Recipe`."""
    return Recipe.from_yaml(path, overrides)


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _data_source(item: Any, where: str) -> DataSource:
    if isinstance(item, DataSource):
        return item
    if isinstance(item, str):
        return DataSource(path=item)
    if isinstance(item, dict):
        known = {f.name for f in dataclasses.fields(DataSource)}
        unknown = sorted(set(item) - known)
        if unknown:
            raise BelleError(f"{where}: unknown field(s) {', '.join(unknown)}; fields are {', '.join(sorted(known))}")
        if not item.get("path"):
            raise BelleError(f"{where}: field 'path' is required")
        source = DataSource(**check_types(DataSource, item, f"{where}."))
        if source.weight is not None and source.weight <= 0:
            raise BelleError(f"{where}: weight must be positive")
        if source.max_samples is not None and source.max_samples <= 0:
            raise BelleError(f"{where}: max_samples must be positive")
        return source
    raise BelleError(f"{where}: expected a path or a mapping with 'path', got {type(item).__name__}")


# --------------------------------------------------------------------------------- overrides
def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into (``["a", "b", "c"]``, YAML-typed value)."""
    if "=" not in text:
        raise BelleError(f"override {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise BelleError(f"override {text!r}: empty key")
    try:
        value = read_yaml(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of the raw recipe ``values`` with each ``key=value`` applied.

    A top-level key that is not a recipe field but a ``SFTConfig`` field goes under ``training``
    (``learning_rate=1e-4`` is ``training.learning_rate=1e-4``).
    """
    values = copy.deepcopy(values)
    recipe_fields = {f.name for f in dataclasses.fields(Recipe)}
    for text in overrides:
        keys, value = parse_override(text)
        if keys[0] not in recipe_fields:
            from trl import SFTConfig

            if keys[0] in {f.name for f in dataclasses.fields(SFTConfig)}:
                keys = ["training", *keys]
            else:
                raise BelleError(f"override {text!r}: {keys[0]!r} is neither a recipe field "
                                 f"({', '.join(sorted(recipe_fields))}) nor an SFTConfig field")
        _set_path(values, keys, value, text)
    return values


def _set_path(values: Any, keys: list[str], value: Any, text: str) -> None:
    node = values
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise BelleError(f"override {text!r}: {key!r} is not an index of a list of {len(node)}")
            index = int(key)
            if last:
                node[index] = value
                return
            if isinstance(node[index], str):  # ``data: [name]`` written as a bare path
                node[index] = {"path": node[index]}
            node = node[index]
        elif isinstance(node, dict):
            if last:
                node[key] = value
                return
            if key == "data" and not isinstance(node.get(key), list):
                node[key] = _as_list(node.get(key)) if node.get(key) is not None else []
            if node.get(key) is None:
                node[key] = {}
            node = node[key]
        else:
            raise BelleError(f"override {text!r}: cannot set {key!r} inside a {type(node).__name__}")
