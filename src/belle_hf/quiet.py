"""Silence start-up messages of optional libraries that say nothing about the user's run.

Importing transformers, peft and TRL pulls in whatever optional packages are installed, and some of
them announce themselves on every command: torchao cannot load its CUDA kernels on a CPU build and
has no Triton, DeepSpeed guesses the accelerator, GPT-QModel prints a banner, torch warns about how
torchao registers its enums, transformers warns that peft calls a renamed method. Each is silenced
here by name (a logger's level, one warning's text, DeepSpeed's own setting); the warnings and
errors of those libraries about the run itself still show.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings

_done = False


def quiet_third_party_logs() -> None:
    """Apply the filters; call it before transformers is imported. The warning filter is set again on
    every call (warnings.catch_warnings blocks, as pytest runs each test in, drop it on exit); the
    rest once per process."""
    # peft still calls the renamed `is_gradient_checkpointing`; the recipe cannot change that.
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    global _done
    if _done:
        return
    _done = True
    # torchao: "Failed to load ...: Could not load this library" (its CUDA kernels on a CPU torch) and
    # "Detected no triton"; torch: "<enum ...> is an Enum subclass ..." as torchao registers its enums.
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # DeepSpeed logs "Setting accelerator to CPU ... we were unable to detect it" when it has to guess;
    # DS_ACCELERATOR is its documented way to say which one, and without CUDA it is the CPU.
    if "DS_ACCELERATOR" not in os.environ and importlib.util.find_spec("deepspeed") is not None:
        import torch

        if not torch.cuda.is_available():
            os.environ["DS_ACCELERATOR"] = "cpu"
    # GPT-QModel (the [quant] extra) prints a banner and GIL/environment notes through its own logger
    # when peft checks for its layers while building any LoRA model. That logger resets its level
    # when created, so the import is done here with those records switched off for its duration.
    if importlib.util.find_spec("gptqmodel") is not None:
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            import gptqmodel  # noqa: F401
        except Exception:  # noqa: BLE001 - a broken optional install is peft's to report, later
            pass
        finally:
            logging.disable(previous)
