"""Secret-scan benchmark: ``python bench/run.py secret_scan [--mib N] [--keep]``.

Writes, in ``bench/_work/secret_scan`` (git-ignored, deleted at the end unless ``--keep``), an
N MiB (default 100) training log with URLs on many lines and an ``hf_`` token on its last line,
and an N MiB binary file (random bytes, clean), then runs what every ``belle hub push-*`` runs
before uploading (:func:`belle_hf.hub.secrets.scan_for_secrets`) on each and measures:

* ``ratio``: scan time / time to just read the same bytes (the floor any scan has), over both files;
* ``log_mib_s`` and ``binary_mib_s``: scan throughput of each file;
* that the log is refused at its last line and the binary passes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

WORK = Path(__file__).resolve().parent / "_work" / "secret_scan"
MIB = 1024 * 1024
LOG_LINE = ("2026-11-30 02:00:00 INFO step {step} loss 1.2345 lr 2.0e-05 grad_norm 0.51 "
            "saved https://huggingface.co/BelleGroup/demo?revision=main#step-{step} 训练中\n")


def _write_files(work: Path, mib: int) -> tuple[Path, Path, int]:
    work.mkdir(parents=True, exist_ok=True)
    log, binary = work / "train.log", work / "blob.bin"
    lines = 0
    with open(log, "w", encoding="utf-8") as out:
        while out.tell() < mib * MIB:
            out.write(LOG_LINE.format(step=lines))
            lines += 1
        out.write("HF_TOKEN=hf_" + "Q" * 34 + "\n")
    with open(binary, "wb") as out:
        for _ in range(mib):
            out.write(os.urandom(MIB))
    return log, binary, lines + 1


def _read_seconds(path: Path) -> float:
    start = time.perf_counter()
    with open(path, "rb") as handle:
        while handle.read(8 * MIB):
            pass
    return time.perf_counter() - start


def run(argv: list[str]) -> dict:
    from belle_hf.errors import BelleError
    from belle_hf.hub.secrets import scan_for_secrets

    parser = argparse.ArgumentParser(prog="bench/run.py secret_scan")
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    shutil.rmtree(WORK, ignore_errors=True)
    log, binary, last_line = _write_files(WORK, args.mib)
    try:
        read = _read_seconds(log) + _read_seconds(binary)
        start = time.perf_counter()
        try:
            scan_for_secrets(WORK, [log.name])
            refused = None
        except BelleError as error:
            refused = str(error)
        log_seconds = time.perf_counter() - start
        start = time.perf_counter()
        scan_for_secrets(WORK, [binary.name])
        binary_seconds = time.perf_counter() - start
        size = log.stat().st_size / MIB
        print(f"log: {refused}")
        assert refused is not None and f"line {last_line}:" in refused, "the token on the last line was missed"
        return {"ratio": (log_seconds + binary_seconds) / read, "log_mib_s": size / log_seconds,
                "binary_mib_s": args.mib / binary_seconds, "read_mib_s": (size + args.mib) / read,
                "mib": args.mib}
    finally:
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)
