"""The model card draft written beside the trained weights (the hub stage publishes it).

Built with ``huggingface_hub.ModelCard`` / ``ModelCardData``: metadata (base model, datasets,
library, tags) in the YAML header, and the method, data mix and hyper-parameters in the body.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from belle_hf.train.recipe import SAMPLE_PREFIX, TINY_MODEL, Recipe

# SFTConfig fields worth a line in the card, in this order, when the recipe sets them.
CARD_HYPERPARAMETERS = (
    "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
    "lr_scheduler_type", "warmup_steps", "weight_decay", "max_length", "packing", "packing_strategy",
    "bf16", "fp16", "deepspeed", "gradient_checkpointing",
)


def hub_dataset_ids(recipe: Recipe) -> list[str]:
    """Hub dataset ids of the recipe's data (BELLE corpora and ``owner/name`` ids; files are left out)."""
    from belle_hf.data.registry import resolve_corpus

    ids = []
    for source in recipe.data:
        corpus = resolve_corpus(source.path)
        if corpus is not None:
            ids.append(corpus.repo_id)
        elif source.path.startswith("hf://datasets/"):
            ids.append("/".join(source.path[len("hf://datasets/"):].split("/")[:2]))
        elif (source.path.count("/") == 1 and not source.path.startswith((".", "/", SAMPLE_PREFIX))
              and not Path(source.path).exists()):
            ids.append(source.path)
    return list(dict.fromkeys(ids))


def base_model_id(recipe: Recipe) -> str | None:
    """The Hub id of the base model, or ``None`` for local folders and the tiny test model."""
    if recipe.model == TINY_MODEL or Path(recipe.model).expanduser().exists():
        return None
    return recipe.model


def build_model_card(recipe: Recipe, metrics: dict[str, Any] | None = None, model_path: str | None = None):
    """A ``huggingface_hub.ModelCard`` describing the run of ``recipe``."""
    from huggingface_hub import ModelCard, ModelCardData

    from belle_hf.data.registry import RESEARCH_USE_NOTICE, resolve_corpus

    metrics = metrics or {}
    base = base_model_id(recipe)
    data = ModelCardData(
        base_model=base,
        datasets=hub_dataset_ids(recipe) or None,
        library_name="peft" if recipe.is_peft else "transformers",
        language=["zh"],
        pipeline_tag="text-generation",
        tags=["belle", "trl", "sft", recipe.method],
    )
    if base:
        data.base_model_relation = "adapter" if recipe.is_peft else "finetune"
    method = {"full": "full-parameter fine-tuning", "lora": "LoRA", "qlora": "QLoRA (4-bit NF4 base)"}[recipe.method]
    lines = [f"# {Path(recipe.output_dir).name}", ""]
    lines.append(f"Supervised fine-tuning of `{base or recipe.model if recipe.model != TINY_MODEL else 'tiny'}` "
                 f"with {method}, trained with TRL's `SFTTrainer` by belle-hf.")
    if recipe.description:
        lines += ["", recipe.description.strip()]
    lines += ["", "## Training data", "", "| source | weight | max samples |", "| --- | --- | --- |"]
    for source in recipe.data:
        lines.append(f"| `{source.path}` | {source.weight if source.weight is not None else '-'} | "
                     f"{source.max_samples if source.max_samples is not None else 'all'} |")
    examples = metrics.get("examples", {})
    if examples:
        lines += ["", (f"{examples.get('train', 0)} training conversations, {examples.get('eval', 0)} held out for "
                       "evaluation. Loss on assistant replies only (every turn).")]
    truncation = metrics.get("truncation") or {}
    if truncation.get("too_long"):
        lines += ["", (f"{truncation['too_long']} conversations were longer than max_length="
                       f"{truncation['max_length']} tokens ({truncation['policy']}).")]
    if any(resolve_corpus(source.path) for source in recipe.data):
        lines += ["", f"BELLE's data: {RESEARCH_USE_NOTICE}"]
    lines += ["", "## Method and hyper-parameters", "", "| setting | value |", "| --- | --- |",
              f"| method | {recipe.method} |", f"| chat template | {recipe.template} |", f"| seed | {recipe.seed} |"]
    if recipe.is_peft:
        lines += [f"| LoRA r / alpha / dropout | {recipe.lora.r} / {recipe.lora.alpha} / {recipe.lora.dropout} |",
                  f"| LoRA target modules | {recipe.lora.target_modules or 'per-architecture default'} |"]
    for key in CARD_HYPERPARAMETERS:
        if key in recipe.training:
            lines.append(f"| {key} | {recipe.training[key]} |")
    results = {**(metrics.get("train") or {}), **(metrics.get("eval") or {})}
    if results:
        lines += ["", "## Results", "", "| metric | value |", "| --- | --- |"]
        lines += [f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |"
                  for key, value in results.items()]
    lines += ["", "## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
              "tokenizer = AutoTokenizer.from_pretrained(PATH)  # BELLE's chat template is saved with it",
              "messages = [{\"role\": \"user\", \"content\": \"你好\"}]",
              "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\")",
              "```", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))
