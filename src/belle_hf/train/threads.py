"""How many CPU threads a training process gives torch.

torch sizes its intra-op pool to every core. On an idle machine that is a little faster than one
thread, but its OpenMP threads wait for each other at the end of every operation, so when other
work holds some cores the whole pool runs at the pace of the thread that shares a core: on 2 busy
cores the quickstart took 125-171 s with the default pool and ~30 s with one thread. So a CPU run
uses as many threads as cores are idle right now (measured over a quarter second, among the cores
this process may run on), at least one. ``OMP_NUM_THREADS`` set by the user, or by ``belle train
--nproc`` (one thread per process), is left alone; ``python bench/run.py quickstart`` measures the
choice against fixed thread counts, idle and beside a CPU-bound process. With one thread the fast
tokenizer's own pool is turned off too, and data loading stays in the training process
(transformers' ``dataloader_num_workers: 0``): workers would be more processes on the same cores.
"""

from __future__ import annotations

import logging
import os

from belle_hf.cores import usable_cores

logger = logging.getLogger(__name__)

SAMPLE_SECONDS = 0.25


def idle_cores(cores: list[int], seconds: float = SAMPLE_SECONDS) -> float:
    """How many of ``cores`` were idle over the last ``seconds`` (psutil: /proc/stat and its kin)."""
    import psutil

    busy = psutil.cpu_percent(interval=seconds, percpu=True)
    return sum(100.0 - busy[core] for core in cores if core < len(busy)) / 100.0


def training_threads() -> int | None:
    """The intra-op thread count for a CPU training process, or ``None`` where ``OMP_NUM_THREADS``
    already says it."""
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    cores = usable_cores()
    return max(1, min(len(cores), int(idle_cores(cores) + 0.5)))


def use_cpu_threads() -> None:
    """Set torch's thread count for a training run on the CPU (GPU runs keep torch's default)."""
    threads = training_threads()
    if threads is None:
        return
    import torch

    torch.set_num_threads(threads)
    if threads == 1:
        # the fast tokenizer's own thread pool would compete the same way
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logger.info("training on %d CPU thread%s (%d usable cores; set OMP_NUM_THREADS to choose)", threads,
                "" if threads == 1 else "s", len(usable_cores()))
