"""The ``belle`` command: parses arguments and calls the library, nothing more.

Each stage keeps its commands in ``belle_hf/<stage>/commands.py`` with a ``register(app)``
function; this module mounts them all. Command modules import only ``typer`` at module level so
that ``belle --help`` stays fast; the heavy libraries load inside the command that needs them.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click
import typer

from belle_hf.errors import BelleError
from belle_hf.interrupts import as_interrupted, handle_signals

app = typer.Typer(
    name="belle",
    help="BELLE on the Hugging Face stack: Chinese instruction data to a fine-tuned, evaluated, "
    "quantized and published chat model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Modules with a ``register(app)`` function, mounted in this order.
COMMAND_MODULES = [
    "belle_hf.data.commands",
    "belle_hf.data.generate.commands",
    "belle_hf.train.commands",
    "belle_hf.eval.commands",
    "belle_hf.hub.commands",
    "belle_hf.quant.commands",
    "belle_hf.chat.commands",
    "belle_hf.testing.commands",
]


def _mount_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_mount_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``belle`` console script. Returns the exit code.

    - User errors (:class:`BelleError`: bad input, missing files) and files that cannot be read or
      written print one line naming the problem and exit 1, without a traceback.
    - Usage errors (unknown option, missing argument) print as click prints them and exit 2.
    - SIGINT and SIGTERM stop the command (see :mod:`belle_hf.interrupts`): one line on stderr
      saying what was kept and how to resume, exit 130 or 143.
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # The HTTP clients under openai and huggingface_hub log one INFO line per request.
    for noisy in ("httpx", "httpx2", "httpcore", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    command = typer.main.get_command(app)
    args = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    try:
        with handle_signals():
            # make_context + invoke is what click's ``main`` does, minus its handlers: typer's
            # ``main`` turns an interrupt into a bare exit code 130, losing which signal stopped
            # the run and what it kept.
            with command.make_context("belle", args) as ctx:
                command.invoke(ctx)
    except KeyboardInterrupt as error:
        interrupted = as_interrupted(error)
        print(interrupted.message(), file=sys.stderr)
        return interrupted.exit_code
    # typer >= 0.2x vendors its own click: its exceptions derive from typer's, not click's.
    except (typer.Exit, click.exceptions.Exit) as done:
        return done.exit_code
    except (typer.TyperException, click.ClickException) as error:
        error.show()
        return error.exit_code
    except (typer.Abort, click.exceptions.Abort):  # Ctrl-C or end of input at a prompt
        print("Aborted.", file=sys.stderr)
        return 130
    except BelleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # stdout went away (``belle ... | head``): stop quietly, as click does, and keep Python
        # from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:
        # A file the user named cannot be read or written (permissions, a file where a folder
        # should be, a full disk): that is the user's to fix, so one line, not a traceback.
        if error.filename is None:
            raise
        print(f"error: {error.filename}: {error.strerror or error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
