"""The quickstart's training time with the project's thread choice vs fixed thread counts, idle and busy.

``python bench/run.py quickstart [--epochs N] [--repeats R] [--threads 1,2]``

Every candidate runs what a user runs, ``belle train recipes/quickstart.yaml`` in a new process
(``output_dir`` in a temporary folder, ``--epochs`` to shorten it): *belle* with the project's
defaults (threads sized to the idle cores, :mod:`belle_hf.train.threads`), and ``OMP_NUM_THREADS=k``
for each ``k`` of ``--threads`` (default 1 to the usable cores), the settings one would pick by
hand. Each condition runs them all: *idle* (nothing else started by the bench) and *busy* (beside
one CPU-bound process the bench starts and stops). The time is the Trainer's ``train_runtime``
(training and its evaluations, what the thread count changes); the process's wall time is reported
beside it. ``ratio`` = the worst over the conditions of belle's time / the best fixed setting's time
(goal <= 1.2). Load averages before and after are reported: other work on the machine moves every
figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "quickstart.yaml"
SPIN = "while True:\n    pass\n"


def belle_train(output_dir: Path, epochs: int | None, threads: int | None) -> tuple[float, float]:
    """(train_runtime, wall seconds) of one ``belle train`` of the quickstart recipe."""
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    command = [str(Path(sys.executable).with_name("belle")), "train", str(RECIPE), f"output_dir={output_dir}"]
    if epochs is not None:
        command.append(f"training.num_train_epochs={epochs}")
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"belle train failed ({done.returncode}):\n{done.stderr[-3000:]}")
    metrics = json.loads((output_dir / "metrics.json").read_text(encoding="utf-8"))
    return float(metrics["train"]["train_runtime"]), wall


def run(argv: list[str]) -> dict:
    from belle_hf.cores import usable_cores

    cores = len(usable_cores())
    parser = argparse.ArgumentParser(prog="bench/run.py quickstart")
    parser.add_argument("--epochs", type=int, default=None, help="num_train_epochs (default: the recipe's 15)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each candidate per condition (best kept)")
    parser.add_argument("--threads", default=",".join(str(k) for k in range(1, cores + 1)),
                        help="fixed thread counts to compare against")
    args = parser.parse_args(argv)
    fixed = [int(k) for k in args.threads.split(",")]
    candidates: list[tuple[str, int | None]] = [("belle", None)] + [(f"threads{k}", k) for k in fixed]
    result: dict = {"ratio": 0.0, "cores": cores, "load_before": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="bench-quickstart-") as tmp:
        for condition in ("idle", "busy"):
            spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if condition == "busy" else None
            try:
                times: dict[str, float] = {}
                for repeat in range(args.repeats):
                    for name, threads in candidates:  # interleaved, so drifting load hits all alike
                        out = Path(tmp) / f"{condition}-{name}-{repeat}"
                        seconds, wall = belle_train(out, args.epochs, threads)
                        print(f"{condition:5} {name:9} train {seconds:7.1f} s  wall {wall:7.1f} s  "
                              f"load {os.getloadavg()[0]:.2f}", flush=True)
                        if seconds < times.get(name, float("inf")):
                            times[name] = seconds
                            result[f"{condition}_{name}_wall_s"] = round(wall, 1)
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
            best = min((name for name, _ in candidates[1:]), key=times.__getitem__)
            ratio = times["belle"] / times[best]
            result["ratio"] = max(result["ratio"], ratio)
            result[f"{condition}_ratio"] = round(ratio, 2)
            result[f"{condition}_belle_s"] = round(times["belle"], 1)
            result[f"{condition}_best"] = best
            for name, _ in candidates[1:]:
                result[f"{condition}_{name}_s"] = round(times[name], 1)
    result["load_after"] = round(os.getloadavg()[0], 2)
    return result
