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
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from belle_hf.errors import BelleError
from belle_hf.train.recipe import SAMPLE_PREFIX, DataSource, Recipe

logger = logging.getLogger(__name__)

MAX_DATASET_PROCS = 8
"""Default cap on tokenizing processes (beyond it, memory and disk, not cores, limit)."""
ROWS_PER_PROCESS = 10_000


@dataclass
class TruncationReport:
    """What tokenizing and truncating one split made of it: how many conversations exceed
    ``max_length`` and what was done with them, how many were dropped for having no trained token
    left, and the counts of what remains."""

    examples: int = 0
    """Conversations tokenized."""
    too_long: int = 0
    max_length: int | None = None
    policy: str = "truncate"
    longest: int = 0
    no_trained_tokens: int = 0
    """Conversations dropped because no token of theirs would be trained: no assistant reply, or
    every reply cut off by truncation (a prompt longer than ``max_length``)."""
    rows: int = 0
    """Conversations kept."""
    tokens: int = 0
    """Tokens of the kept conversations (before truncation)."""
    trained_tokens: int = 0
    """Of those, the tokens that carry loss (before truncation)."""

    def message(self) -> str:
        action = {"truncate": "truncated to it (the loss tokens past it are not trained)",
                  "drop": "dropped", "error": "refused"}[self.policy]
        return (f"{self.too_long} of {self.examples} conversations are longer than max_length={self.max_length} "
                f"tokens (longest {self.longest}) and are {action}")

    def dropped_message(self) -> str:
        return (f"{self.no_trained_tokens} of {self.examples} conversations have no trained token left "
                f"(no assistant reply, or every reply past max_length={self.max_length}) and are dropped")


@dataclass
class TokenizedSplits:
    """The tokenized train (and eval) split of a recipe, and where they are cached."""

    train_dataset: Any
    eval_dataset: Any
    truncation: TruncationReport
    eval_truncation: TruncationReport | None = None
    cache_dir: Path | None = None
    """The prepared folder these splits are memory-mapped from (``None``: not cached)."""
    cache_hit: bool = False
    """The data was prepared before (by an earlier run, ``belle data prepare`` or the main process)."""


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


def dataset_num_proc(rows: int, requested: int | None = None) -> int | None:
    """Processes that tokenize ``rows`` conversations: ``requested`` (the recipe's
    ``dataset_num_proc``), else the available cores, at most :data:`MAX_DATASET_PROCS` and one per
    :data:`ROWS_PER_PROCESS` conversations (:func:`belle_hf.cores.processes_for`). ``None`` means
    in this process."""
    from belle_hf.cores import processes_for

    return processes_for(rows, ROWS_PER_PROCESS, MAX_DATASET_PROCS, requested)


def end_of_turn_ids(tokenizer) -> set[int]:
    """Ids that may end an assistant turn: the special tokens (eos, ``<|im_end|>``, ``<|eot_id|>``...)."""
    ids = set(tokenizer.all_special_ids)
    ids.update(i for i, token in tokenizer.added_tokens_decoder.items() if token.special)
    return ids


def tokenize_dataset(dataset, tokenizer, chat_template: str, max_length: int | None, policy: str = "truncate",
                     name: str = "train", num_proc: int | None = None, *, truncation_mode: str = "keep_start",
                     work_dir: Path | None = None, fingerprint: str | None = None):
    """Tokenize a ``messages`` dataset with the exact loss mask, drop what would train nothing, and
    apply the truncation policy.

    Returns (dataset with ``messages``, ``input_ids``, ``assistant_masks``; :class:`TruncationReport`).
    Truncation itself is left to TRL (``max_length`` with ``truncation_mode``, or packing's ``bfd``
    which cuts overflow like ``keep_start``), so what is reported is what TRL does; but a
    conversation that truncation would leave without a trained token is dropped here and counted,
    so a run never trains on nothing and TRL never meets an empty split. ``work_dir`` receives the
    intermediate Arrow files (default: ``datasets``' cache); ``fingerprint`` (the prepared key)
    spares ``datasets`` from hashing the tokenizer to fingerprint the map (seconds for a 150k vocabulary).
    """
    import numpy as np

    from belle_hf.train.template import encode_conversations

    end_of_turn = np.array(sorted(end_of_turn_ids(tokenizer)), dtype=np.int64)

    def tokenize(batch, indices):
        """One batch (an Arrow table) to its token columns, built with numpy and handed to
        ``datasets`` as Arrow arrays: no Python list per token is ever made."""
        import pyarrow as pa

        encoded = encode_conversations(tokenizer, batch.column("messages").to_pylist(), chat_template)
        wrong = np.flatnonzero(~np.isin(encoded.turn_ends, end_of_turn))
        if len(wrong):
            token, index = int(encoded.turn_ends[wrong[0]]), indices[int(encoded.turn_rows[wrong[0]])]
            raise BelleError(
                f"the chat template's {{% generation %}} block ends with {tokenizer.convert_ids_to_tokens(token)!r}, "
                f"not an end-of-turn token such as {tokenizer.eos_token!r}, so the model would never learn to "
                f"stop; put the end-of-turn token inside the block ({name} conversation {index})")
        offsets, mask = encoded.offsets, encoded.assistant_masks
        rows = len(offsets) - 1
        trained_before = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
        positions = np.flatnonzero(mask)
        owner = np.searchsorted(offsets, positions, side="right") - 1
        with_trained, first_index = np.unique(owner, return_index=True)
        last_index = np.append(first_index[1:], len(positions)) - 1
        first, last = np.full(rows, -1, dtype=np.int64), np.full(rows, -1, dtype=np.int64)
        first[with_trained] = positions[first_index] - offsets[with_trained]
        last[with_trained] = positions[last_index] - offsets[with_trained]
        list_offsets = pa.array(offsets.astype(np.int32) if offsets[-1] < 2**31 else offsets)
        lists = pa.ListArray if list_offsets.type == pa.int32() else pa.LargeListArray
        columns = {
            "input_ids": lists.from_arrays(list_offsets, pa.array(encoded.input_ids.astype(np.int32))),
            "assistant_masks": lists.from_arrays(list_offsets, pa.array(mask)),
            "num_tokens": pa.array(np.diff(offsets)),
            "num_trained": pa.array(trained_before[offsets[1:]] - trained_before[offsets[:-1]]),
            "first_trained": pa.array(first), "last_trained": pa.array(last),
        }
        for column, values in columns.items():
            batch = batch.append_column(column, values)
        return batch

    def cache_file(step: str) -> str | None:
        return str(work_dir / f"{name}-{step}.arrow") if work_dir is not None else None

    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
    logger.info("tokenizing %d %s conversations%s", len(dataset), name, f" in {num_proc} processes" if num_proc else "")
    from belle_hf.cores import keep_tokenizer_threads

    with keep_tokenizer_threads():
        dataset = dataset.with_format("arrow").map(
            tokenize, batched=True, with_indices=True, num_proc=num_proc, cache_file_name=cache_file("tokenized"),
            desc=f"Tokenizing {name} conversations",
            new_fingerprint=f"{fingerprint}-{name}-tokenized" if fingerprint else None).with_format(None)
    # Read the per-row counts as numpy columns: never materialize millions of token lists in Python.
    counts = dataset.select_columns(["num_tokens", "num_trained", "first_trained", "last_trained"])
    counts = counts.with_format("numpy")[:]
    lengths, trained, first, last = (np.asarray(counts[column], dtype=np.int64) for column in
                                     ("num_tokens", "num_trained", "first_trained", "last_trained"))
    report = TruncationReport(examples=len(dataset), max_length=max_length, policy=policy,
                              longest=int(lengths.max()) if len(lengths) else 0)
    keep = trained > 0
    if max_length is not None:
        too_long = lengths > max_length
        report.too_long = int(too_long.sum())
        if policy == "truncate" and truncation_mode != "none":  # what truncation leaves must still be trained
            keep &= (last >= lengths - max_length) if truncation_mode == "keep_end" else (first < max_length)
    report.no_trained_tokens = int((~keep).sum())
    if not keep.any():
        if not (trained > 0).any():
            raise BelleError(f"no {name} conversation has an assistant reply to train on")
        where = "ends before the last" if truncation_mode == "keep_end" else "starts after the first"
        raise BelleError(f"every {name} conversation's assistant reply {where} max_length={max_length} tokens "
                         f"(every prompt is longer than max_length={max_length}), so nothing would be trained; "
                         "raise training.max_length")
    if report.no_trained_tokens:
        logger.warning("%s: %s", name, report.dropped_message())
    if report.too_long:
        if policy == "error":
            raise BelleError(report.message() + "; raise training.max_length or set truncation: truncate or drop")
        logger.warning("%s: %s", name, report.message())
        if policy == "drop":
            keep &= ~too_long
            if not keep.any():
                raise BelleError(f"every {name} conversation is longer than max_length={max_length}")
    if not keep.all():
        dataset = dataset.select(np.flatnonzero(keep), indices_cache_file_name=cache_file("kept"))
    report.rows, report.tokens, report.trained_tokens = int(keep.sum()), int(lengths[keep].sum()), int(trained[keep].sum())
    dataset = dataset.remove_columns(["num_tokens", "num_trained", "first_trained", "last_trained"])
    return dataset, report


def drop_fully_masked_rows(dataset):
    """``dataset`` (TRL's prepared rows, with ``labels``) without the rows whose labels are all masked,
    which would train on nothing (loss 0)."""
    return dataset.filter(lambda rows: [any(label != -100 for label in labels) for labels in rows],
                          batched=True, input_columns=["labels"], desc="Dropping rows without a trained token")


# ------------------------------------------------------------------------------ prepared once
PREPARE_TIMEOUT = 24 * 3600
"""How long a rank waits for the main process to prepare the data (seconds). Waiting polls the
file system instead of sitting in a collective barrier, so no NCCL/gloo timeout cuts a long
preparation short; if the main process dies, the launcher (torchrun, accelerate) stops the rest."""


def _preparation_inputs(recipe: Recipe) -> dict[str, Any] | None:
    """Everything but the tokenizer and template that the prepared rows depend on: each source
    with a fingerprint of its content, and the mixing, split and truncation settings; ``None``
    when a source cannot be fingerprinted (a Hub dataset while offline)."""
    import dataclasses

    from belle_hf.train import prepared

    sources = []
    for source in recipe.data:
        content = prepared.source_fingerprint(source_path(source))
        if content is None:
            logger.warning("%s: cannot fingerprint this data source, so its tokenized data is not cached", source.path)
            return None
        sources.append({**dataclasses.asdict(source), "content": content})
    training = recipe.training
    return {
        "sources": sources, "max_samples": recipe.max_samples, "eval_split": recipe.eval_split, "seed": recipe.seed,
        "max_length": training.get("max_length", 1024), "truncation": recipe.truncation,
        "truncation_mode": training.get("truncation_mode", "keep_start"),
        "packing": bool(training.get("packing")), "packing_strategy": training.get("packing_strategy", "bfd"),
    }


def recipe_cache_key(recipe: Recipe, tokenizer, chat_template: str, max_length: int | None,
                     inputs: dict[str, Any] | None = None) -> str | None:
    """The key of the recipe's prepared data (:mod:`belle_hf.train.prepared`); ``None`` when a source
    cannot be fingerprinted (a Hub dataset while offline). ``inputs``: the recipe's
    :func:`_preparation_inputs` when the caller has them (each Hub source costs a request)."""
    from belle_hf.train import prepared

    inputs = inputs or _preparation_inputs(recipe)
    if inputs is None:
        return None
    return prepared.prepared_key({**inputs, "max_length": max_length, "chat_template": chat_template,
                                  "tokenizer": prepared.tokenizer_fingerprint(tokenizer)})


def recipe_files_key(recipe: Recipe, model_path: str, inputs: dict[str, Any] | None = None) -> str | None:
    """A key of the recipe computed from files alone, without loading the tokenizer: the
    preparation inputs, every file of the model folder but its weights (the tokenizer and its chat
    template are made from those), the recipe's ``template`` (and that file's content) and the
    versions of the libraries that read them. ``belle data prepare`` finds an earlier preparation
    by it (:func:`belle_hf.train.prepared.recall`); ``None`` when the model is not a local folder.
    Training never relies on it: it always loads the tokenizer and checks the full key."""
    from importlib.metadata import PackageNotFoundError, version

    from belle_hf.train import prepared

    model = Path(model_path).expanduser()
    inputs = (inputs or _preparation_inputs(recipe)) if model.is_dir() else None
    if inputs is None:
        return None
    template = Path(recipe.template).expanduser()
    try:
        versions = {name: version(name) for name in ("transformers", "tokenizers", "trl")}
    except PackageNotFoundError:
        return None
    return prepared.prepared_key({
        **inputs, "kind": "files", "model": prepared.model_files_fingerprint(model), "template": recipe.template,
        "template_file": prepared.file_fingerprint(template) if template.is_file() else None,
        "trust_remote_code": bool(recipe.training.get("trust_remote_code", False)), "versions": versions})


def tokenize_recipe(recipe: Recipe, tokenizer, chat_template: str, max_length: int | None, *,
                    max_examples: int | None = None, cache: bool = True,
                    model_path: str | None = None) -> TokenizedSplits:
    """The recipe's data loaded, mixed, split and tokenized once: from the prepared cache when it
    holds this recipe's key, else prepared (by the main process only, the other ranks wait) and
    saved there atomically. ``max_examples`` (a preview) reads the cache but never writes it.
    The key from files alone (:func:`recipe_files_key` of ``model_path``) is remembered for the
    prepared folder."""
    from belle_hf.train import prepared

    inputs = _preparation_inputs(recipe) if cache else None  # once: a Hub source costs a request
    key = recipe_cache_key(recipe, tokenizer, chat_template, max_length, inputs) if inputs else None
    files_key = (recipe_files_key(recipe, model_path, inputs)
                 if key is not None and model_path is not None and max_examples is None else None)
    if key is None:
        return _tokenize_recipe(recipe, tokenizer, chat_template, max_length, max_examples)
    folder = prepared.prepared_root() / key
    if not prepared.is_complete(folder) and max_examples is None and int(os.environ.get("LOCAL_RANK", "0")) != 0:
        _wait_for_main_process(folder)
    if prepared.is_complete(folder):
        logger.info("using the prepared data in %s (tokenized before, nothing to tokenize)", folder)
        if files_key is not None:
            prepared.remember(files_key, key)
        return load_prepared(folder, max_examples, hit=True)
    if max_examples is not None:
        return _tokenize_recipe(recipe, tokenizer, chat_template, max_length, max_examples)
    import json
    import shutil

    from datasets import DatasetDict

    from belle_hf.io import atomic_dir, clean_stale_temps_in

    # Everything, intermediate Arrow files included, is written in a staging folder renamed into
    # place at the end: a kill at any point leaves no folder that a later run could take as prepared.
    # What a SIGKILLed preparation (of this key or another) left is removed first; a staging folder
    # still locked by a live preparer is left alone.
    clean_stale_temps_in(folder.parent)
    with atomic_dir(folder) as staging:
        splits = _tokenize_recipe(recipe, tokenizer, chat_template, max_length, None, work_dir=staging / "work",
                                  fingerprint=key)
        parts = {"train": splits.train_dataset,
                 **({"eval": splits.eval_dataset} if splits.eval_dataset is not None else {})}
        DatasetDict(parts).save_to_disk(str(staging / prepared.DATA_DIR))
        info = {"key": key, "train": vars(splits.truncation),
                "eval": vars(splits.eval_truncation) if splits.eval_truncation is not None else None}
        del splits, parts
        shutil.rmtree(staging / "work", ignore_errors=True)
        (staging / prepared.INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
    logger.info("prepared data saved in %s", folder)
    if files_key is not None:
        prepared.remember(files_key, key)
    return load_prepared(folder, None, hit=False)


def load_prepared(folder: Path, max_examples: int | None = None, hit: bool = True) -> TokenizedSplits:
    """The splits saved in a prepared folder, memory-mapped."""
    import json

    from datasets import load_from_disk

    from belle_hf.train import prepared

    info = json.loads((folder / prepared.INFO_FILE).read_text(encoding="utf-8"))
    parts = load_from_disk(str(folder / prepared.DATA_DIR))
    train = parts["train"]
    if max_examples is not None:
        train = train.select(range(min(max_examples, len(train))))
    evaluation = parts["eval"] if "eval" in parts and max_examples is None else None
    eval_report = TruncationReport(**info["eval"]) if info.get("eval") and evaluation is not None else None
    return TokenizedSplits(train, evaluation, TruncationReport(**info["train"]), eval_report, folder, hit)


def _wait_for_main_process(folder: Path) -> None:
    import time

    from belle_hf.train import prepared

    logger.info("rank %s: waiting for the main process to prepare the data in %s", os.environ.get("RANK"), folder)
    deadline = time.monotonic() + PREPARE_TIMEOUT
    while not prepared.is_complete(folder):
        if time.monotonic() > deadline:
            raise BelleError(f"timed out after {PREPARE_TIMEOUT} s waiting for the main process to prepare {folder}")
        time.sleep(0.5)


def _tokenize_recipe(recipe: Recipe, tokenizer, chat_template: str, max_length: int | None,
                     max_examples: int | None, work_dir: Path | None = None,
                     fingerprint: str | None = None) -> TokenizedSplits:
    train_raw, eval_raw = split_eval(mix_sources(recipe), recipe)
    if max_examples is not None:
        train_raw = train_raw.select(range(min(max_examples, len(train_raw))))
    training = recipe.training
    if training.get("packing"):  # TRL's packing ignores truncation_mode: bfd cuts overflow off the end,
        mode = "keep_start" if training.get("packing_strategy", "bfd") == "bfd" else "none"  # the others cut nothing
    else:
        mode = training.get("truncation_mode", "keep_start")
    settings = {"policy": recipe.truncation, "truncation_mode": mode, "work_dir": work_dir, "fingerprint": fingerprint}
    train, report = tokenize_dataset(train_raw, tokenizer, chat_template, max_length, name="train",
                                     num_proc=dataset_num_proc(len(train_raw), recipe.dataset_num_proc), **settings)
    evaluation, eval_report = None, None
    if eval_raw is not None and max_examples is None:
        evaluation, eval_report = tokenize_dataset(eval_raw, tokenizer, chat_template, max_length, name="eval",
                                                   num_proc=dataset_num_proc(len(eval_raw), recipe.dataset_num_proc),
                                                   **settings)
    return TokenizedSplits(train, evaluation, report, eval_report)
