"""Judge throughput: 1,000 judge calls against the loopback OpenAI-compatible server with 200 ms
latency per request, at concurrency 16 and at concurrency 1, in one run, through the real
``belle_hf.eval.judge_file`` path (request building, client, cache, resumable outputs).

ratio = sequential time / concurrent time (goal >= 10); ``rerun_requests`` counts the requests
a second run over the same answers and cache sends (goal 0).

    python bench/run.py judge [--n 1000] [--latency 0.2] [--concurrency 16] [--sequential-n N]

``--sequential-n`` runs the sequential leg on the first N answers only and extrapolates its time
to n (reported as ``sequential_extrapolated=True``); by default both legs judge all n answers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

CLASSES = ["open qa", "brainstorming", "rewrite", "generation", "math", "classification", "closed qa",
           "summarization", "code", "extract"]


def _write_inputs(folder: Path, n: int) -> tuple[Path, Path]:
    prompts = folder / "eval_prompt.json"
    prompts.write_text("".join(json.dumps({"class": c, "prompt": f"你需要对{c}类问题的模型回答打分，满分为1分。"
                                           "请按照\"得分:\"这样的形式输出分数。"}, ensure_ascii=False) + "\n"
                               for c in CLASSES), encoding="utf-8")
    answers = folder / "answers.jsonl"
    answers.write_text("".join(json.dumps({"question": f"问题 {i}：请解释第{i}个概念。", "class": CLASSES[i % len(CLASSES)],
                                           "std_answer": "" if i % 3 == 0 else f"标准答案 {i}",
                                           "answer": f"模型回答 {i}"}, ensure_ascii=False) + "\n"
                               for i in range(n)), encoding="utf-8")
    return prompts, answers


def _subset(answers: Path, n: int) -> Path:
    path = answers.with_name(f"answers_first_{n}.jsonl")
    path.write_text("".join(answers.read_text(encoding="utf-8").splitlines(keepends=True)[:n]), encoding="utf-8")
    return path


def run(argv: list[str]) -> dict:
    from belle_hf.eval import judge_file
    from belle_hf.llm import EndpointConfig
    from belle_hf.testing.openai_server import FakeOpenAIServer

    parser = argparse.ArgumentParser(prog="bench/run.py judge")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sequential-n", type=int, default=None)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp, \
            FakeOpenAIServer(responder=lambda body: "理由：回答基本正确。\n得分：0.8", latency=args.latency) as server:
        folder = Path(tmp)
        prompts, answers = _write_inputs(folder, args.n)

        def judge(path: Path, concurrency: int, name: str) -> tuple[float, dict]:
            endpoint = EndpointConfig(server.base_url, "gpt-4", api_key="sk-bench", concurrency=concurrency)
            start = time.perf_counter()
            summary = judge_file(path, prompts, endpoint, folder / f"{name}.jsonl", folder / f"{name}.summary.json",
                                 cache_dir=folder / f"{name}.cache", progress=False)
            return time.perf_counter() - start, summary

        concurrent_s, concurrent = judge(answers, args.concurrency, "concurrent")
        assert concurrent["n_scored"] == args.n, concurrent
        sequential_n = min(args.sequential_n or args.n, args.n)
        sequential_path = answers if sequential_n == args.n else _subset(answers, sequential_n)
        measured_s, sequential = judge(sequential_path, 1, "sequential")
        assert sequential["n_scored"] == sequential_n, sequential
        sequential_s = measured_s * args.n / sequential_n

        before = len(server.completion_requests())
        rerun_s, rerun = judge(answers, args.concurrency, "concurrent")  # same answers, same cache
        rerun_requests = len(server.completion_requests()) - before

    return {
        "ratio": sequential_s / concurrent_s,
        "n": args.n,
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "concurrent_s": round(concurrent_s, 2),
        "sequential_s": round(sequential_s, 2),
        "sequential_n": sequential_n,
        "sequential_extrapolated": sequential_n != args.n,
        "concurrent_calls_per_s": round(args.n / concurrent_s, 1),
        "rerun_requests": rerun_requests,
        "rerun_cache_hits": rerun["usage"]["cache_hits"],
        "rerun_s": round(rerun_s, 2),
    }
