"""``python bench/run.py dedup [--rows N] [--speed-rows N] [--rss-rows N1,N2] [--threshold T] [--keep]``

Runs ``belle data dedup`` (the command users run, as a subprocess) on synthetic Chinese rows
with planted exact and near duplicates (:mod:`belle_hf.testing.duplicates`: one to three
characters changed, or a sentence inserted), in ``bench/_work/`` (git-ignored):

* rows/s at ``--workers 1`` and ``--workers 2`` on ``--speed-rows`` rows (same tasks);
  ``ratio`` = rows/s at 2 workers / rows/s at 1 worker;
* peak RSS of the whole process tree (the command, its worker pool and fork server; summed,
  sampled every 0.2 s) at two sizes (default ``rows`` and ``3 * rows``), to show memory stays flat;
* recall of the planted near duplicates at ``--threshold`` (goal >= 0.95), planted exact
  duplicates found, and originals wrongly dropped (goal 0), on every run;
* the time for 10M rows on 2 workers, extrapolated linearly from the largest run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import xxhash

WORK = Path(__file__).resolve().parent / "_work"
REPO = Path(__file__).resolve().parents[1]


def _tree_usage(process, cpu: dict[int, float]) -> int:
    """RSS of ``process`` and all its descendants (bytes); records each one's CPU seconds in ``cpu``."""
    import psutil

    total = 0
    try:
        tree = [process] + process.children(recursive=True)
    except psutil.Error:
        return 0
    for proc in tree:
        try:
            times = proc.cpu_times()
            total += proc.memory_info().rss
            cpu[proc.pid] = times.user + times.system
        except psutil.Error:
            pass
    return total


def run_dedup(src: Path, out: Path, workers: int, tasks: int | None, threshold: float) -> tuple[float, float, float]:
    """Wall seconds, peak process-tree RSS (MiB) and CPU seconds of one ``belle data dedup`` run.

    The tree (the command, its fork server and pool workers, which the command does not wait
    for itself) is sampled every 0.2 s; CPU is each process's last sample, summed.
    """
    import psutil

    command = [sys.executable, "-m", "belle_hf.cli", "data", "dedup", str(src), "-o", str(out),
               "--threshold", str(threshold), "--workers", str(workers), "--report", str(out) + ".report.json"]
    if tasks:
        command += ["--tasks", str(tasks)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process, peak, cpu_by_pid = psutil.Process(child.pid), 0, {}
    while child.poll() is None:
        peak = max(peak, _tree_usage(process, cpu_by_pid))
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    stdout, stderr = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"belle data dedup failed ({child.returncode}):\n{stderr[-3000:]}")
    cpu = sum(cpu_by_pid.values())
    print(stdout.strip().splitlines()[0], flush=True)
    return seconds, peak / 2**20, cpu


def quality(src: Path, out: Path, labels) -> dict:
    """Recall of planted near duplicates, planted exact duplicates found, originals wrongly dropped."""
    kept: set[int] = set()
    with open(out, "rb") as handle:
        for line in handle:
            kept.add(xxhash.xxh64_intdigest(orjson.loads(line)["messages"][-1]["content"].encode()))
    report = orjson.loads(Path(str(out) + ".report.json").read_bytes())
    near_found = near = wrongly_dropped = 0
    with open(src, "rb") as handle:
        for line, label in zip(handle, labels):
            present = xxhash.xxh64_intdigest(orjson.loads(line)["output"].encode()) in kept
            if label is None:
                wrongly_dropped += not present
            elif label.kind == "near":
                near += 1
                near_found += not present
    exact = sum(1 for label in labels if label is not None and label.kind == "exact")
    return {"near_recall": near_found / max(near, 1), "exact_found": report["exact_duplicates"], "exact_planted": exact,
            "wrongly_dropped": wrongly_dropped}


def run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run.py dedup")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the first memory run")
    parser.add_argument("--speed-rows", type=int, default=None, help="rows of the 1- vs 2-worker runs "
                        "(default: min(rows, 200000))")
    parser.add_argument("--rss-rows", default=None, help="two row counts for the memory runs (default: rows,3*rows)")
    parser.add_argument("--tasks", type=int, default=None, help="tasks of the speed runs (default: belle's)")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--keep", action="store_true", help="keep the files in bench/_work")
    args = parser.parse_args(argv)

    from belle_hf.testing.duplicates import write_planted

    WORK.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dedup-", dir=WORK))
    speed_rows = args.speed_rows or min(args.rows, 200_000)
    rss_rows = [int(n) for n in args.rss_rows.split(",")] if args.rss_rows else [args.rows, 3 * args.rows]
    result: dict = {}
    try:
        src = work / f"planted-{speed_rows}.jsonl"
        labels = write_planted(src, speed_rows, seed=0)
        speeds = {}
        for workers in (1, 2):
            out = work / f"out-{workers}.jsonl"
            seconds, peak, cpu = run_dedup(src, out, workers, args.tasks or max(4, speed_rows // 25_000),
                                           args.threshold)
            speeds[workers] = speed_rows / seconds
            found = quality(src, out, labels)
            print(f"{speed_rows} rows, {workers} worker(s): {seconds:.1f}s, {speeds[workers]:.0f} rows/s, "
                  f"cpu {cpu:.1f}s ({speed_rows / cpu:.0f} rows per CPU second), peak RSS {peak:.0f} MiB, {found}",
                  flush=True)
            result[f"cpu_s_{speed_rows}_{workers}w"] = cpu
            result.update({f"rows_per_s_{workers}w": speeds[workers], f"rss_mib_{speed_rows}_{workers}w": peak})
            result.update({f"{key}_{workers}w": value for key, value in found.items()})
            out.unlink()
        src.unlink()
        result["ratio"] = speeds[2] / speeds[1]
        largest = None
        for rows in rss_rows:
            src = work / f"planted-{rows}.jsonl"
            labels = write_planted(src, rows, seed=1)
            out = work / f"out-{rows}.jsonl"
            seconds, peak, cpu = run_dedup(src, out, 2, None, args.threshold)
            found = quality(src, out, labels)
            print(f"{rows} rows, 2 workers: {seconds:.1f}s ({rows / seconds:.0f} rows/s), cpu {cpu:.1f}s, "
                  f"peak RSS {peak:.0f} MiB (process tree), {found}", flush=True)
            result[f"cpu_s_{rows}"] = cpu
            result.update({f"rss_mib_{rows}": peak, f"seconds_{rows}": seconds, f"near_recall_{rows}": found["near_recall"],
                           f"wrongly_dropped_{rows}": found["wrongly_dropped"]})
            largest = (rows, seconds, cpu)
            del labels
            src.unlink()
            out.unlink()
        if largest:
            # Linear in rows: every stage streams. On a shared, busy machine the wall clock
            # mostly measures the neighbours, so the CPU seconds (spread over 2 cores) are given too.
            rows, seconds, cpu = largest
            result["est_10M_s_2w"] = seconds * 10_000_000 / rows
            result["est_10M_s_2cores_from_cpu"] = cpu / 2 * 10_000_000 / rows
            print(f"10M rows on 2 workers: about {result['est_10M_s_2w'] / 3600:.1f} h by this machine's wall clock, "
                  f"{result['est_10M_s_2cores_from_cpu'] / 3600:.1f} h on 2 idle cores by CPU time "
                  f"(linear from {rows} rows: {seconds:.0f} s wall, {cpu:.0f} s CPU)", flush=True)
        result["goal"] = "near_recall>=0.95,wrongly_dropped=0,rss<2GiB"
        return result
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
