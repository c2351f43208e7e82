"""The self-instruct loop: sample seed tasks, ask the model for more, parse, filter, deduplicate,
append what survives, and resume where a previous run stopped.

Request ``k`` always shows the same seed tasks (they are sampled with a generator seeded by
``(seed, k)``) and carries its own endpoint ``seed``, so a rerun rebuilds the same requests and
the response cache answers the ones already paid for. Replies are processed in request order,
whatever order they arrive in, so the output depends only on the replies, not on timing.

The output is append-only JSON Lines: each kept row is written and flushed as it is accepted,
with the index of the request it came from. A rerun with a larger target reads the file
(dropping a line torn by a kill), rebuilds the dedup index from seeds + kept rows, and
continues from the last request in it: items already kept are recognized and skipped, so
nothing is lost or repeated.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from belle_hf.data.files import dump_json
from belle_hf.data.generate.filters import FILTER_NAMES, apply_filters
from belle_hf.data.generate.parsing import parse_reply
from belle_hf.data.generate.prompt import (
    encode_prompt,
    load_prompt_template,
    prompt_hash,
)
from belle_hf.data.generate.seeds import SeedTask, load_seed_tasks
from belle_hf.data.generate.similarity import make_index
from belle_hf.errors import BelleError, ConfigError, DataFormatError
from belle_hf.interrupts import resume_hint
from belle_hf.io import atomic_write_text, check_output_is_not_input, repair_jsonl_tail
from belle_hf.llm import ChatClient, ChatResult, EndpointConfig

logger = logging.getLogger(__name__)

ASSUMED_ITEMS_PER_REQUEST = 5
"""Kept rows expected per request before any reply is seen (a reply has up to 10 items)."""


@dataclass
class GenerateConfig:
    """What to generate and how to filter it (the endpoint is an :class:`~belle_hf.llm.EndpointConfig`)."""

    seed_tasks: Path
    """Seed tasks file: BELLE's ``zh_seed_tasks.json`` layout or flat instruction/input/output rows."""
    output: Path
    """Append-only ``.jsonl`` of kept rows; an existing file is continued, never rewritten."""
    target: int
    """Rows the output should hold when done (existing rows count)."""
    prompt: Path | None = None
    """Request text before the examples; ``None`` uses the project's Chinese prompt."""
    num_prompt_tasks: int = 3
    """Seed tasks shown in each prompt (Alpaca and BELLE use 3)."""
    similarity_threshold: float = 0.7
    """An instruction whose character ROUGE-L with a seed or kept one reaches this is a duplicate."""
    dedup: str = "auto"
    """``rouge`` (exact scan), ``minhash`` (LSH, for large runs) or ``auto``."""
    seed: int = 42
    """Seeds the choice of example tasks of every request (request ``k`` uses ``(seed, k)``)."""
    cache_dir: Path | None = None
    """Response cache folder; ``None`` puts it beside the output (``OUT.cache``)."""
    use_cache: bool = True
    patience: int = 50
    """Stop after this many requests in a row that add nothing (a broken prompt or endpoint)."""
    progress: bool = True

    def __post_init__(self) -> None:
        self.seed_tasks = Path(self.seed_tasks)
        self.output = Path(self.output)
        if self.output.suffix != ".jsonl":
            raise ConfigError("output", f"must be a .jsonl file, not {self.output}")
        if self.target < 1:
            raise ConfigError("target", f"must be at least 1, not {self.target}")
        if self.num_prompt_tasks < 1:
            raise ConfigError("num_prompt_tasks", f"must be at least 1, not {self.num_prompt_tasks}")
        if not 0 < self.similarity_threshold <= 1:
            raise ConfigError("similarity_threshold", f"must be in (0, 1], not {self.similarity_threshold}")
        if self.dedup not in ("auto", "rouge", "minhash"):
            raise ConfigError("dedup", f"must be auto, rouge or minhash, not {self.dedup!r}")

    @property
    def report_path(self) -> Path:
        return report_path_for(self.output)

    @property
    def resolved_cache_dir(self) -> Path | None:
        if not self.use_cache:
            return None
        return self.cache_dir or self.output.with_name(f"{self.output.stem}.cache")


def report_path_for(output: str | os.PathLike) -> Path:
    """``OUT.jsonl`` -> ``OUT.report.json``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.report.json")


@dataclass
class GenerateResult:
    """How a run ended."""

    output: Path
    report_path: Path
    kept_total: int
    kept_new: int
    report: dict[str, Any] = field(repr=False)


def read_kept_rows(path: Path) -> list[dict[str, Any]]:
    """Rows already in the output. A last line cut short by a kill is removed from the file."""
    if not path.exists():
        return []
    complete = repair_jsonl_tail(path)
    rows = []
    for line_no, line in enumerate(complete.splitlines(), start=1):
        if not line.strip():
            continue
        location = f"{path}:{line_no}"
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise DataFormatError(f"invalid JSON ({error}); not a file written by belle data generate?",
                                  location=location) from None
        if not isinstance(row, dict) or not isinstance(row.get("instruction"), str):
            raise DataFormatError("missing or not a string", location=location, field="instruction")
        rows.append(row)
    return rows


class _Run:
    """The state of one ``generate`` call."""

    def __init__(self, config: GenerateConfig, endpoint: EndpointConfig):
        self.config = config
        self.endpoint = endpoint
        self.tasks: list[SeedTask] = load_seed_tasks(config.seed_tasks)
        if config.num_prompt_tasks > len(self.tasks):
            raise ConfigError("num_prompt_tasks", f"{config.num_prompt_tasks} is more than the "
                              f"{len(self.tasks)} seed tasks in {config.seed_tasks}")
        self.template = load_prompt_template(config.prompt)
        self.rows: list[dict[str, Any]] = []
        self.kept_at_start = 0
        self.next_request = self.first_request = 0
        self.already_kept: set[tuple[Any, str]] = set()
        self.counts: Counter[str] = Counter()
        self.requests_processed = 0
        self.misses_in_a_row = 0
        self.started = time.time()

    def resume(self) -> None:
        """Read the rows and report of earlier runs, rebuild the dedup index from seeds + rows,
        open the endpoint client and its cache (called with the output locked)."""
        config = self.config
        self.client = ChatClient(self.endpoint, cache_dir=config.resolved_cache_dir)
        self.previous_runs = _previous_runs(config.report_path)
        self.rows = read_kept_rows(config.output)
        self.kept_at_start = len(self.rows)
        self.index = make_index(config.dedup, [t.instruction for t in self.tasks] + [r["instruction"] for r in self.rows],
                                expected_size=len(self.tasks) + max(config.target, len(self.rows)))
        # Resume at the last request that gave a kept row: it may have been cut at the target.
        requests_seen = [r["request"] for r in self.rows if isinstance(r.get("request"), int)]
        self.next_request = self.first_request = max(requests_seen, default=0)
        self.already_kept = {(r.get("request"), r["instruction"]) for r in self.rows}

    @property
    def kept_total(self) -> int:
        return len(self.rows)

    # -- requests ---------------------------------------------------------------------
    def prompt_for(self, request: int) -> str:
        rng = random.Random(f"{self.config.seed}:{request}")
        return encode_prompt(self.template, rng.sample(self.tasks, self.config.num_prompt_tasks))

    def overrides_for(self, request: int) -> dict[str, Any]:
        # Each request its own sampling seed: identical prompts still get different replies,
        # and the cache key of request k is the same on every rerun.
        return {"seed": self.endpoint.seed + request} if self.endpoint.seed is not None else {}

    def round_size(self) -> int:
        remaining = self.config.target - self.kept_total
        kept_now = self.kept_total - self.kept_at_start
        per_request = kept_now / self.requests_processed if kept_now else ASSUMED_ITEMS_PER_REQUEST
        if self.requests_processed and not kept_now:
            per_request = 1.0
        return max(1, min(math.ceil(remaining / per_request), 2 * max(1, self.endpoint.concurrency)))

    # -- replies ----------------------------------------------------------------------
    def process(self, request: int, prompt: str, result: ChatResult, out, bar) -> None:
        self.requests_processed += 1
        if not result.ok:
            self.counts["failed_requests"] += 1
            self.misses_in_a_row += 1
            return
        self.counts["replies"] += 1
        parsed = parse_reply(result.text or "", result.finish_reason, self.config.num_prompt_tasks)
        self.counts["items_parsed"] += len(parsed.items)
        self.counts["truncated"] += parsed.truncated
        self.counts["unparseable"] += parsed.unparseable
        kept_before = self.kept_total
        fingerprint = prompt_hash(prompt)
        for item in parsed.items:
            if self.kept_total >= self.config.target:
                break
            cleaned, rejected_by = apply_filters(item)
            if cleaned.instruction != item.instruction:
                self.counts["gpt_phrases_stripped"] += 1
            if rejected_by:
                self.counts[rejected_by] += 1
                continue
            if (request, cleaned.instruction) in self.already_kept:
                self.counts["already_kept"] += 1  # re-read from the cache on a resume
                continue
            match = self.index.most_similar(cleaned.instruction)
            if match.score >= self.config.similarity_threshold:
                self.counts["exact_duplicate" if match.score >= 1.0 else "near_duplicate"] += 1
                continue
            row = {"instruction": cleaned.instruction, "input": cleaned.input, "output": cleaned.output,
                   "model": self.endpoint.model, "prompt_hash": fingerprint,
                   # "" rather than null when MinHash found no candidate: a column that mixes
                   # nulls and strings breaks ``datasets``' JSON type inference across chunks.
                   "most_similar_instruction": match.text or "", "similarity": round(match.score, 4),
                   "request": request}
            out.write(orjson.dumps(row) + b"\n")
            out.flush()
            self.rows.append(row)
            self.index.add(cleaned.instruction)
            self.counts["kept"] += 1
            if bar is not None:
                bar.update(1)
        self.misses_in_a_row = 0 if self.kept_total > kept_before else self.misses_in_a_row + 1

    def run_round(self, out, bar) -> list[ChatResult]:
        size = self.round_size()
        requests = list(range(self.next_request, self.next_request + size))
        prompts = [self.prompt_for(k) for k in requests]
        arrived: dict[int, ChatResult] = {}
        cursor = 0

        def on_result(position: int, result: ChatResult) -> None:
            nonlocal cursor
            arrived[position] = result
            while cursor in arrived and self.kept_total < self.config.target:
                self.process(requests[cursor], prompts[cursor], arrived.pop(cursor), out, bar)
                cursor += 1

        results = self.client.complete_many([[{"role": "user", "content": p}] for p in prompts],
                                            on_result=on_result,
                                            overrides=[self.overrides_for(k) for k in requests])
        # The next round starts after the last processed request; when the target was reached
        # inside a request, that request is the place a larger rerun starts from.
        if cursor:
            last = requests[cursor - 1]
            self.next_request = last + 1 if self.kept_total < self.config.target else last
        os.fsync(out.fileno())
        return results

    # -- report -----------------------------------------------------------------------
    def report(self, status: str) -> dict[str, Any]:
        counts = {name: self.counts[name] for name in
                  ("replies", "failed_requests", "items_parsed", "truncated", "unparseable", *FILTER_NAMES,
                   "already_kept", "exact_duplicate", "near_duplicate", "kept", "gpt_phrases_stripped")}
        this_run = {
            "status": status,
            "kept_new": self.kept_total - self.kept_at_start,
            "requests": {"first": self.first_request, "next": self.next_request,
                         "processed": self.requests_processed},
            "counts": counts,
            "usage": self.client.usage.as_dict(),
            "elapsed_seconds": round(time.time() - self.started, 2),
        }
        return {
            "output": str(self.config.output),
            "target": self.config.target,
            "kept_total": self.kept_total,
            "complete": self.kept_total >= self.config.target,
            "seed_tasks": str(self.config.seed_tasks),
            "num_seed_tasks": len(self.tasks),
            "prompt": str(self.config.prompt) if self.config.prompt else "belle_hf:self_instruct/prompt_zh.txt",
            "num_prompt_tasks": self.config.num_prompt_tasks,
            "sampling_seed": self.config.seed,
            "dedup": {"method": self.index.name, "metric": "character ROUGE-L",
                      "threshold": self.config.similarity_threshold},
            "filters": list(FILTER_NAMES),
            "endpoint": self.endpoint.public_dict(),
            "last_run": this_run,
            "usage_all_runs": _total_usage(self.previous_runs + [this_run]),
            "runs": self.previous_runs + [this_run],
        }

    def write_report(self, status: str) -> dict[str, Any]:
        report = self.report(status)
        atomic_write_text(self.config.report_path, dump_json(report))
        return report


def _total_usage(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Requests, tokens and cost summed over runs (cost ``None`` if any run's is unknown)."""
    usages = [run.get("usage") or {} for run in runs]
    total: dict[str, Any] = {key: sum(int(u.get(key) or 0) for u in usages)
                             for key in ("requests_sent", "cache_hits", "failures", "prompt_tokens",
                                         "completion_tokens", "total_tokens")}
    costs = [u.get("estimated_cost_usd") for u in usages]
    total["estimated_cost_usd"] = None if any(c is None for c in costs) else sum(costs)
    return total


def _previous_runs(path: Path) -> list[dict[str, Any]]:
    """Runs recorded by earlier calls (the report is rewritten whole, so they are carried over)."""
    try:
        runs = orjson.loads(path.read_bytes()).get("runs", [])
        return [run for run in runs if isinstance(run, dict)]
    except (OSError, ValueError, AttributeError):
        return []


def _lock(handle, path: Path) -> None:
    """Hold an exclusive lock on the output: two runs appending to one file would interleave."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise BelleError(f"{path} is being written by another 'belle data generate'; wait for it to finish") from None


def generate(config: GenerateConfig, endpoint: EndpointConfig) -> GenerateResult:
    """Generate until ``config.output`` holds ``config.target`` rows; see the module docstring."""
    check_output_is_not_input(config.output, [config.seed_tasks, config.prompt])
    run = _Run(config, endpoint)  # seeds and prompt are checked before the output is touched
    config.output.parent.mkdir(parents=True, exist_ok=True)
    bar = None
    with open(config.output, "ab") as out:
        _lock(out, config.output)
        run.resume()
        if run.kept_total >= config.target:
            report = run.write_report("already complete")
            return GenerateResult(config.output, config.report_path, run.kept_total, 0, report)
        if config.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=config.target, initial=run.kept_total, desc="self-instruct", unit="row")
        try:
            with resume_hint(lambda: f"{run.kept_total} of {config.target} rows kept in {config.output}; "
                                     "rerun the same command to continue"):
                try:
                    while run.kept_total < config.target:
                        results = run.run_round(out, bar)
                        if results and all(not r.ok for r in results):
                            run.write_report("endpoint failed")
                            raise BelleError(f"every request of the last round failed ({results[0].error}); "
                                             f"{run.kept_total} rows are kept in {config.output}: rerun the same "
                                             "command to continue")
                        if run.misses_in_a_row >= config.patience:
                            run.write_report("gave up")
                            raise BelleError(f"the last {run.misses_in_a_row} replies added no new instruction; "
                                             f"stopped with {run.kept_total} of {config.target} rows in "
                                             f"{config.output} (see {config.report_path})")
                        run.write_report("running")
                except KeyboardInterrupt:
                    run.write_report("interrupted")
                    raise
        finally:
            if bar is not None:
                bar.close()
    report = run.write_report("complete")
    return GenerateResult(config.output, config.report_path, run.kept_total, run.kept_total - run.kept_at_start,
                          report)
