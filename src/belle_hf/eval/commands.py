"""``belle eval ...`` commands: thin wrappers over :mod:`belle_hf.eval`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from belle_hf.llm.options import ENDPOINT_OPTIONS, endpoint_options

eval_app = typer.Typer(help="Judge answers with GPT-4 (or any OpenAI-compatible model) on BELLE's eval set, "
                       "generate answers, write reports, serve the scoring page.", no_args_is_help=True)

PROMPTS_HELP = ("Judge prompts, one per class: BELLE's eval/eval_prompt.json "
                "(https://github.com/LianjiaTech/BELLE/tree/main/eval), JSON Lines of class, prompt.")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@eval_app.command("judge")
@endpoint_options()
def judge(
    answers: Path = typer.Option(..., "--answers", help="JSON Lines: question, class, std_answer, answer."),
    prompts: Path = typer.Option(..., "--prompts", help=PROMPTS_HELP),
    endpoint=None,
    cache: Optional[Path] = typer.Option(None, "--cache", help="Response cache folder (default: OUTPUT.cache/)."),
    output: Path = typer.Option(..., "-o", "--output", help="Judged JSON Lines: the answers plus score, judge_output."),
    summary: Path = typer.Option(..., "--summary", help="Summary JSON: overall, per_class, score_wo_others, usage."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1, help="Cap on the judge's reply length."),
    max_failed: float = typer.Option(1.0, "--max-failed", min=0.0, max=1.0,
                                     help="Fraction of answers that may go unscored (failed request or unreadable "
                                     "reply) before the run is an error; a run that scored nothing always is."),
) -> None:
    """Score every answer with its class prompt; resumable, cached, concurrent. Ctrl-C stops sending at once."""
    import dataclasses

    from belle_hf.eval.judge import judge_file

    endpoint = dataclasses.replace(endpoint, max_tokens=max_tokens)
    result = judge_file(answers, prompts, endpoint, output, summary, cache_dir=cache, max_failed=max_failed)
    usage = result["usage"]
    typer.echo(f"judged {result['n']} answers: {result['n_scored']} scored, {result['n_failed']} failed; "
               f"overall {_fmt(result['overall'])}, score_wo_others {_fmt(result['score_wo_others'])}")
    cost = usage["estimated_cost_usd"]
    typer.echo(f"requests sent {usage['requests_sent']}, cache hits {usage['cache_hits']}, "
               f"tokens {usage['total_tokens']}, estimated cost {'unknown' if cost is None else f'${cost:.4f}'}")
    typer.echo(f"wrote {output} and {summary}")


@eval_app.command("generate")
@endpoint_options(tuple(f for f in ENDPOINT_OPTIONS if f != "model"), shared=("model",), optional=True)
def generate(
    model: str = typer.Option(..., "--model", help="Local model folder or Hub id; with --base-url, the served model name."),
    eval_set: Path = typer.Option(..., "--eval-set", help="BELLE's eval_set.json (JSON Lines: question, class, std_answer)."),
    output: Path = typer.Option(..., "-o", "--output", help="Answers JSON Lines: the eval rows plus answer."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="A peft (LoRA) adapter folder to apply."),
    endpoint=None,
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Questions per generation batch (local model)."),
    max_new_tokens: int = typer.Option(512, "--max-new-tokens", min=1),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="0 = greedy."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Answer only the first N questions."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, ... (default: cuda if available)."),
    belle_format: bool = typer.Option(False, "--belle-format", help="Prompt with BELLE's 'Human: ... Assistant: ' "
                                      "format even when the tokenizer has its own chat template."),
) -> None:
    """Answer the eval set with a local model (batched) or, with --base-url, an OpenAI-compatible server; resumable."""
    import dataclasses

    from belle_hf.eval.generate import GenerationSettings, generate_answers

    settings = GenerationSettings(batch_size=batch_size, max_new_tokens=max_new_tokens, temperature=temperature,
                                  device=device, belle_format=belle_format, limit=limit)
    if endpoint is not None:
        endpoint = dataclasses.replace(endpoint, max_tokens=max_new_tokens, temperature=temperature)
    report = generate_answers(eval_set, output, model=model, adapter=adapter, endpoint=endpoint, settings=settings)
    typer.echo(report)


@eval_app.command("report")
def report(
    judged: List[Path] = typer.Argument(..., help="Judged JSON Lines files, one per model (named by file stem)."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for report.md, report.json and scores.png."),
    names: Optional[List[str]] = typer.Option(None, "--name", help="Model names, one per file, in order."),
) -> None:
    """Compare models: a Markdown + JSON table (models x classes) and a per-class bar chart."""
    from belle_hf.errors import BelleError
    from belle_hf.eval.report import write_report

    if names and len(names) != len(judged):
        raise BelleError(f"--name given {len(names)} times for {len(judged)} files")
    paths = write_report(judged, output, names=names or None)
    typer.echo("wrote " + ", ".join(str(p) for p in paths.values()))


@eval_app.command("serve-page")
@endpoint_options()
def serve_page(
    prompts: Path = typer.Option(..., "--prompts", help=PROMPTS_HELP),
    eval_set: Path = typer.Option(..., "--eval-set", help="BELLE's eval_set.json."),
    endpoint=None,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (keep 127.0.0.1 unless you mean it)."),
    port: int = typer.Option(8765, "--port", help="Port; 0 picks a free one."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Response cache folder (default: none)."),
) -> None:
    """Serve the scoring page: pick a question, paste an answer, get the judge's score and reason."""
    from belle_hf.eval.page import ScoringPage

    page = ScoringPage.from_files(prompts, eval_set, endpoint, cache_dir=cache)
    page.serve(host=host, port=port, announce=typer.echo)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
