"""``belle data ...`` commands: thin wrappers over :mod:`belle_hf.data`."""

from __future__ import annotations

from pathlib import Path
from dataclasses import dataclass, field
from typing import Annotated, Optional

import typer

from belle_hf.options import config_options

data_app = typer.Typer(help="Load, convert, clean, deduplicate, inspect and publish BELLE data.",
                       no_args_is_help=True)

SCHEMA_HELP = "auto|alpaca|belle-multiturn|generated-chat|conversations|messages"

@dataclass
class ExecutorOptions:
    """Where a pipeline command (clean, dedup, stats, mix) runs its stages: the options it shares,
    declared once (see :func:`belle_hf.options.config_options`). ``None`` means "not given", so a
    ``--cluster-config`` file's values stand unless a flag overrides them."""

    executor: Optional[str] = field(default=None, metadata={
        "help": "local (default: processes on this machine), slurm or ray (datatrove executors)."})
    workers: Optional[int] = field(default=None, metadata={
        "help": "Tasks run at once (local; default: all cores)."})
    tasks: Optional[int] = field(default=None, metadata={
        "help": "Shards the input is cut into (default: one per 64 MiB); the result does not depend on it."})
    work_dir: Optional[Path] = field(default=None, metadata={
        "help": "Temporary files, kept for a resume after a kill (default: .OUTPUT.belle-work beside the output; "
                "on a cluster a shared folder)."})
    cluster_config: Optional[Path] = field(default=None, metadata={
        "help": "YAML with executor, workers, tasks, work_dir and cluster: the Slurm or Ray options (partition, "
                "time, cpus_per_task, mem_per_cpu_gb, env_command, ...)."})

    def config(self):
        """The library's :class:`~belle_hf.data.pipeline.ExecutorConfig`: the file, then the flags."""
        from belle_hf.data.pipeline import ExecutorConfig

        return ExecutorConfig.from_file(self.cluster_config, executor=self.executor, workers=self.workers,
                                        tasks=self.tasks, work_dir=None if self.work_dir is None else str(self.work_dir))


executor_options = config_options(ExecutorOptions, "run_on",
                                  ("executor", "workers", "tasks", "work_dir", "cluster_config"))


# The near-duplicate test, shared by dedup and mix.
Threshold = Annotated[float, typer.Option("--threshold", help="Jaccard similarity above which rows are near "
                                          "duplicates.")]
Ngram = Annotated[int, typer.Option("--ngram", help="Character n-gram length for MinHash.")]
NumPerm = Annotated[int, typer.Option("--num-perm", help="MinHash permutations.")]
ExactOnly = Annotated[bool, typer.Option("--exact-only", help="Remove exact duplicates only.")]


def _dedup_config(threshold: float, ngram: int, num_perm: int, exact_only: bool):
    from belle_hf.data.dedup import DedupConfig

    return DedupConfig(threshold=threshold, ngram=ngram, num_perm=num_perm, near=not exact_only)


def _echo(result) -> None:
    if result is None:
        typer.echo("submitted; the output appears when the last job ends")
    else:
        typer.echo(result.summary())


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


@data_app.command("clean")
@executor_options
def clean(
    src: Optional[Path] = typer.Argument(None, help="Record file in any BELLE schema (JSON Lines, JSON array or "
                                         "parquet)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output .jsonl (or .parquet) of the kept "
                                          "records (required)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write the cleaning report (JSON) here."),
    rules: Optional[str] = typer.Option(None, "--rules", help="Comma-separated rules to apply (default: all; "
                                        "see --list-rules)."),
    schema: str = typer.Option("auto", "--schema", help=SCHEMA_HELP),
    list_rules: bool = typer.Option(False, "--list-rules", help="Print the rules and exit."),
    run_on: ExecutorOptions = None,
) -> None:
    """Drop rows BELLE's cleaning rules reject (GPT mentions, English answers, empty/truncated, image/link tasks)."""
    from belle_hf.data.clean import clean_file, describe_rules
    from belle_hf.errors import BelleError

    if list_rules:
        for name, description in describe_rules().items():
            typer.echo(f"{name:28} {description}")
        return
    if src is None or output is None:
        raise BelleError("belle data clean needs SRC and -o OUT (or --list-rules)")
    selected = None if rules is None else [name for name in rules.split(",") if name.strip()]
    _echo(clean_file(src, output, rules=selected, schema=schema, report_path=report,
                     executor=run_on.config()))


@data_app.command("dedup")
@executor_options
def dedup(
    src: Path = typer.Argument(..., help="Record file in any BELLE schema."),
    output: Path = typer.Option(..., "-o", "--output", help="Output .jsonl (or .parquet) without duplicates."),
    threshold: Threshold = 0.8,
    ngram: Ngram = 5,
    num_perm: NumPerm = 128,
    exact_only: ExactOnly = False,
    schema: str = typer.Option("auto", "--schema", help=SCHEMA_HELP),
    report: Optional[Path] = typer.Option(None, "--report", help="Write the dedup report (JSON) here."),
    run_on: ExecutorOptions = None,
) -> None:
    """Remove exact duplicates, then near duplicates (MinHash-LSH on character n-grams); keep the first."""
    from belle_hf.data.dedup import dedup_file

    config = _dedup_config(threshold, ngram, num_perm, exact_only)
    _echo(dedup_file(src, output, config=config, schema=schema, report_path=report,
                     executor=run_on.config()))


@data_app.command("stats")
@executor_options
def stats(
    src: str = typer.Argument(..., help="Record file in any BELLE schema, corpus name, Hub id or dataset folder."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Tokenizer (model folder or Hub id) for "
                                            "token-length percentiles."),
    schema: str = typer.Option("auto", "--schema", help=SCHEMA_HELP),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N rows."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    run_on: ExecutorOptions = None,
) -> None:
    """Rows, turns (and turns per row), characters and token-length percentiles of a dataset."""
    from belle_hf.data.files import dump_json
    from belle_hf.data.stats import dataset_stats

    result = dataset_stats(src, tokenizer=tokenizer, schema=schema, limit=limit,
                           executor=run_on.config())
    if result is None:
        _echo(result)
        return
    if as_json:
        typer.echo(dump_json(result.to_dict()), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"belle data stats: {src}")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for name, value in result.table_rows():
        table.add_row(name, value)
    Console().print(table)


@data_app.command("mix")
@executor_options
def mix(
    srcs: list[str] = typer.Argument(..., help="Record files or folders in any BELLE schema; duplicates keep the "
                                     "row of the first source that has it."),
    output: Path = typer.Option(..., "-o", "--output", help="Dataset folder to write: data/train-*.parquet."),
    rules: Optional[str] = typer.Option(None, "--rules", help="Comma-separated cleaning rules (default: all)."),
    threshold: Threshold = 0.8,
    ngram: Ngram = 5,
    num_perm: NumPerm = 128,
    exact_only: ExactOnly = False,
    schema: str = typer.Option("auto", "--schema", help=SCHEMA_HELP),
    report: Optional[Path] = typer.Option(None, "--report", help="Write the mix report (JSON) here."),
    run_on: ExecutorOptions = None,
) -> None:
    """Normalize, clean and deduplicate several corpora together into parquet shards, keeping each row's source."""
    from belle_hf.data.mix import mix as mix_sources

    config = _dedup_config(threshold, ngram, num_perm, exact_only)
    selected = None if rules is None else [name for name in rules.split(",") if name.strip()]
    _echo(mix_sources(srcs, output, rules=selected, config=config, schema=schema, report_path=report,
                      executor=run_on.config()))


@data_app.command("card")
def card(
    corpus: str = typer.Argument(..., help="Registry corpus name (see `belle data corpora`), or 'all'."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for README.md (with 'all': one subfolder "
                                "per corpus, e.g. datasets_scripts)."),
    config_name: str = typer.Option("messages", "--config-name"),
) -> None:
    """Write the Hub dataset card (README.md with configs and dataset_info) of a BELLE corpus."""
    from belle_hf.data.publish import write_card, write_dataset_scripts

    written = write_dataset_scripts(output) if corpus == "all" else [write_card(corpus, output,
                                                                                config_name=config_name)]
    for path in written:
        typer.echo(str(path))


@data_app.command("publish")
def publish(
    src: str = typer.Argument(..., help="Record file in any BELLE schema, or a corpus name."),
    repo_id: str = typer.Argument(..., help="Hub dataset repository (user/name), or a folder with --local."),
    config_name: str = typer.Option("messages", "--config-name", help="Config (subset) name of the data."),
    split: str = typer.Option("train", "--split"),
    private: bool = typer.Option(False, "--private", help="Create the repository private."),
    max_shard_size: str = typer.Option("300MB", "--max-shard-size", help="Largest parquet shard."),
    local: bool = typer.Option(False, "--local", help="Write the repository layout to the folder REPO_ID instead "
                               "of pushing."),
    schema: Optional[str] = typer.Option(None, "--schema", help=SCHEMA_HELP),
    license: Optional[str] = typer.Option(None, "--license", help="License id for the card (default: the "
                                          "corpus's, gpl-3.0 for BELLE corpora)."),
) -> None:
    """Normalize SRC and publish it as a Hub-native dataset: parquet shards + dataset card."""
    from belle_hf.data.publish import publish_local, publish_to_hub

    if local:
        result = publish_local(src, repo_id, config_name=config_name, split=split, max_shard_size=max_shard_size,
                               schema=schema, license=license)
    else:
        result = publish_to_hub(src, repo_id, config_name=config_name, split=split, private=private,
                                max_shard_size=max_shard_size, schema=schema, license=license)
    typer.echo(result.summary())


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
