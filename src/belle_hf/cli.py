"""The ``belle`` command: parses arguments and calls the library, nothing more.

Each stage keeps its commands in ``belle_hf/<stage>/commands.py`` with a ``register(app)``
function; this module mounts them all. Command modules import only ``typer`` at module level so
that ``belle --help`` stays fast; the heavy libraries load inside the command that needs them.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click
import typer

from belle_hf.errors import BelleError

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

    User errors (:class:`BelleError`: bad input, missing files) print one line naming the
    problem and exit with code 1, without a traceback.
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # The HTTP clients under openai and huggingface_hub log one INFO line per request.
    for noisy in ("httpx", "httpx2", "httpcore", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="belle", standalone_mode=False)
        # Without standalone mode click *returns* the code of an Exit, and typer turns Ctrl-C
        # (KeyboardInterrupt) into Exit(130): an interrupted command must not exit 0.
        if isinstance(code, int) and not isinstance(code, bool):
            return code
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.exceptions.Abort:
        print("Aborted.", file=sys.stderr)
        return 130
    except BelleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
