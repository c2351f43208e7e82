"""``belle xor ...`` and ``belle hub ...`` commands: thin wrappers over :mod:`belle_hf.hub`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

xor_app = typer.Typer(help="Lossless XOR diffs of fine-tunes of license-restricted bases (and BELLE's legacy "
                      ".enc files).", no_args_is_help=True)
hub_app = typer.Typer(help="Push models, adapters, quantized models, XOR diffs and datasets to the Hub "
                      "(any HF_ENDPOINT) with generated, validated cards.", no_args_is_help=True)


@xor_app.command("encode")
def xor_encode(
    base: Path = typer.Option(..., "--base", help="The base model: HF folder (safetensors or .bin) or Meta's "
                              "consolidated.*.pth (folder or file)."),
    target: Path = typer.Option(..., "--target", help="The fine-tuned model folder (safetensors)."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write the diff to."),
) -> None:
    """Write the XOR diff of TARGET against BASE: publishable, decodable only with BASE."""
    from belle_hf.hub.xor import encode

    report = encode(base, target, output)
    typer.echo(f"diff written to {output}: {report.summary()}, {report.diff_bytes / 2**20:.1f} MiB stored")


@xor_app.command("decode")
def xor_decode(
    base: Path = typer.Option(..., "--base", help="The base model the diff was made from."),
    diff: Path = typer.Option(..., "--diff", help="The diff folder (xor_manifest.json and *.xor files)."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to rebuild the target model in."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Threads (default: up to 4)."),
) -> None:
    """Rebuild the target model byte for byte; a wrong BASE fails before anything is written."""
    from belle_hf.hub.xor import decode

    report = decode(base, diff, output, workers=workers)
    typer.echo(f"decoded to {output}: {report.summary()}")


@xor_app.command("decode-legacy")
def xor_decode_legacy(
    enc_files: List[Path] = typer.Argument(..., help="BELLE / point-alpaca NAME.<sha256>.enc files."),
    key: Path = typer.Option(..., "--key", help="The original base file used as key (e.g. consolidated.00.pth)."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write the decoded files to."),
) -> None:
    """Decode legacy .enc files; a wrong key leaves no output file behind."""
    from belle_hf.hub.xor import legacy_decode

    for enc_file in enc_files:
        typer.echo(f"decoded {enc_file} -> {legacy_decode(enc_file, key, output)}")


@xor_app.command("encode-legacy")
def xor_encode_legacy(
    files: List[Path] = typer.Argument(..., help="Plain files to encode."),
    key: Path = typer.Option(..., "--key", help="The base file used as key."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write NAME.<sha256>.enc files to."),
) -> None:
    """Encode files in BELLE's legacy .enc format (for tools that only read that format)."""
    from belle_hf.hub.xor import legacy_encode

    for file in files:
        typer.echo(f"encoded {file} -> {legacy_encode(file, key, output)}")


def card_options(**help_overrides: str):
    """Add the :class:`~belle_hf.hub.cards.CardOptions` fields to a command as typer options (flag and
    help from each field's metadata; ``help_overrides`` by field name) and hand the command one
    ``card: CardOptions``. The seven options are declared once, in the dataclass."""
    import functools
    import inspect
    from dataclasses import fields

    from belle_hf.hub.cards import CardOptions

    def decorate(command):
        signature = inspect.signature(command)
        kept = [param for name, param in signature.parameters.items() if name != "card"]
        annotations = {name: value for name, value in command.__annotations__.items() if name != "card"}
        added = []
        for option in fields(CardOptions):
            annotation = Optional[List[str]] if option.metadata["repeatable"] else Optional[str]
            default = typer.Option(None, option.metadata["flag"],
                                   help=help_overrides.get(option.name, option.metadata["help"]))
            added.append(inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                           annotation=annotation))
            annotations[option.name] = annotation

        @functools.wraps(command)
        def with_card(**values):
            card = CardOptions(**{option.name: values.pop(option.name) for option in fields(CardOptions)})
            return command(card=card, **values)

        with_card.__signature__ = signature.replace(parameters=kept + added)
        with_card.__annotations__ = annotations
        return with_card

    return decorate


@hub_app.command("push-model")
@card_options()
def push_model(
    folder: Path = typer.Argument(..., help="Model folder (save_pretrained output)."),
    repo_id: str = typer.Argument(..., help="namespace/name on the Hub (HF_ENDPOINT)."),
    merged: bool = typer.Option(False, "--merged", help="An adapter merged into its base (relation: merge); "
                                "default: what the folder's lineage says."),
    private: bool = typer.Option(False, "--private"),
    include_training_state: bool = typer.Option(False, "--include-training-state",
                                                help="Also upload checkpoints, optimizer/scheduler/RNG states."),
    card=None,
) -> None:
    """Push a fine-tuned model folder with a card built from its records and validated."""
    from belle_hf.hub.push import push_model as push

    result = push(folder, repo_id, merged=merged, private=private, include_training_state=include_training_state,
                  options=card)
    typer.echo(result.summary())


@hub_app.command("push-adapter")
@card_options()
def push_adapter(
    folder: Path = typer.Argument(..., help="peft adapter folder (adapter_config.json + weights)."),
    repo_id: str = typer.Argument(..., help="namespace/name on the Hub (HF_ENDPOINT)."),
    private: bool = typer.Option(False, "--private"),
    include_training_state: bool = typer.Option(False, "--include-training-state"),
    card=None,
) -> None:
    """Push a LoRA adapter (never its base model) with a generated, validated card (relation: adapter)."""
    from belle_hf.hub.push import push_adapter as push

    result = push(folder, repo_id, private=private, include_training_state=include_training_state, options=card)
    typer.echo(result.summary())


@hub_app.command("push-quantized")
@card_options()
def push_quantized(
    folder: Path = typer.Argument(..., help="Quantized model folder (GPTQ/AWQ/bnb) or folder of GGUF files."),
    repo_id: str = typer.Argument(..., help="namespace/name on the Hub (HF_ENDPOINT)."),
    quantization: Optional[str] = typer.Option(None, "--quantization", help="e.g. 'GPTQ 4-bit' (default: detected)."),
    private: bool = typer.Option(False, "--private"),
    card=None,
) -> None:
    """Push a quantized model with a generated, validated card (relation: quantized)."""
    from belle_hf.hub.push import push_quantized as push

    result = push(folder, repo_id, private=private, quantization=quantization, options=card)
    typer.echo(result.summary())


@hub_app.command("push-xor")
@card_options(base_model="Hub id of the license-restricted base (default: from the diff's lineage).",
              license="Hub license id of the decoded weights (default: other, with LLaMA-1's license name and link).")
def push_xor(
    diff: Path = typer.Argument(..., help="Diff folder from `belle xor encode`."),
    repo_id: str = typer.Argument(..., help="namespace/name on the Hub (HF_ENDPOINT)."),
    private: bool = typer.Option(False, "--private"),
    gated: bool = typer.Option(True, "--gated/--not-gated", help="Require manual access approval."),
    card=None,
) -> None:
    """Push an XOR diff with decode instructions and gated access."""
    from belle_hf.hub.push import push_xor as push

    result = push(diff, repo_id, private=private, gated=gated, options=card)
    typer.echo(result.summary())


@hub_app.command("push-dataset")
def push_dataset(
    source: str = typer.Argument(..., help="Corpus name, file (any BELLE schema) or folder."),
    repo_id: str = typer.Argument(..., help="namespace/name on the Hub (HF_ENDPOINT)."),
    license: Optional[str] = typer.Option(None, "--license", help="Hub license id (default: the corpus's)."),
    schema: Optional[str] = typer.Option(None, "--schema", help="Source schema (default: detected)."),
    config_name: str = typer.Option("messages", "--config-name"),
    split: str = typer.Option("train", "--split"),
    private: bool = typer.Option(False, "--private"),
) -> None:
    """Normalize SOURCE to `messages` and push it as parquet with a validated dataset card."""
    from belle_hf.hub.push import push_dataset as push

    result = push(source, repo_id, private=private, license=license, schema=schema, config_name=config_name,
                  split=split)
    typer.echo(result.summary())


def register(app: typer.Typer) -> None:
    app.add_typer(hub_app, name="hub")
    app.add_typer(xor_app, name="xor")
