"""``belle data generate``: self-instruct generation (a thin wrapper over :mod:`belle_hf.data.generate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from belle_hf.llm.options import endpoint_options


@endpoint_options()
def generate(
    seed_tasks: Path = typer.Option(..., "--seed-tasks", help="Seed tasks (BELLE's zh_seed_tasks.json layout or "
                                    "instruction/input/output rows)."),
    prompt: Optional[Path] = typer.Option(None, "--prompt", help="Request text before the examples (default: the "
                                          "project's Chinese prompt; BELLE's prompt_cn.txt works)."),
    endpoint=None,
    target: int = typer.Option(..., "-n", help="Rows the output should hold when done (existing rows count)."),
    output: Path = typer.Option(..., "-o", "--output", help="Append-only .jsonl; an existing file is continued."),
    num_prompt_tasks: int = typer.Option(3, "--num-prompt-tasks", help="Seed tasks shown in each prompt."),
    temperature: float = typer.Option(1.0, "--temperature"),
    max_tokens: int = typer.Option(3072, "--max-tokens", help="Reply length limit; a reply cut by it loses its "
                                   "last item."),
    seed: int = typer.Option(42, "--seed", help="Seeds the example tasks of each request and the endpoint's sampling."),
    similarity_threshold: float = typer.Option(0.7, "--similarity-threshold", help="Character ROUGE-L at which an "
                                               "instruction counts as a duplicate."),
    dedup: str = typer.Option("auto", "--dedup", help="rouge (exact), minhash (LSH) or auto (MinHash for large runs)."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Keep replies in OUT.cache/ so a rerun resends nothing "
                               "already paid for."),
    patience: int = typer.Option(50, "--patience", help="Stop after this many requests in a row that add nothing."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Generate Chinese instruction data with BELLE's self-instruct recipe, resumably."""
    import dataclasses

    from belle_hf.data.generate import GenerateConfig
    from belle_hf.data.generate import generate as run_generate
    from belle_hf.options import flag_errors

    with flag_errors(target="-n"):
        endpoint = dataclasses.replace(endpoint, temperature=temperature, seed=seed, max_tokens=max_tokens)
        config = GenerateConfig(seed_tasks=seed_tasks, output=output, target=target, prompt=prompt,
                                num_prompt_tasks=num_prompt_tasks, similarity_threshold=similarity_threshold,
                                dedup=dedup, seed=seed, use_cache=cache, patience=patience, progress=progress)
    result = run_generate(config, endpoint)
    last = result.report["last_run"]
    counts = {k: v for k, v in last["counts"].items() if v}
    usage = last["usage"]
    cost = usage["estimated_cost_usd"]
    typer.echo(f"{result.output}: {result.kept_total} rows ({result.kept_new} new); report: {result.report_path}")
    typer.echo("counts: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    typer.echo(f"requests sent: {usage['requests_sent']} (cache hits {usage['cache_hits']}, failed {usage['failures']}), "
               f"tokens: {usage['total_tokens']}, estimated cost: "
               + (f"${cost:.4f}" if cost is not None else "unknown for this model"))


def register(app: typer.Typer) -> None:
    from belle_hf.data.commands import data_app

    data_app.command("generate")(generate)
