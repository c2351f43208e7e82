"""``belle train RECIPE --nproc N``: one training process per device through ``torchrun``.

Each process runs ``python -m belle_hf.train RECIPE [key=value ...]``; ``torchrun`` sets the
distributed environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...) that ``accelerate`` and the
``Trainer`` read, so DeepSpeed configs work too (plain ``python`` does not set it, and DeepSpeed
then falls back to mpi4py). Without a GPU the processes talk over ``gloo``. For several machines,
run ``accelerate launch`` (or ``torchrun``) yourself on each, as the README shows.
"""

from __future__ import annotations

import os
import subprocess
import sys


def launch_command(recipe_path: str, overrides: list[str], nproc: int) -> list[str]:
    """The ``torchrun`` command line that trains ``recipe_path`` on ``nproc`` local processes."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "belle_hf.train", str(recipe_path), *overrides]


def launch(recipe_path: str, overrides: list[str], nproc: int) -> int:
    """Run the training on ``nproc`` processes; returns the launcher's exit code."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run(launch_command(recipe_path, overrides, nproc), env=env, check=False).returncode
