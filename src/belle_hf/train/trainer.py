"""Build and run TRL's ``SFTTrainer`` from a :class:`~belle_hf.train.recipe.Recipe`.

The recipe layer picks what TRL's defaults get wrong for the machine at hand (``use_cpu`` and no
``bf16`` without a GPU, ``gloo`` for CPU processes), the LoRA target modules of the architecture,
QLoRA's 4-bit loading (refused at once without a GPU), and turns the KV cache off during training:
with it on, transformers skips the packed-sequence masking derived from ``position_ids`` and packed
conversations would attend to each other.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from belle_hf.errors import BelleError
from belle_hf.interrupts import resume_hint
from belle_hf.io import atomic_write_text
from belle_hf.models import load_tokenizer
from belle_hf.shipped import shipped_path
from belle_hf.train.dataset import (
    TokenizedSplits,
    TruncationReport,
    drop_fully_masked_rows,
    load_prepared,
    recipe_files_key,
    tokenize_recipe,
)
from belle_hf.train.recipe import SECRET_FIELDS, TINY_MODEL, Recipe
from belle_hf.train.run_folder import (
    BASE_MODEL_DIR,
    METRICS_FILE,
    RECIPE_FILE,
    STAGING_DIR,
    RunPlan,
    checkpoints,
    plan_run,
    start_run,
)

logger = logging.getLogger(__name__)

# Linear layers of the attention and MLP blocks, per architecture (BELLE's LoRA runs adapted all
# of them, following Baize). Anything else falls back to peft's "all-linear".
LORA_TARGET_MODULES: dict[str, list[str]] = {
    **{name: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
       for name in ("llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen2_moe", "gemma", "gemma2", "gemma3_text",
                    "phi3", "internlm2", "baichuan", "yi", "deepseek_v2", "olmo2")},
    **{name: ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]
       for name in ("bloom", "falcon", "gpt_neox", "chatglm")},
    "gpt2": ["c_attn", "c_proj", "c_fc"],
}


@dataclass(kw_only=True)
class PreparedData(TokenizedSplits):
    """Tokenizer, template and tokenized datasets of a recipe (no model loaded)."""

    model_path: str
    tokenizer: Any
    chat_template: str


@dataclass
class TrainResult:
    output_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    resumed_from: str | None = None
    """The checkpoint an interrupted run went on from."""
    completed_before: bool = False
    """The output folder already held this recipe's finished run; nothing was trained."""
    set_aside: list[Path] = field(default_factory=list)
    """Incomplete checkpoints (cut short by a kill while saving) renamed out of the way."""


# ------------------------------------------------------------------------------ device checks
def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def check_method_supported(recipe: Recipe) -> None:
    """Refuse QLoRA at once where it cannot run (no CUDA GPU, no bitsandbytes), before loading anything."""
    if recipe.method != "qlora":
        return
    if not cuda_available():
        raise BelleError("method qlora loads the base model in 4 bits through bitsandbytes, which needs a CUDA GPU, "
                         "and none is available here; use method: lora (or full) on this machine")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise BelleError("method qlora needs bitsandbytes: pip install 'belle-hf[gpu]'") from None


def device_defaults(training: dict[str, Any], gpu: bool | None = None) -> dict[str, Any]:
    """``SFTConfig`` settings the machine dictates; the recipe's own ``training`` values win over them.

    ``gpu`` says which machine to plan for (default: this one).
    """
    settings: dict[str, Any] = {}
    if cuda_available() if gpu is None else gpu:
        import torch

        if "bf16" not in training and "fp16" not in training:
            settings["bf16"] = torch.cuda.is_bf16_supported()
            settings["fp16"] = not settings["bf16"]
    else:
        # TRL's SFTConfig turns bf16 on by default, which assumes a GPU.
        if training.get("fp16"):
            raise BelleError("training.fp16 needs a GPU; remove it (this machine has none)")
        settings.update(use_cpu=True, bf16=False, fp16=False)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            settings["ddp_backend"] = "gloo"
    return settings


# ------------------------------------------------------------------------------------ model
def resolve_model_path(recipe: Recipe) -> str:
    """The base model to load: ``tiny`` is built (once) into ``OUTPUT_DIR/base-model``."""
    if recipe.model != TINY_MODEL:
        return recipe.model
    from belle_hf.tiny_model import save_tiny_model

    path = Path(recipe.output_dir) / BASE_MODEL_DIR
    if not (path / "config.json").is_file():
        if _is_main_process():
            tmp = path.with_name(path.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            save_tiny_model(tmp)
            shutil.rmtree(path, ignore_errors=True)
            os.replace(tmp, path)
        else:
            _wait_for(path / "config.json")
    return str(path.resolve())


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _wait_for(path: Path, timeout: float = 120) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise BelleError(f"timed out waiting for {path} from the main process")
        time.sleep(0.2)


def lora_target_modules(recipe: Recipe, model_type: str | None) -> list[str] | str:
    if recipe.lora.target_modules:
        return recipe.lora.target_modules
    return LORA_TARGET_MODULES.get(model_type or "", "all-linear")


def build_peft_config(recipe: Recipe, model_type: str | None):
    from peft import LoraConfig

    return LoraConfig(
        r=recipe.lora.r,
        lora_alpha=recipe.lora.alpha,
        lora_dropout=recipe.lora.dropout,
        target_modules=lora_target_modules(recipe, model_type),
        modules_to_save=recipe.lora.modules_to_save,
        task_type="CAUSAL_LM",
    )


def build_quantization_config():
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


# ----------------------------------------------------------------------------------- config
def build_sft_config(recipe: Recipe, has_eval: bool = False):
    """``SFTConfig`` from the recipe: project defaults < device settings < the recipe's ``training``."""
    from trl import SFTConfig

    values = sft_config_values(recipe, has_eval)
    try:
        return SFTConfig(**values)
    except (ValueError, TypeError) as error:
        raise BelleError(f"invalid training settings: {error}") from None


def sft_config_values(recipe: Recipe, has_eval: bool = False, gpu: bool | None = None) -> dict[str, Any]:
    """The keyword arguments :func:`build_sft_config` gives ``SFTConfig`` (DeepSpeed config resolved to a
    file), for this machine or, with ``gpu``, for a machine with or without a GPU."""
    recipe.check_training_fields()
    training = dict(recipe.training)
    values: dict[str, Any] = {
        "output_dir": recipe.output_dir,
        "assistant_only_loss": True,
        "max_length": 1024,
        "seed": recipe.seed,
        "report_to": "none",
        "save_total_limit": 2,
        "logging_steps": 10,
    }
    if has_eval:
        values["eval_strategy"] = "epoch"
    if "gradient_checkpointing" not in training:
        # TRL's default (on) under transformers' current name: through TRL's own default of the
        # deprecated `gradient_checkpointing`, every run warned that the name is deprecated.
        values["activation_checkpointing"] = True
    if recipe.method == "full":
        values["learning_rate"] = 2e-5
    else:
        values["learning_rate"] = 2e-4
    values.update(device_defaults(training, gpu))
    values.update(training)
    if recipe.dataset_num_proc is not None:
        values["dataset_num_proc"] = recipe.dataset_num_proc
    if values.get("deepspeed"):
        values["deepspeed"] = resolve_deepspeed_config(values["deepspeed"])
    if values.get("packing") and values.get("max_length") is None:
        raise BelleError("training.packing needs training.max_length (the length of a packed row)")
    return values


def resolve_deepspeed_config(value: Any) -> Any:
    """A DeepSpeed config path as given, else a file of ``recipes/deepspeed`` (here or shipped with belle-hf)."""
    if isinstance(value, dict):
        return value
    path = Path(str(value)).expanduser()
    if path.is_file():
        return str(path)
    for folder in (Path.cwd() / "recipes" / "deepspeed", shipped_path("recipes", "deepspeed")):
        if (folder / path.name).is_file():
            return str(folder / path.name)
    raise BelleError(f"training.deepspeed: {value!r} is not a file")


# -------------------------------------------------------------------------------------- data
def prepare_data(recipe: Recipe, *, max_examples: int | None = None) -> PreparedData:
    """Load, mix, split and tokenize the recipe's data (the model itself is not loaded)."""
    recipe.check_data_names()
    recipe.check_training_fields()
    model_path = resolve_model_path(recipe)
    trust = bool((recipe.training or {}).get("trust_remote_code", False))
    tokenizer = load_tokenizer(model_path, trust_remote_code=trust)
    from belle_hf.train.template import resolve_chat_template

    chat_template = resolve_chat_template(tokenizer, recipe.template)
    tokenizer.chat_template = chat_template
    max_length = recipe.training.get("max_length", 1024)
    splits = tokenize_recipe(recipe, tokenizer, chat_template, max_length, max_examples=max_examples,
                             model_path=model_path)
    return PreparedData(**vars(splits), model_path=model_path, tokenizer=tokenizer, chat_template=chat_template)


def prepared_before(recipe: Recipe) -> TokenizedSplits | None:
    """The recipe's prepared data when an earlier preparation of the very same files is on record,
    found without loading the tokenizer (whose import and load are most of a rerun's cost); else
    ``None``. Only reports use this: training always loads the tokenizer and checks the full key."""
    from belle_hf.train import prepared

    recipe.check_data_names()
    recipe.check_training_fields()
    files_key = recipe_files_key(recipe, resolve_model_path(recipe))
    folder = prepared.recall(files_key) if files_key else None
    return load_prepared(folder, None, hit=True) if folder else None


def preview(recipe: Recipe, n: int) -> tuple[list[tuple[str, str]], TruncationReport]:
    """The first ``n`` processed training examples as (full decoded input, decoded loss tokens), and
    the report of what tokenizing made of them (conversations dropped for lack of trained tokens)."""
    from belle_hf.train.template import decode_example

    data = prepare_data(recipe, max_examples=n)
    examples = [decode_example(data.tokenizer, row["input_ids"], row["assistant_masks"])
                for row in data.train_dataset.select(range(min(n, len(data.train_dataset))))]
    return examples, data.truncation


# ----------------------------------------------------------------------------------- trainer
def build_trainer(recipe: Recipe, data: PreparedData | None = None, callbacks: list | None = None):
    """A ready ``SFTTrainer`` for ``recipe`` and the prepared data it trains on."""
    check_method_supported(recipe)
    data = data or prepare_data(recipe)
    args = build_sft_config(recipe, has_eval=data.eval_dataset is not None)
    from transformers import AutoConfig
    from trl import SFTTrainer

    model_type = AutoConfig.from_pretrained(data.model_path, trust_remote_code=args.trust_remote_code).model_type
    peft_config = build_peft_config(recipe, model_type) if recipe.is_peft else None
    quantization_config = build_quantization_config() if recipe.method == "qlora" else None
    trainer = SFTTrainer(
        model=data.model_path,
        args=args,
        train_dataset=data.train_dataset,
        eval_dataset=data.eval_dataset,
        processing_class=data.tokenizer,
        peft_config=peft_config,
        quantization_config=quantization_config,
        callbacks=callbacks,
    )
    # Without this, the model builds a KV cache in training forwards, transformers then skips the
    # packed-sequence mask derived from position_ids, and packed conversations attend to each other.
    trainer.model.config.use_cache = False
    if args.packing and args.packing_strategy != "bfd":
        # bfd keeps each conversation's start, which the preflight checked holds a trained token;
        # bfd_split and wrapped packing can fill a row with prompt pieces alone.
        trainer.train_dataset = drop_fully_masked_rows(trainer.train_dataset)
    return trainer, data


def plan(recipe: Recipe, overwrite: bool = False) -> RunPlan:
    """What training ``recipe`` does with its output folder (see :mod:`belle_hf.train.run_folder`):
    nothing (its finished run is there), resume from a complete checkpoint, start afresh, or refuse
    (:class:`~belle_hf.train.run_folder.RecipeConflict`: the folder holds another recipe's run)."""
    from belle_hf.train.recipe import read_yaml

    return plan_run(Path(recipe.output_dir), read_yaml(public_recipe(recipe).to_yaml()), overwrite=overwrite,
                    main_process=_is_main_process())


def train(recipe: Recipe, callbacks: list | None = None, *, overwrite: bool = False) -> TrainResult:
    """Train ``recipe`` and write its outputs.

    A rerun of the same recipe resumes from the newest complete checkpoint (incomplete ones, cut short
    by a kill while saving, are set aside), or does nothing when the run finished. A folder holding
    another recipe's run is refused unless ``overwrite`` (which removes that run's files first);
    changes that are safe to resume are listed in :mod:`belle_hf.train.run_folder`.

    Outputs in ``recipe.output_dir``: the adapter (LoRA/QLoRA) or the full weights in safetensors,
    the tokenizer with its chat template, ``metrics.json``, ``recipe.yaml`` and a model card draft
    ``README.md``. ``callbacks`` are ``transformers.TrainerCallback`` objects added to the trainer.
    """
    from belle_hf.quiet import quiet_third_party_logs
    from belle_hf.train.threads import use_cpu_threads

    quiet_third_party_logs()
    recipe.check_training_fields()
    recipe.check_data_names()
    check_method_supported(recipe)
    output_dir = Path(recipe.output_dir)
    run = plan(recipe, overwrite)
    if run.finished_metrics is not None:
        return TrainResult(output_dir, run.finished_metrics, completed_before=True)
    if run.resume_from:
        logger.info("resuming from %s", run.resume_from)
    if not cuda_available() or recipe.training.get("use_cpu"):
        use_cpu_threads()
    trainer, data = build_trainer(recipe, callbacks=callbacks)
    if _is_main_process():  # the data and the model are ready: from here on the folder holds this run
        start_run(output_dir, public_recipe(recipe).to_yaml(), run, keep_base_model=recipe.model == TINY_MODEL)
    logger.info("training on %d conversations%s", len(data.train_dataset),
                f", evaluating on {len(data.eval_dataset)}" if data.eval_dataset is not None else "")
    with resume_hint(lambda: interrupted_hint(output_dir)):
        try:
            train_output = trainer.train(resume_from_checkpoint=run.resume_from)
        except KeyboardInterrupt:
            close_progress_bars(trainer)
            raise
    metrics: dict[str, Any] = {"train": dict(train_output.metrics)}
    if data.eval_dataset is not None:
        metrics["eval"] = trainer.evaluate()
    metrics["examples"] = {"train": len(data.train_dataset),
                           "eval": len(data.eval_dataset) if data.eval_dataset is not None else 0}
    metrics["world_size"] = trainer.args.world_size
    metrics["truncation"] = vars(data.truncation)
    if data.eval_truncation is not None:
        metrics["eval_truncation"] = vars(data.eval_truncation)
    metrics["log_history"] = trainer.state.log_history
    save_outputs(trainer, recipe, data, metrics)
    return TrainResult(output_dir, metrics, run.resume_from, set_aside=run.set_aside)


def close_progress_bars(trainer) -> None:
    """End the Trainer's progress bars' line: an interrupt leaves them open, and the one-line message
    that follows would be glued to the end of the bar."""
    for callback in trainer.callback_handler.callbacks:
        for name in ("training_bar", "prediction_bar"):
            bar = getattr(callback, name, None)
            if bar is not None:
                bar.close()


def interrupted_hint(output_dir: Path) -> str:
    """What an interrupted training kept, and how to go on (printed by ``belle``'s entry point)."""
    saved = checkpoints(output_dir)
    if not saved:
        return f"no checkpoint was saved yet in {output_dir}; rerun the same command to start again"
    return f"{saved[0].name} and earlier checkpoints are kept in {output_dir}; rerun the same command to resume"


def save_outputs(trainer, recipe: Recipe, data: PreparedData, metrics: dict[str, Any]) -> None:
    """Save weights and tokenizer through a temporary folder (renamed in file by file), then the
    metrics, the recipe and the model card, each written atomically."""
    import json

    from belle_hf.train.card import record_run

    output_dir = Path(recipe.output_dir)
    staging = output_dir / STAGING_DIR
    trainer.save_model(str(staging))  # weights (or adapter) and the tokenizer with its chat template
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return
    for item in staging.iterdir():
        target = output_dir / item.name
        if target.is_dir() and not item.is_dir():
            shutil.rmtree(target)
        os.replace(item, target)
    shutil.rmtree(staging, ignore_errors=True)
    public = public_recipe(recipe)
    atomic_write_text(output_dir / RECIPE_FILE, public.to_yaml())
    atomic_write_text(output_dir / METRICS_FILE, json.dumps(metrics, indent=2, ensure_ascii=False, default=str))
    record_run(output_dir, public, data.model_path)  # portable adapter config, lineage record, card


def public_recipe(recipe: Recipe) -> Recipe:
    """A copy of ``recipe`` without secrets (``hub_token``; recipes refuse it, this is belt and braces)."""
    import copy

    public = copy.deepcopy(recipe)
    public.training = {key: value for key, value in public.training.items() if key not in SECRET_FIELDS}
    return public
