"""``python bench/run.py prepare [--rows N] [--schemas a,b] [--tokenize-schema S] [--limit-rows N]``

From raw JSON Lines to training-ready tokens, the path ``belle data prepare`` / ``belle train``
take, on N synthetic rows of each BELLE schema (``bench/data.py``'s generator; 1M by default). Each
candidate runs in a fresh subprocess with an empty ``datasets`` cache (nothing reused unless the
candidate is the rerun), which also gives its peak RSS. In one run:

* per schema: plain ``datasets.load_dataset("json")``; ``belle_hf.data.load()`` (load + normalize);
  ``load_ratio_<schema>`` = load / plain (goal <= 2);
* on ``--tokenize-schema`` (alpaca): ``belle data prepare`` (``prepare_data``: load, normalize,
  tokenize with Qwen's 151,643-rank byte-level BPE and ChatML, preflight, save) with
  ``dataset_num_proc`` 1 and 2, and its tokenization rate (rows/s in ``tokenize_dataset``) against
  the *limit*: the same tokenizer called on batches of 1,000 already rendered conversations
  (``tokenize_ratio`` = ours on one process / limit, goal >= 0.7; ``tokenize_ratio_backend``: the
  same against the tokenizer's Rust backend called directly, a stricter limit; ``proc_scaling`` =
  rate with 2 processes / 1; ``proc_scaling_one_thread``: the same on rows/4 with one tokenizer
  thread per process, since one process already runs the Rust tokenizer on every core);
* the rerun of the same recipe (cache hit): ``rerun_share`` = ``belle data prepare RECIPE`` run as a
  command, interpreter start included, / the first ``prepare_data`` (goal < 0.05);
  ``rerun_train_share``: the same for ``prepare_data`` in process, what ``belle train`` pays before
  loading the model (it loads the tokenizer, which the command finds it need not);
* peak memory of the prepare at rows/4 and rows (goal: flat in the row count): the peak RSS, and
  the peak of the process's own memory (``RssAnon``), which leaves out memory-mapped Arrow pages;
  beside it, how much plain ``load_dataset``'s own memory grows over the same rows (its JSON reader
  keeps more as files grow, and ``load()`` reads through it).

"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
WORK = BENCH / "_work"


# ------------------------------------------------------------------------------ child side
def _child(task: dict) -> dict:
    """One candidate, in this (fresh) process; returns its figures."""
    if task["kind"] == "plain":
        import datasets

        start = time.perf_counter()
        rows = len(datasets.load_dataset("json", data_files=task["path"], split="train"))
        return {"seconds": time.perf_counter() - start, "rows": rows}
    if task["kind"] == "load":
        import datasets  # imported before the clock starts, as for the plain candidate

        from belle_hf.data import load

        start = time.perf_counter()
        rows = len(load(task["path"]))
        return {"seconds": time.perf_counter() - start, "rows": rows}
    if task["kind"] == "limit":
        return _limit(task)
    # "prepare": what `belle data prepare RECIPE` runs, with tokenize_dataset timed.
    from belle_hf.train import dataset as dataset_module
    from belle_hf.train.recipe import Recipe
    from belle_hf.train.trainer import prepare_data

    timed = {"seconds": 0.0}
    real = dataset_module.tokenize_dataset

    def tokenize_dataset(*args, **kwargs):
        start = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            timed["seconds"] += time.perf_counter() - start

    dataset_module.tokenize_dataset = tokenize_dataset
    start = time.perf_counter()
    data = prepare_data(Recipe.from_dict(task["recipe"]))
    return {"seconds": time.perf_counter() - start, "tokenize_seconds": timed["seconds"],
            "rows": data.truncation.rows, "tokens": data.truncation.tokens, "hit": data.cache_hit}


def _limit(task: dict) -> dict:
    """The tokenizer alone on batches of 1,000 rendered conversations (rendering not timed)."""
    from transformers import AutoTokenizer
    from transformers.utils.chat_template_utils import render_jinja_template

    from belle_hf.data import load

    tokenizer = AutoTokenizer.from_pretrained(task["tokenizer"])
    conversations = load(task["path"]).select(range(task["rows"]))["messages"]
    texts = render_jinja_template(conversations=conversations, chat_template=tokenizer.chat_template)[0]
    start = time.perf_counter()
    for begin in range(0, len(texts), 1000):
        tokenizer(texts[begin:begin + 1000], add_special_tokens=False)
    seconds = time.perf_counter() - start
    # The Rust backend called directly, without transformers' per-result conversion: a stricter limit.
    backend = tokenizer.backend_tokenizer
    start = time.perf_counter()
    for begin in range(0, len(texts), 1000):
        [encoding.ids for encoding in backend.encode_batch(texts[begin:begin + 1000], add_special_tokens=False)]
    return {"seconds": seconds, "backend_seconds": time.perf_counter() - start, "rows": len(texts)}


# ----------------------------------------------------------------------------- parent side
def measure(task: dict, work: Path, belle_cache: Path | None = None, **extra_env: str) -> dict:
    """Run ``task`` in a fresh Python with an empty ``datasets`` cache; its figures and peak RSS (MiB)."""
    import belle_hf

    hf_cache = Path(tempfile.mkdtemp(prefix="hf-", dir=work))
    env = {**os.environ, **extra_env, "HF_DATASETS_CACHE": str(hf_cache), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "BELLE_CACHE": str(belle_cache or work / "belle-cache"),
           "PYTHONPATH": os.pathsep.join([str(Path(belle_hf.__file__).parents[1]), str(BENCH),
                                          os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(task)],
                              capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"{task['kind']} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(hf_cache, ignore_errors=True)


def _cli_rerun(recipe: dict, work: Path, belle_cache: Path) -> float:
    """Wall time of ``belle data prepare RECIPE`` run as a command on prepared data."""
    import yaml

    import belle_hf

    path = work / "rerun.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "BELLE_CACHE": str(belle_cache),
           "PYTHONPATH": os.pathsep.join([str(Path(belle_hf.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "belle_hf.cli", "data", "prepare", str(path)],
                          capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0 or "already prepared" not in done.stdout:
        raise RuntimeError(f"belle data prepare (rerun) failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds


def run(argv: list[str]) -> dict:
    from data import SCHEMAS, write_synthetic

    parser = argparse.ArgumentParser(prog="bench/run.py prepare")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per schema")
    parser.add_argument("--schemas", default=",".join(SCHEMAS), help="schemas timed for load + normalize")
    parser.add_argument("--tokenize-schema", default="alpaca", help="the schema prepared (tokenized)")
    parser.add_argument("--limit-rows", type=int, default=100_000,
                        help="rows of the tokenizer-limit measure (at most --rows)")
    args = parser.parse_args(argv)

    from _qwen import chatml_template_file, qwen_tokenizer_dir

    tokenizer_dir = qwen_tokenizer_dir()  # built once, outside every timing
    WORK.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="prepare-", dir=WORK))
    result: dict = {}
    try:
        for schema in args.schemas.split(","):
            path = write_synthetic(work / f"{schema}.jsonl", schema, args.rows)
            plain = measure({"kind": "plain", "path": str(path)}, work)
            ours = measure({"kind": "load", "path": str(path)}, work)
            result[f"load_ratio_{schema}"] = ours["seconds"] / plain["seconds"]
            if schema == args.tokenize_schema:
                plain_full = plain
            print(f"{schema:16} {args.rows} rows: load_dataset {plain['seconds']:.1f}s (RSS {plain['rss_mib']:.0f} MiB)"
                  f"  belle_hf.data.load {ours['seconds']:.1f}s (RSS {ours['rss_mib']:.0f} MiB)"
                  f"  {ours['seconds'] / plain['seconds']:.2f}x", flush=True)
            if schema != args.tokenize_schema:
                path.unlink()
        source = work / f"{args.tokenize_schema}.jsonl"
        if not source.exists():
            write_synthetic(source, args.tokenize_schema, args.rows)
        quarter = work / f"{args.tokenize_schema}-quarter.jsonl"
        with open(source, "rb") as full, open(quarter, "wb") as out:
            out.writelines(line for _, line in zip(range(max(1, args.rows // 4)), full))

        template = chatml_template_file(work)  # written once: a rewritten file is a changed input

        def recipe(path: Path, procs: int) -> dict:
            return {"model": str(tokenizer_dir), "template": str(template), "data": [str(path)],
                    "output_dir": str(work / "out"), "dataset_num_proc": procs, "training": {"max_length": 2048}}

        limit = measure({"kind": "limit", "path": str(source), "tokenizer": str(tokenizer_dir),
                         "rows": min(args.limit_rows, args.rows)}, work)
        limit_rate = limit["rows"] / limit["seconds"]
        backend_rate = limit["rows"] / limit["backend_seconds"]
        runs = {}
        for procs in (1, 2):
            cache = work / f"belle-cache-{procs}"
            runs[procs] = measure({"kind": "prepare", "recipe": recipe(source, procs)}, work, cache)
        rerun = measure({"kind": "prepare", "recipe": recipe(source, 1)}, work, work / "belle-cache-1")
        rerun_cli = _cli_rerun(recipe(source, 1), work, work / "belle-cache-1")
        small = measure({"kind": "prepare", "recipe": recipe(quarter, 1)}, work, work / "belle-cache-quarter")
        # One tokenizer thread per process: what dataset_num_proc itself adds, the Rust threads aside.
        single = {procs: measure({"kind": "prepare", "recipe": recipe(quarter, procs)}, work,
                                 work / f"belle-cache-single-{procs}", TOKENIZERS_PARALLELISM="false")
                  for procs in (1, 2)}
        single_rates = {procs: run["rows"] / run["tokenize_seconds"] for procs, run in single.items()}
        plain_quarter = measure({"kind": "plain", "path": str(quarter)}, work)
        if "plain_full" not in locals():
            plain_full = measure({"kind": "plain", "path": str(source)}, work)
        assert rerun["hit"] and not runs[1]["hit"]
        rates = {procs: run["rows"] / run["tokenize_seconds"] for procs, run in runs.items()}
        for procs, run in runs.items():
            print(f"belle data prepare, dataset_num_proc={procs}: {run['seconds']:.1f}s for {run['rows']} rows, "
                  f"{run['tokens']} tokens; tokenizing {run['tokenize_seconds']:.1f}s = {rates[procs]:.0f} rows/s; "
                  f"peak RSS {run['rss_mib']:.0f} MiB", flush=True)
        print(f"one tokenizer thread per process, {single[1]['rows']} rows: {single_rates[1]:.0f} rows/s in 1 process, "
              f"{single_rates[2]:.0f} rows/s in 2", flush=True)
        print(f"tokenizer limit (batches of 1000 rendered conversations): {limit_rate:.0f} rows/s; its Rust backend "
              f"called directly: {backend_rate:.0f} rows/s", flush=True)
        print(f"rerun (cache hit): {rerun['seconds']:.2f}s in prepare_data; `belle data prepare` as a command, "
              f"interpreter start included: {rerun_cli:.2f}s", flush=True)
        print(f"peak memory of the prepare: {small['rows']} rows: RSS {small['rss_mib']:.0f} MiB, own (RssAnon) "
              f"{small['anon_mib']:.0f} MiB; {runs[1]['rows']} rows: RSS {runs[1]['rss_mib']:.0f} MiB, own "
              f"{runs[1]['anon_mib']:.0f} MiB; plain load_dataset's own memory grows "
              f"{plain_quarter['anon_mib']:.0f} -> {plain_full['anon_mib']:.0f} MiB over the same rows", flush=True)
        result = {
            "ratio": rates[1] / limit_rate,
            "tokenize_ratio": rates[1] / limit_rate,
            "tokenize_ratio_backend": rates[1] / backend_rate,
            "proc_scaling": rates[2] / rates[1],
            "proc_scaling_one_thread": single_rates[2] / single_rates[1],
            "rerun_share": rerun_cli / runs[1]["seconds"],
            "rerun_train_share": rerun["seconds"] / runs[1]["seconds"],
            "max_load_ratio": max(result.values()),
            **result,
            "rows": args.rows,
            "limit_rows_per_s": round(limit_rate),
            "limit_backend_rows_per_s": round(backend_rate),
            "tokenize_rows_per_s_1proc": round(rates[1]),
            "tokenize_rows_per_s_2proc": round(rates[2]),
            "prepare_s_1proc": runs[1]["seconds"],
            "prepare_s_2proc": runs[2]["seconds"],
            "rerun_s": rerun["seconds"],
            "rerun_cli_s": rerun_cli,
            f"rss_mib_{small['rows']}": round(small["rss_mib"]),
            f"rss_mib_{runs[1]['rows']}": round(runs[1]["rss_mib"]),
            f"anon_mib_{small['rows']}": round(small["anon_mib"]),
            f"anon_mib_{runs[1]['rows']}": round(runs[1]["anon_mib"]),
            "anon_growth_prepare_mib": round(runs[1]["anon_mib"] - small["anon_mib"]),
            "anon_growth_plain_load_mib": round(plain_full["anon_mib"] - plain_quarter["anon_mib"]),
            "goal": "load_ratio<=2,tokenize_ratio>=0.7,proc_scaling>1,rerun_share<0.05,rss_flat",
        }
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _anon_mib() -> float:
    """This process's own memory (``RssAnon``): unlike the peak RSS, it leaves out the pages of
    memory-mapped Arrow files, which the kernel drops and reloads at will."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return 0.0


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    import threading

    peak_anon = [0.0]
    done = threading.Event()

    def sample() -> None:  # the peak of RssAnon, sampled every 50 ms (the kernel keeps no such peak)
        while not done.wait(0.05):
            peak_anon[0] = max(peak_anon[0], _anon_mib())

    threading.Thread(target=sample, daemon=True).start()
    figures = _child(json.loads(sys.argv[2]))
    done.set()
    figures["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["anon_mib"] = max(peak_anon[0], _anon_mib())
    print(json.dumps(figures))
