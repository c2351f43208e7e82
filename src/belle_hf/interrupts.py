"""Stopping a run cleanly on Ctrl-C (SIGINT) and ``kill`` (SIGTERM).

Python turns SIGINT into ``KeyboardInterrupt`` but lets SIGTERM kill the process on the spot,
so no ``finally`` block runs and an atomic write leaves its temporary file behind.
:func:`handle_signals` (installed by ``belle``'s entry point) makes both signals raise
:class:`Interrupted` in the main thread. Library code that must clean up catches
``KeyboardInterrupt`` (or ``BaseException``), cleans up and re-raises; code that knows how the
user can resume wraps its work in :func:`resume_hint`. The entry point then prints one line,
``interrupted by SIGTERM; <hint>``, and exits with 128 + the signal number (130 or 143), the
code a shell reports for a process killed by that signal.

SIGKILL cannot be caught: everything written goes through append-and-flush files or atomic
renames, so a killed run loses only what was in flight, and :mod:`belle_hf.io` cleans the
temporary files it leaves on the next run.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
DEFAULT_HINT = "nothing half-written was kept; rerun the same command to start again"


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM. ``exit_code`` is 128 + the signal number.

    A subclass of ``KeyboardInterrupt``, so ``except Exception`` never swallows it and code
    written for Ctrl-C handles SIGTERM the same way.
    """

    def __init__(self, signum: int = signal.SIGINT, hint: str | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.hint = hint
        """What was kept and how to resume; set by :func:`resume_hint`."""

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    def message(self) -> str:
        """The one line the ``belle`` command prints."""
        return f"interrupted by {self.signal_name}; {self.hint or DEFAULT_HINT}"


def as_interrupted(error: KeyboardInterrupt) -> Interrupted:
    """``error`` itself when it is :class:`Interrupted`; a plain ``KeyboardInterrupt`` (raised
    where no handler was installed) becomes an ``Interrupted`` by SIGINT."""
    return error if isinstance(error, Interrupted) else Interrupted(signal.SIGINT)


def is_ctrl_c(error: KeyboardInterrupt) -> bool:
    """True for Ctrl-C (SIGINT, or a plain ``KeyboardInterrupt``), False for SIGTERM. Code that
    treats Ctrl-C as "stop this step" (``belle chat``) must still let SIGTERM end the program."""
    return as_interrupted(error).signum == signal.SIGINT


@contextlib.contextmanager
def resume_hint(describe: Callable[[], str]) -> Iterator[None]:
    """An interrupt leaving the block carries ``describe()`` (called at that moment, so it can
    count what was done) as its hint, e.g. ``"12 of 40 rows judged; rerun to resume"``."""
    try:
        yield
    except KeyboardInterrupt as error:
        interrupted = as_interrupted(error)
        interrupted.hint = describe()
        if interrupted is error:
            raise
        raise interrupted from error


def _raise_interrupted(signum: int, frame) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` in the main thread; the
    previous handlers come back afterwards. Does nothing outside the main thread, where Python
    cannot install handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise_interrupted) for signum in HANDLED_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
