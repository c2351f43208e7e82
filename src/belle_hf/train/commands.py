"""``belle train``, ``belle merge`` and ``belle vocab extend``: parse arguments, call :mod:`belle_hf.train`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer

vocab_app = typer.Typer(help="Vocabulary extension (BELLE's LLaMA-EXT).", no_args_is_help=True)


def train_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML file (see recipes/)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides, dotted for nested fields "
                                                    "(lora.r=16, training.learning_rate=1e-4, data.0.max_samples=100)."),
    preview: int = typer.Option(0, "--preview", help="Print the first N processed training examples (full input, "
                                "then only the tokens that carry loss) and exit without training."),
    nproc: int = typer.Option(1, "--nproc", help="Number of training processes on this machine (torchrun; gloo on CPU)."),
) -> None:
    """Fine-tune a model as RECIPE says (TRL SFTTrainer: full, LoRA or QLoRA). Rerunning resumes from the last checkpoint."""
    from belle_hf.errors import BelleError
    from belle_hf.train.recipe import load_recipe

    overrides = list(overrides or [])
    loaded = load_recipe(recipe, overrides)
    if preview:
        from belle_hf.train.trainer import preview as preview_examples

        examples, report = preview_examples(loaded, preview)
        for index, (full, trained) in enumerate(examples):
            typer.echo(f"=== example {index}: input ===\n{full}\n=== example {index}: tokens with loss ===\n{trained}\n")
        typer.echo(f"dropped: {report.dropped_message()}")
        return
    if nproc > 1:
        from belle_hf.train.launch import launch
        from belle_hf.train.trainer import check_method_supported

        check_method_supported(loaded)
        code = launch(str(recipe), overrides, nproc)
        if code != 0:
            raise BelleError(f"the {nproc}-process training failed (exit code {code}); see the log above")
        typer.echo(f"trained model written to {loaded.output_dir}")
        return
    if nproc < 1:
        raise BelleError("--nproc must be at least 1")
    from belle_hf.train.trainer import train

    result = train(loaded)
    if int(os.environ.get("RANK", "0")) != 0:  # a worker of --nproc: the launcher reports
        return
    if result.completed_before:
        typer.echo(f"{result.output_dir} already holds this recipe's finished run; delete it to train again")
        return
    if result.resumed_from:
        typer.echo(f"resumed from {result.resumed_from}")
    typer.echo(f"trained model written to {result.output_dir}")


def prepare_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML file (see recipes/)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides, as for belle train."),
) -> None:
    """Load, mix and tokenize RECIPE's data ahead of time (no model loaded, no GPU needed); `belle train`
    on the same recipe then starts without tokenizing. Prints the prepared folder, its size, the row and
    token counts and the truncation report."""
    from belle_hf.train.prepared import folder_size
    from belle_hf.train.recipe import load_recipe
    from belle_hf.train.trainer import prepare_data

    data = prepare_data(load_recipe(recipe, list(overrides or [])))
    if data.cache_dir is None:
        typer.echo("prepared, but not cached: a data source cannot be fingerprinted (a Hub dataset while offline)")
    else:
        state = "already prepared" if data.cache_hit else "prepared now"
        typer.echo(f"prepared data: {data.cache_dir} ({folder_size(data.cache_dir) / 2**20:.1f} MiB, {state})")
    for name, report in (("train", data.truncation), ("eval", data.eval_truncation)):
        if report is not None:
            typer.echo(f"{name}: {report.rows} conversations, {report.tokens} tokens ({report.trained_tokens} trained)")
            typer.echo(f"{name}: {report.message()}")
            typer.echo(f"{name}: {report.dropped_message()}")


def merge_command(
    adapter: Path = typer.Argument(..., help="LoRA output folder (adapter_config.json + adapter weights)."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for the merged full model."),
    base: Optional[str] = typer.Option(None, "--base", help="Base model (default: the one the adapter names)."),
) -> None:
    """Merge a LoRA adapter into its base model and save the full model (safetensors) with the tokenizer."""
    from belle_hf.train.merge import merge_adapter

    path = merge_adapter(adapter, out, base_model=base)
    typer.echo(f"merged model written to {path}")


@vocab_app.command("extend")
def vocab_extend(
    base: str = typer.Option(..., "--base", help="Base tokenizer (folder or Hub id)."),
    corpus: List[Path] = typer.Option(..., "--corpus", help="Chinese text files (.txt lines, or .jsonl/.json with "
                                      "conversations); repeat for several."),
    vocab_size: int = typer.Option(..., "--vocab-size", help="Size of the new Chinese vocabulary to train."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for the extended tokenizer (and model)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model whose embeddings to resize (default: --base "
                                        "when it holds a model)."),
    heldout: Optional[Path] = typer.Option(None, "--heldout", help="Held-out Chinese text for tokens-per-character "
                                           "(default: the last 10% of the corpus lines)."),
) -> None:
    """Train a Chinese vocabulary, add its new pieces to the base tokenizer (existing ids unchanged),
    resize the model's embeddings (mean init) and report tokens per character before and after."""
    from belle_hf.train.vocab import extend_vocab

    report = extend_vocab(base, [str(path) for path in corpus], vocab_size, out, model=model,
                          heldout=str(heldout) if heldout else None)
    typer.echo(f"added {report.added_tokens} tokens ({report.old_vocab_size} -> {report.new_vocab_size}); "
               f"tokens per character on held-out text: {report.tokens_per_char_before:.3f} -> "
               f"{report.tokens_per_char_after:.3f}")
    typer.echo(f"extended tokenizer{' and model' if report.model_resized else ''} written to {out}")


def register(app: typer.Typer) -> None:
    # ``belle data prepare`` belongs in the data group but needs the recipe, tokenizer and template of
    # training: it is mounted from here so that belle_hf.data never imports belle_hf.train.
    from belle_hf.data.commands import data_app

    data_app.command("prepare")(prepare_command)
    app.command("train")(train_command)
    app.command("merge")(merge_command)
    app.add_typer(vocab_app, name="vocab")
