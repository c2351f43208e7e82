"""The training data of a recipe: load every source through :func:`belle_hf.data.load`, mix them,
hold out an eval split, and tokenize with the boundary-safe loss mask of
:func:`belle_hf.train.template.tokenize_conversation`.

The result keeps the ``messages`` column beside ``input_ids`` and ``assistant_masks``: TRL's
``SFTTrainer`` then skips its own tokenization (the dataset is already processed), builds the
labels from ``assistant_masks``, and still sees a conversational dataset for
``assistant_only_loss=True``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from belle_hf.errors import BelleError
from belle_hf.train.recipe import SAMPLE_PREFIX, DataSource, Recipe

logger = logging.getLogger(__name__)


@dataclass
class TruncationReport:
    """How many tokenized conversations exceed ``max_length``, and what was done with them."""

    examples: int = 0
    too_long: int = 0
    max_length: int | None = None
    policy: str = "truncate"
    longest: int = 0

    def message(self) -> str:
        action = {"truncate": "truncated to it (the loss tokens past it are not trained)",
                  "drop": "dropped", "error": "refused"}[self.policy]
        return (f"{self.too_long} of {self.examples} conversations are longer than max_length={self.max_length} "
                f"tokens (longest {self.longest}) and are {action}")


def source_path(source: DataSource) -> str:
    """The path :func:`belle_hf.data.load` takes for ``source`` (``sample:<key>`` resolved)."""
    if source.path.startswith(SAMPLE_PREFIX):
        from belle_hf.samples import SAMPLE_FILES, sample_data_path

        key = source.path[len(SAMPLE_PREFIX):]
        if key not in SAMPLE_FILES:
            raise BelleError(f"unknown sample {source.path!r}; samples are "
                             + ", ".join(SAMPLE_PREFIX + name for name in SAMPLE_FILES))
        return str(sample_data_path(key))
    return source.path


def load_source(source: DataSource):
    """One source as a ``datasets.Dataset`` with a ``messages`` column."""
    from datasets.exceptions import DatasetsError

    from belle_hf.data import load

    path = source_path(source)
    try:
        dataset = load(path, split=source.split, schema=source.schema)
    except BelleError:
        raise
    except (DatasetsError, OSError, ValueError) as error:
        cause = error.__cause__ or error
        hint = f"; `belle data convert {path} -o checked.jsonl` names the bad line" if Path(path).is_file() else ""
        raise BelleError(f"{source.path}: cannot load this data source ({cause}){hint}") from None
    if source.max_samples is not None and source.max_samples < len(dataset):
        dataset = dataset.select(range(source.max_samples))
    return dataset.select_columns(["messages"])


def mix_sources(recipe: Recipe):
    """Load and mix the recipe's sources: interleaved by weight when any has one, else concatenated."""
    import datasets

    parts = [load_source(source) for source in recipe.data]
    if len(parts) == 1:
        mixed = parts[0]
    elif any(source.weight is not None for source in recipe.data):
        weights = [source.weight if source.weight is not None else 1.0 for source in recipe.data]
        total = sum(weights)
        mixed = datasets.interleave_datasets(parts, probabilities=[w / total for w in weights], seed=recipe.seed,
                                             stopping_strategy="first_exhausted")
    else:
        mixed = datasets.concatenate_datasets(parts)
    if recipe.max_samples is not None and recipe.max_samples < len(mixed):
        mixed = mixed.shuffle(seed=recipe.seed).select(range(recipe.max_samples))
    return mixed


def split_eval(dataset, recipe: Recipe):
    """(train, eval) where eval is ``recipe.eval_split`` of the data (``None`` when 0)."""
    if not recipe.eval_split:
        return dataset, None
    size = recipe.eval_split
    if isinstance(size, float) and size.is_integer() and size >= 1:
        size = int(size)
    if (isinstance(size, int) and size >= len(dataset)) or len(dataset) < 2:
        raise BelleError(f"eval_split {recipe.eval_split} leaves no training data out of {len(dataset)} conversations")
    parts = dataset.train_test_split(test_size=size, seed=recipe.seed)
    return parts["train"], parts["test"]


def tokenize_dataset(dataset, tokenizer, chat_template: str, max_length: int | None, policy: str = "truncate",
                     name: str = "train", num_proc: int | None = None):
    """Tokenize a ``messages`` dataset with the exact loss mask and apply the truncation policy.

    Returns (dataset with ``messages``, ``input_ids``, ``assistant_masks``; :class:`TruncationReport`).
    Truncation itself is left to TRL (``max_length`` with ``truncation_mode="keep_start"``, or
    packing's ``bfd`` which cuts overflow), so what is reported is what TRL does.
    """
    from belle_hf.train.template import tokenize_conversation

    def tokenize(example):
        encoded = tokenize_conversation(tokenizer, example["messages"], chat_template)
        encoded["num_tokens"] = len(encoded["input_ids"])
        encoded["num_trained"] = sum(encoded["assistant_masks"])
        return encoded

    dataset = dataset.map(tokenize, num_proc=num_proc, desc=f"Tokenizing {name} conversations")
    # Read the per-row counts as numpy columns: never materialize millions of token lists in Python.
    counts = dataset.select_columns(["num_tokens", "num_trained"]).with_format("numpy")
    lengths, trained = counts["num_tokens"][:], counts["num_trained"][:]
    untrained = int((trained == 0).sum())
    if untrained:
        logger.warning("%d %s conversations have no assistant reply and are skipped", untrained, name)
        dataset = dataset.filter(lambda n: n > 0, input_columns=["num_trained"], num_proc=num_proc)
        lengths = lengths[trained > 0]
    if len(dataset) == 0:
        raise BelleError(f"no {name} conversation has an assistant reply to train on")
    report = TruncationReport(examples=len(dataset), max_length=max_length, policy=policy, longest=int(lengths.max()))
    if max_length is not None:
        report.too_long = int((lengths > max_length).sum())
    if report.too_long:
        if policy == "error":
            raise BelleError(report.message() + "; raise training.max_length or set truncation: truncate or drop")
        logger.warning("%s: %s", name, report.message())
        if policy == "drop":
            dataset = dataset.filter(lambda n: n <= max_length, input_columns=["num_tokens"], num_proc=num_proc)
            if len(dataset) == 0:
                raise BelleError(f"every {name} conversation is longer than max_length={max_length}")
    dataset = dataset.remove_columns(["num_tokens", "num_trained"])
    return dataset, report
