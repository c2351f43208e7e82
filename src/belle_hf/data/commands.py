"""``belle data ...`` commands: thin wrappers over :mod:`belle_hf.data`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

data_app = typer.Typer(help="Load, convert, clean, deduplicate, inspect and publish BELLE data.",
                       no_args_is_help=True)

SCHEMA_HELP = "auto|alpaca|belle-multiturn|generated-chat|conversations|messages"


@data_app.command("convert")
def convert(
    src: Path = typer.Argument(..., help="JSON Lines, JSON array or parquet file in any BELLE schema."),
    output: Path = typer.Option(..., "-o", "--output", help="Output .jsonl (or .parquet) of {\"messages\": [...]}."),
    schema: str = typer.Option("auto", "--schema", help=SCHEMA_HELP),
    on_error: str = typer.Option("raise", "--on-error", help="raise: stop at the first bad record and write "
                                 "nothing; skip: keep the good records and report the bad ones."),
) -> None:
    """Normalize SRC to TRL's conversational format, one {"messages": [...]} object per line."""
    from belle_hf.data.convert import convert_file
    from belle_hf.data.schemas import SCHEMAS
    from belle_hf.errors import BelleError

    if schema != "auto" and schema not in SCHEMAS:
        raise BelleError(f"--schema must be one of {SCHEMA_HELP}, not {schema!r}")
    if on_error not in ("raise", "skip"):
        raise BelleError(f"--on-error must be raise or skip, not {on_error!r}")
    report = convert_file(src, output, schema=schema, on_error=on_error)
    typer.echo(report.summary())
    if report.skipped:
        typer.echo(f"skipped {report.skipped} bad records:", err=True)
        for where in report.skipped_at:
            typer.echo(f"  {where}", err=True)
        if report.skipped > len(report.skipped_at):
            typer.echo(f"  ... and {report.skipped - len(report.skipped_at)} more", err=True)


@data_app.command("corpora")
def corpora() -> None:
    """List the BELLE corpora in the registry (Hub id, file, schema, size, license)."""
    from belle_hf.data.registry import CORPORA

    for corpus in CORPORA.values():
        typer.echo(f"{corpus.name:22} {corpus.repo_id:32} {corpus.schema:16} ~{corpus.approx_rows:>9,} rows  "
                   f"{corpus.license} (research use only)")


@data_app.command("head")
def head(
    name_or_path: str = typer.Argument(..., help="Corpus name, Hub id, hf:// path, file or folder."),
    n: int = typer.Option(3, "-n", help="How many normalized records to print."),
    schema: Optional[str] = typer.Option(None, "--schema", help=SCHEMA_HELP),
    split: str = typer.Option("train", "--split"),
) -> None:
    """Stream the first N records of a dataset, normalized, as JSON Lines."""
    import json

    from belle_hf.data.loading import load

    dataset = load(name_or_path, split=split, streaming=True, schema=schema)
    for record in dataset.take(n):
        typer.echo(json.dumps(record, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
