"""``python bench/run.py generate [--rows N] [--latency S] [--concurrency C] [--index N] [--queries Q]``

Self-instruct generation (``belle_hf.data.generate``) against the loopback OpenAI-compatible
server answering with the test suite's self-instruct stand-in (``tests/generate``), with
``--latency`` seconds per reply:

* the same ``--rows`` target generated one request at a time (as BELLE's and Alpaca's
  scripts did: a batch, then wait) and with ``--concurrency`` requests in flight;
  ``ratio`` = sequential time / concurrent time (goal >= 0.6 x concurrency: near-linear);
  both runs must produce the same rows;
* deduplication cost per new instruction against ``--index`` kept instructions: the exact
  character ROUGE-L scan and MinHash-LSH (what ``--dedup auto`` switches to above
  ``MINHASH_ABOVE``), with how many of the near duplicates each one catches.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _timed_run(out: Path, rows: int, concurrency: int, latency: float) -> tuple[float, list[str]]:
    from fake_self_instruct import responder

    from belle_hf.data.generate import DEFAULT_SEED_TASKS, GenerateConfig, generate, read_kept_rows
    from belle_hf.llm import EndpointConfig
    from belle_hf.testing.openai_server import FakeOpenAIServer

    with FakeOpenAIServer(responder=responder, latency=latency) as server:
        start = time.perf_counter()
        generate(GenerateConfig(DEFAULT_SEED_TASKS, out, rows, use_cache=False, progress=False),
                 EndpointConfig(server.base_url, "gpt-4o-mini", temperature=1.0, concurrency=concurrency))
        elapsed = time.perf_counter() - start
    return elapsed, [row["instruction"] for row in read_kept_rows(out)]


def _dedup_cost(index_size: int, queries: int) -> dict:
    from belle_hf.data.generate import MinHashIndex, RougeLIndex

    rng = random.Random(0)
    cjk = [chr(code) for code in range(0x4E00, 0x9FA5)]
    texts = ["请" + "".join(rng.choice(cjk) for _ in range(rng.randint(10, 30))) for _ in range(index_size)]
    probes = [t[:-2] + "甲乙" for t in rng.sample(texts, queries)]  # near duplicates (ROUGE-L >= 0.85)
    figures = {}
    for name, cls in (("rouge", RougeLIndex), ("minhash", MinHashIndex)):
        start = time.perf_counter()
        index = cls(texts)
        built = time.perf_counter() - start
        start = time.perf_counter()
        caught = sum(index.most_similar(p).score >= 0.7 for p in probes)
        per_query = (time.perf_counter() - start) / queries
        figures[f"{name}_build_s"] = built
        figures[f"{name}_ms_per_query"] = per_query * 1000
        figures[f"{name}_recall"] = caught / queries
    return figures


def run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run.py generate")
    parser.add_argument("--rows", type=int, default=80)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--index", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests" / "generate"))
    with tempfile.TemporaryDirectory() as work:
        sequential, rows_1 = _timed_run(Path(work) / "seq.jsonl", args.rows, 1, args.latency)
        concurrent, rows_c = _timed_run(Path(work) / "conc.jsonl", args.rows, args.concurrency, args.latency)
    if rows_1 != rows_c:
        raise SystemExit("the sequential and concurrent runs kept different rows")
    return {
        "ratio": sequential / concurrent,
        "rows": args.rows,
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "sequential_s": sequential,
        "concurrent_s": concurrent,
        "rows_per_s": args.rows / concurrent,
        "index": args.index,
        **_dedup_cost(args.index, args.queries),
    }
