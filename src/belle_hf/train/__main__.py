"""``python -m belle_hf.train RECIPE [key=value ...]``: train in this process.

This is what each process of a multi-process run executes (``belle train --nproc N``,
``torchrun``, ``accelerate launch``); the launcher provides the distributed environment.
"""

from __future__ import annotations

import logging
import os
import sys

from belle_hf.errors import BelleError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m belle_hf.train RECIPE.yaml [key=value ...]")
        return 0 if argv else 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from belle_hf.quiet import quiet_third_party_logs

    quiet_third_party_logs()
    from belle_hf.train.commands import report
    from belle_hf.train.recipe import load_recipe
    from belle_hf.train.trainer import train

    try:
        recipe = load_recipe(argv[0], argv[1:])
        result = train(recipe)
    except BelleError as error:
        if os.environ.get("RANK", "0") == "0":  # every process fails alike; one line is enough
            print(f"error: {error}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":  # the main process reports, once (``belle train --nproc`` does not)
        report(result, recipe)
    return 0


if __name__ == "__main__":
    sys.exit(main())
