"""How many processes a data step runs in: one rule for every stage.

Starting a process costs about a second (and each pickles its function), so a step gets one
process per ``rows_per_process`` rows, at most the cores this process may use and at most ``cap``.
"""

from __future__ import annotations

import os


def available_cores() -> int:
    """The CPUs this process may run on (its affinity, which containers and ``taskset`` narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def processes_for(rows: int, rows_per_process: int, cap: int = 8, requested: int | None = None) -> int | None:
    """``requested`` when given, else the rule above; ``None`` means in this process (as ``datasets``'
    ``num_proc`` reads it)."""
    procs = requested if requested is not None else min(available_cores(), cap, rows // rows_per_process)
    return procs if procs > 1 else None
