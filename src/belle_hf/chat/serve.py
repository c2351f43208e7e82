"""``belle serve``: an OpenAI-compatible server for a local model, through ``transformers serve``.

transformers ships a maintained FastAPI/uvicorn server (``transformers.cli.serve.Serve``) with
``/v1/chat/completions`` (streaming over SSE and not), ``/v1/models`` and ``/health``; it runs on
CPU from a local folder, offline. It is reused as is; this module only prepares what it loads:
a LoRA adapter merged into the weights and BELLE's chat template when the model has none
(see :func:`belle_hf.chat.loading.prepare_model_folder`). Clients name the model by the id that
``/v1/models`` lists (the folder path).
"""

from __future__ import annotations

import os
import tempfile

from belle_hf.chat.loading import prepare_model_folder
from belle_hf.extras import require_extra


def serve(
    model: str | os.PathLike,
    adapter: str | os.PathLike | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    device: str = "auto",
    log_level: str = "warning",
) -> None:
    """Serve ``model`` (with ``adapter`` merged) until interrupted."""
    require_extra("serve", "Serving a model", "fastapi", "uvicorn", "pydantic")  # what transformers serve imports
    from transformers.cli.serve import Serve

    with tempfile.TemporaryDirectory(prefix="belle-serve-") as work_dir:
        folder = prepare_model_folder(model, adapter, work_dir)
        print(f"serving {folder} on http://{host}:{port}/v1 (model id: {folder})", flush=True)
        # uvicorn (>= 0.29, pinned in the serve extra) catches SIGINT/SIGTERM itself, shuts down
        # cleanly, then restores belle's handlers and raises the signal again: it reaches us as
        # belle_hf.interrupts.Interrupted, so ``belle serve`` exits 130/143 like every command.
        Serve(force_model=str(folder), host=host, port=port, device=device, log_level=log_level)
