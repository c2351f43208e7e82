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
from belle_hf.io import atomic_write_text
from belle_hf.shipped import shipped_path
from belle_hf.train.dataset import TruncationReport, mix_sources, split_eval, tokenize_dataset
from belle_hf.train.recipe import SECRET_FIELDS, TINY_MODEL, Recipe

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

METRICS_FILE = "metrics.json"
RECIPE_FILE = "recipe.yaml"
BASE_MODEL_DIR = "base-model"


@dataclass
class PreparedData:
    """Tokenizer, template and tokenized datasets of a recipe (no model loaded)."""

    model_path: str
    tokenizer: Any
    chat_template: str
    train_dataset: Any
    eval_dataset: Any
    truncation: TruncationReport
    eval_truncation: TruncationReport | None = None


@dataclass
class TrainResult:
    output_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    resumed_from: str | None = None
    """The checkpoint an interrupted run went on from."""
    completed_before: bool = False
    """The output folder already held this recipe's finished run; nothing was trained."""


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


def load_tokenizer(model_path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    except OSError as error:
        raise BelleError(f"cannot load the tokenizer of {model_path!r}: {error}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


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
    if recipe.method == "full":
        values["learning_rate"] = 2e-5
    else:
        values["learning_rate"] = 2e-4
    values.update(device_defaults(training, gpu))
    values.update(training)
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
    mixed = mix_sources(recipe)
    train_raw, eval_raw = split_eval(mixed, recipe)
    if max_examples is not None:
        train_raw = train_raw.select(range(min(max_examples, len(train_raw))))
    max_length = recipe.training.get("max_length", 1024)
    num_proc = recipe.training.get("dataset_num_proc")
    train_dataset, report = tokenize_dataset(train_raw, tokenizer, chat_template, max_length, recipe.truncation,
                                             "train", num_proc)
    eval_dataset, eval_report = None, None
    if eval_raw is not None and max_examples is None:
        eval_dataset, eval_report = tokenize_dataset(eval_raw, tokenizer, chat_template, max_length,
                                                     recipe.truncation, "eval", num_proc)
    return PreparedData(model_path, tokenizer, chat_template, train_dataset, eval_dataset, report, eval_report)


def preview(recipe: Recipe, n: int) -> list[tuple[str, str]]:
    """The first ``n`` processed training examples as (full decoded input, decoded loss tokens)."""
    from belle_hf.train.template import decode_example

    data = prepare_data(recipe, max_examples=n)
    return [decode_example(data.tokenizer, row["input_ids"], row["assistant_masks"])
            for row in data.train_dataset.select(range(min(n, len(data.train_dataset))))]


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
    return trainer, data


def finished_run(recipe: Recipe) -> dict[str, Any] | None:
    """The metrics of a finished run of this same recipe in its output folder, else ``None``."""
    import json

    from belle_hf.train.recipe import read_yaml

    output_dir = Path(recipe.output_dir)
    metrics, saved = output_dir / METRICS_FILE, output_dir / RECIPE_FILE
    if not (metrics.is_file() and saved.is_file()):
        return None
    if read_yaml(saved.read_text(encoding="utf-8")) != read_yaml(public_recipe(recipe).to_yaml()):
        return None
    return json.loads(metrics.read_text(encoding="utf-8"))


def last_checkpoint(output_dir: str | os.PathLike) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None


def train(recipe: Recipe, callbacks: list | None = None) -> TrainResult:
    """Train ``recipe`` and write its outputs; rerunning an interrupted run resumes from its last checkpoint.

    Outputs in ``recipe.output_dir``: the adapter (LoRA/QLoRA) or the full weights in safetensors,
    the tokenizer with its chat template, ``metrics.json``, ``recipe.yaml`` and a model card draft
    ``README.md``. ``callbacks`` are ``transformers.TrainerCallback`` objects added to the trainer.
    """
    check_method_supported(recipe)
    output_dir = Path(recipe.output_dir)
    finished = finished_run(recipe)
    if finished is not None:
        logger.info("%s already holds this recipe's finished run; delete it to train again", output_dir)
        return TrainResult(output_dir, finished, completed_before=True)
    resume = last_checkpoint(output_dir)
    if resume:
        logger.info("resuming from %s", resume)
    trainer, data = build_trainer(recipe, callbacks=callbacks)
    logger.info("training on %d conversations%s", len(data.train_dataset),
                f", evaluating on {len(data.eval_dataset)}" if data.eval_dataset is not None else "")
    train_output = trainer.train(resume_from_checkpoint=resume)
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
    return TrainResult(output_dir, metrics, resume)


def save_outputs(trainer, recipe: Recipe, data: PreparedData, metrics: dict[str, Any]) -> None:
    """Save weights and tokenizer through a temporary folder (renamed in file by file), then the
    metrics, the recipe and the model card, each written atomically."""
    import json

    from belle_hf.train.card import record_run

    output_dir = Path(recipe.output_dir)
    staging = output_dir / ".final.tmp"
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
