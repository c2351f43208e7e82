"""How many processes a data step runs in: one rule for every stage.

Starting a process costs about a second (and each pickles its function), so a step gets one
process per ``rows_per_process`` rows, at most the cores this process may use and at most ``cap``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def usable_cores() -> list[int]:
    """The CPUs this process may run on (its affinity, which containers and ``taskset`` narrow)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return list(range(os.cpu_count() or 1))


def available_cores() -> int:
    """How many CPUs this process may run on."""
    return len(usable_cores())


def processes_for(rows: int, rows_per_process: int, cap: int = 8, requested: int | None = None) -> int | None:
    """``requested`` when given, else the rule above; ``None`` means in this process (as ``datasets``'
    ``num_proc`` reads it)."""
    procs = requested if requested is not None else min(available_cores(), cap, rows // rows_per_process)
    return procs if procs > 1 else None


@contextlib.contextmanager
def keep_tokenizer_threads() -> Iterator[None]:
    """Around a ``datasets`` ``map`` with ``num_proc``: put ``TOKENIZERS_PARALLELISM`` back as it was.

    ``datasets`` sets ``TOKENIZERS_PARALLELISM=false`` for its worker processes and afterwards
    rebinds ``os.environ`` to a copy, which leaves the variable set in the real environment of this
    process; the fast tokenizer (Rust, which reads that environment) then runs on one thread for
    the rest of the process: after a multi-process ``load()`` of 1M rows, tokenizing ran at half
    its rate on 2 cores."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
            os.unsetenv("TOKENIZERS_PARALLELISM")
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before
