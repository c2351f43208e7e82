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


def register(app: typer.Typer) -> None:
    app.add_typer(hub_app, name="hub")
    app.add_typer(xor_app, name="xor")
