"""The interactive loop of ``belle chat``: read a line, stream the reply, repeat."""

from __future__ import annotations

import sys
from typing import Callable, TextIO

from belle_hf.chat.session import ChatSession
from belle_hf.errors import BelleError
from belle_hf.interrupts import is_ctrl_c

PROMPT = ">>> "
HELP = "Type a message and press Enter. /reset clears the history, /exit (or Ctrl-D) quits."


def run_terminal_chat(session: ChatSession, read: Callable[[str], str] = input, out: TextIO | None = None) -> None:
    """Chat until ``/exit`` or end of input. ``read`` is ``input`` (with line editing when
    readline is loaded); the reply is written to ``out`` as it streams."""
    out = out or sys.stdout
    print(HELP, file=out, flush=True)
    while True:
        try:
            line = read(PROMPT).strip()
        except EOFError:
            print(file=out)
            break
        except KeyboardInterrupt as stop:
            if not is_ctrl_c(stop):  # SIGTERM ends the chat; Ctrl-C only clears the line
                raise
            print(file=out)
            continue
        if not line:
            continue
        if line == "/exit":
            break
        if line == "/reset":
            session.reset()
            print("(history cleared)", file=out, flush=True)
            continue
        dropped = session.dropped_turns
        try:
            for piece in session.stream_reply(line):
                out.write(piece)
                out.flush()
        except BelleError as error:
            print(f"error: {error}", file=out, flush=True)
            continue
        except KeyboardInterrupt as stop:  # Ctrl-C stops this reply, keeps the chat
            if not is_ctrl_c(stop):
                raise
            print(" (interrupted)", file=out, flush=True)
            continue
        print(file=out, flush=True)
        if session.dropped_turns > dropped:
            print(f"(dropped {session.dropped_turns - dropped} oldest turn(s) to fit the context)", file=out,
                  flush=True)
