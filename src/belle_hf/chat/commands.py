"""``belle chat`` and ``belle serve``: thin wrappers over :mod:`belle_hf.chat`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def chat(
    model: str = typer.Argument(..., help="HF model folder, Hub id or LoRA adapter folder (with --gguf: the folder "
                                "whose tokenizer and chat template render the prompt)."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="peft LoRA adapter folder to apply."),
    gguf: Optional[Path] = typer.Option(None, "--gguf", help="Run this GGUF file with llama-cpp-python instead."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="Answer this message once and exit."),
    system: Optional[str] = typer.Option(None, "--system", help="System message."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens"),
    temperature: float = typer.Option(0.7, "--temperature", help="0: greedy."),
    top_p: float = typer.Option(0.9, "--top-p"),
    repetition_penalty: float = typer.Option(1.0, "--repetition-penalty"),
) -> None:
    """Chat with MODEL in the terminal, replies streamed as they are generated (/reset, /exit)."""
    import sys

    from belle_hf.chat.loading import load_chat_model
    from belle_hf.chat.session import ChatSession, ChatSettings, HFBackend, LlamaCppBackend
    from belle_hf.chat.terminal import run_terminal_chat
    from belle_hf.errors import BelleError
    from belle_hf.models import load_chat_tokenizer

    if gguf is not None and adapter is not None:
        raise BelleError("--adapter applies to HF models; merge it before exporting the GGUF file")
    if gguf is not None and not gguf.is_file():
        raise BelleError(f"{gguf}: GGUF file not found")
    settings = ChatSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                  repetition_penalty=repetition_penalty)
    if gguf is not None:
        backend = LlamaCppBackend(str(gguf), load_chat_tokenizer(model))
    else:
        backend = HFBackend(*load_chat_model(model, adapter))
    session = ChatSession(backend, settings, system)
    if prompt is not None:
        for piece in session.stream_reply(prompt):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    run_terminal_chat(session)


def serve(
    model: str = typer.Argument(..., help="HF model folder, Hub id or LoRA adapter folder."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="peft LoRA adapter folder, merged before serving."),
    port: int = typer.Option(8000, "--port"),
    host: str = typer.Option("127.0.0.1", "--host", help="Listen address (0.0.0.0 exposes it to the network)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda:0, ..."),
) -> None:
    """Serve MODEL with an OpenAI-compatible API (/v1/chat/completions, /v1/models) via transformers serve."""
    from belle_hf.chat.serve import serve as serve_model

    serve_model(model, adapter=adapter, host=host, port=port, device=device)


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
    app.command("serve")(serve)
