"""Supervised fine-tuning with TRL's ``SFTTrainer`` + peft: full, LoRA and QLoRA, BELLE's template,
exact assistant-only loss masks, packing, recipes of the BELLE papers, several processes.

>>> from belle_hf.train import load_recipe, train
>>> recipe = load_recipe("recipes/quickstart.yaml", ["training.max_steps=20", "output_dir=runs/quickstart-20"])
>>> result = train(recipe)            # weights, tokenizer, metrics.json, README.md in recipe.output_dir

Heavy libraries load inside the functions, so importing this package is cheap.
"""

from belle_hf.train.recipe import DataSource, LoraSettings, Recipe, apply_overrides, load_recipe

__all__ = [
    "DataSource",
    "LoraSettings",
    "Recipe",
    "apply_overrides",
    "build_trainer",
    "extend_vocab",
    "load_recipe",
    "merge_adapter",
    "preview",
    "tokenize_conversation",
    "train",
]


def __getattr__(name: str):
    if name in ("build_trainer", "preview", "train"):
        from belle_hf.train import trainer

        return getattr(trainer, name)
    if name == "merge_adapter":
        from belle_hf.train.merge import merge_adapter

        return merge_adapter
    if name == "extend_vocab":
        from belle_hf.train.vocab import extend_vocab

        return extend_vocab
    if name == "tokenize_conversation":
        from belle_hf.train.template import tokenize_conversation

        return tokenize_conversation
    raise AttributeError(name)
