"""``python bench/run.py data [--rows N] [--schemas a,b] [--stream-rows N1,N2] [--keep] [--load-only]``

Writes N synthetic rows of each BELLE schema as JSON Lines (in ``bench/_work/``, git-ignored),
then, in one run and per schema:

* times ``belle_hf.data.convert_file`` end to end (read, detect, normalize, write JSON Lines;
  and again writing parquet);
* times ``datasets.load_dataset("json", ...)`` merely loading the same file (a fresh cache
  directory each time, so nothing is reused);

* times ``belle_hf.data.load`` (what ``belle train`` calls: load + normalize to ``messages``),
  also with a fresh cache directory, as ``<schema>_load_ratio`` = load / plain load
  (goal <= 2 for every schema; ``load_cpu_ratio`` is the worst schema in CPU seconds);

``ratio`` = our JSON Lines conversion time / plain load time, wall clock, summed over the
schemas (goal <= 3); ``cpu_ratio`` is the same with CPU seconds, steadier on a shared machine. Then it measures the peak RSS of a streaming pass (``belle_hf.data.load(...,
streaming=True)`` iterated to the end) in a fresh subprocess for two row counts, to show it
stays flat (goal < 1 GiB whatever the row count).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

WORK = Path(__file__).resolve().parent / "_work"
SCHEMAS = ("alpaca", "belle-multiturn", "generated-chat", "conversations", "messages")

_SUBJECTS = ["北京", "上海", "长江", "黄河", "太阳", "月亮", "电脑", "手机", "春天", "秋天", "健身", "读书", "旅行", "环保",
             "编程", "数学", "历史", "音乐", "医生", "老师"]
_TASKS = ["请介绍一下{}的特点。", "用三句话描述{}。", "写一段关于{}的短文。", "{}有什么好处？", "如何向孩子解释{}？",
          "列举与{}有关的五个词语。", "为什么人们喜欢{}？", "比较{}和{}的异同。"]
_SENTENCES = ["{}在人们的生活中扮演着重要的角色。", "很多人认为{}值得深入了解。", "关于{}，有许多有趣的故事。",
              "从历史上看，{}一直受到关注。", "如果你对{}感兴趣，可以从基础知识开始学习。", "总之，{}是一个值得讨论的话题。",
              "Human: 这一行的冒号和 Assistant: 都是正文。", "例如：{}与日常生活密切相关。"]
_NAMES = ["小明", "小红", "张三", "李四", "王老师", "李医生"]


def _answer(rng: random.Random, subject: str, sentences: int) -> str:
    return "".join(rng.choice(_SENTENCES).format(subject) for _ in range(sentences))


def _question(rng: random.Random) -> tuple[str, str]:
    subject, other = rng.sample(_SUBJECTS, 2)
    return rng.choice(_TASKS).format(subject, other), subject


def synthetic_record(schema: str, rng: random.Random, index: int) -> dict:
    """One synthetic record of ``schema`` (Chinese text, a few hundred characters)."""
    question, subject = _question(rng)
    if schema == "alpaca":
        return {"instruction": question, "input": "", "output": _answer(rng, subject, rng.randint(2, 8))}
    if schema == "belle-multiturn":
        history = ""
        for _ in range(rng.randint(1, 3)):
            past, past_subject = _question(rng)
            history += f"Human:{past}\nAssistant:{_answer(rng, past_subject, rng.randint(1, 4))}\n"
        return {"instruction": f"{history}Human:{question}\nAssistant:", "input": "",
                "output": _answer(rng, subject, rng.randint(2, 6))}
    if schema == "generated-chat":
        a, b = rng.sample(_NAMES, 2)
        dialogue = "\n".join(f"{rng.choice((a, b))}：{_answer(rng, subject, 1)}" for _ in range(rng.randint(3, 8)))
        return {"instruction": f"根据以下角色信息完成一段关于{subject}的对话\n{a}是一名学生。{b}是一位老师。", "input": "",
                "output": dialogue}
    turns = []
    for _ in range(rng.randint(1, 3)):
        asked, asked_subject = _question(rng)
        turns += [("user", asked), ("assistant", _answer(rng, asked_subject, rng.randint(2, 6)))]
    if schema == "conversations":
        speakers = {"user": "human", "assistant": "gpt"}
        return {"id": str(index), "conversations": [{"from": speakers[r], "value": c} for r, c in turns]}
    return {"messages": [{"role": r, "content": c} for r, c in turns], "id": str(index)}


def write_synthetic(path: Path, schema: str, rows: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with open(path, "wb") as handle:
        for start in range(0, rows, 10_000):
            handle.write(b"".join(orjson.dumps(synthetic_record(schema, rng, i)) + b"\n"
                                  for i in range(start, min(rows, start + 10_000))))
    return path


def _timed(fn) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads of this process) of ``fn()``."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def time_plain_load(path: Path, work: Path) -> tuple[float, float]:
    import datasets

    cache = Path(tempfile.mkdtemp(prefix="hf-cache-", dir=work))
    try:
        return _timed(lambda: datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(cache)))
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def time_belle_load(path: Path, work: Path, schema: str) -> tuple[float, float]:
    """``belle_hf.data.load`` (load + normalize), the path ``belle train`` takes, on a fresh cache."""
    from belle_hf.data import load

    cache = Path(tempfile.mkdtemp(prefix="hf-cache-", dir=work))
    # generated-chat is laid out like alpaca, so only its registry entry names it; say it here.
    named = schema if schema == "generated-chat" else None
    try:
        return _timed(lambda: load(str(path), schema=named, cache_dir=str(cache)))
    finally:
        shutil.rmtree(cache, ignore_errors=True)


_STREAM_SCRIPT = """
import resource, sys, json
from belle_hf.data import load
rows = 0
for record in load(sys.argv[1], streaming=True):
    rows += 1
print(json.dumps({"rows": rows, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def streaming_peak_rss_mib(path: Path, work: Path) -> tuple[int, float, float]:
    """Rows, peak RSS (MiB) and seconds of a full streaming pass, in a fresh subprocess."""
    env = {"HF_DATASETS_CACHE": str(work / "stream-cache"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    import os

    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _STREAM_SCRIPT, str(path)], capture_output=True, text=True,
                          env={**os.environ, **env}, check=True)
    seconds = time.perf_counter() - start
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["rows"], result["peak_rss_kib"] / 1024, seconds


def run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run.py data")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per schema")
    parser.add_argument("--schemas", default=",".join(SCHEMAS))
    parser.add_argument("--stream-rows", default=None,
                        help="two row counts for the streaming RSS check (default: rows/10,rows)")
    parser.add_argument("--keep", action="store_true", help="keep the files in bench/_work")
    parser.add_argument("--load-only", action="store_true",
                        help="only plain load_dataset vs belle_hf.data.load, per schema (ratio = worst schema)")
    args = parser.parse_args(argv)
    if args.load_only:
        return run_load_only(args)

    import datasets

    from belle_hf.data import convert_file

    datasets.disable_progress_bars()
    WORK.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="data-", dir=WORK))
    figures: dict = {}
    totals = {"ours": [0.0, 0.0], "plain": [0.0, 0.0], "parquet": [0.0, 0.0], "load": [0.0, 0.0]}  # [wall, cpu]
    try:
        for schema in args.schemas.split(","):
            src = write_synthetic(work / f"{schema}.jsonl", schema, args.rows)
            timings = {"plain": time_plain_load(src, work),
                       "load": time_belle_load(src, work, schema),
                       "ours": _timed(lambda: convert_file(src, work / f"{schema}.out.jsonl")),
                       "parquet": _timed(lambda: convert_file(src, work / f"{schema}.out.parquet"))}
            (plain, plain_cpu), (ours, ours_cpu), (parquet, _) = (timings[k] for k in ("plain", "ours", "parquet"))
            mb = src.stat().st_size / 1e6
            print(f"{schema:16} {args.rows} rows {mb:7.1f} MB  load_dataset {plain:6.2f}s (cpu {plain_cpu:6.2f}s)  "
                  f"convert->jsonl {ours:6.2f}s (cpu {ours_cpu:6.2f}s) {ours / plain:.2f}x  "
                  f"convert->parquet {parquet:6.2f}s {parquet / plain:.2f}x  "
                  f"load() {timings['load'][0]:6.2f}s (cpu {timings['load'][1]:6.2f}s) "
                  f"{timings['load'][0] / plain:.2f}x", flush=True)
            figures[f"{schema}_ratio"] = ours / plain
            figures[f"{schema}_load_ratio"] = timings["load"][0] / plain
            figures[f"{schema}_load_cpu_ratio"] = timings["load"][1] / plain_cpu
            for key, (wall, cpu) in timings.items():
                totals[key][0] += wall
                totals[key][1] += cpu
            for out in work.glob(f"{schema}.out.*"):
                out.unlink()
            if schema != "alpaca":
                src.unlink()
        stream_counts = ([int(n) for n in args.stream_rows.split(",")] if args.stream_rows
                         else [max(1, args.rows // 10), args.rows])
        rss = []
        for count in stream_counts:
            path = write_synthetic(work / f"stream-{count}.jsonl", "alpaca", count, seed=1)
            rows, peak, seconds = streaming_peak_rss_mib(path, work)
            print(f"streaming {rows} rows: peak RSS {peak:.0f} MiB ({seconds:.1f}s)", flush=True)
            rss.append(peak)
            path.unlink()
        ours_total, plain_total, parquet_total = totals["ours"][0], totals["plain"][0], totals["parquet"][0]
        result = {"ratio": ours_total / plain_total, "parquet_ratio": parquet_total / plain_total,
                  "cpu_ratio": totals["ours"][1] / totals["plain"][1],
                  "rows": args.rows, "ours_s": ours_total, "load_dataset_s": plain_total, "parquet_s": parquet_total}
        result["load_ratio"] = max(v for k, v in figures.items() if k.endswith("_load_ratio"))
        result["load_cpu_ratio"] = max(v for k, v in figures.items() if k.endswith("_load_cpu_ratio"))
        result.update(figures)
        for count, peak in zip(stream_counts, rss):
            result[f"stream_rss_mib_{count}"] = peak
        result["goal"] = "ratio<=3,load_ratio<=2,rss<1024MiB"
        return result
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run_load_only(args) -> dict:
    """Plain ``load_dataset("json")`` vs ``belle_hf.data.load`` on the same file, per schema."""
    import datasets

    datasets.disable_progress_bars()
    WORK.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="data-", dir=WORK))
    result: dict = {"ratio": 0.0, "cpu_ratio": 0.0, "rows": args.rows}
    try:
        for schema in args.schemas.split(","):
            src = write_synthetic(work / f"{schema}.jsonl", schema, args.rows)
            (plain, plain_cpu), (ours, ours_cpu) = time_plain_load(src, work), time_belle_load(src, work, schema)
            print(f"{schema:16} {args.rows} rows {src.stat().st_size / 1e6:7.1f} MB  load_dataset {plain:6.2f}s "
                  f"(cpu {plain_cpu:6.2f}s)  load() {ours:6.2f}s (cpu {ours_cpu:6.2f}s)  {ours / plain:.2f}x "
                  f"(cpu {ours_cpu / plain_cpu:.2f}x)", flush=True)
            result[f"{schema}_load_ratio"] = ours / plain
            result[f"{schema}_load_cpu_ratio"] = ours_cpu / plain_cpu
            result["ratio"] = max(result["ratio"], ours / plain)
            result["cpu_ratio"] = max(result["cpu_ratio"], ours_cpu / plain_cpu)
            src.unlink()
        result["goal"] = "ratio<=2"
        return result
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
