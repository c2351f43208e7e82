"""A multi-turn chat session over a generation backend, with history kept within the context.

The backend streams text as the model produces it: transformers' ``TextIteratorStreamer`` for HF
models (it flushes every CJK character at once, so Chinese appears character by character), or
llama-cpp-python for GGUF files.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Iterator, Protocol

from belle_hf.errors import BelleError


@dataclass
class ChatSettings:
    """Sampling settings of each chat reply (eval generate has its own, greedy by default: `belle_hf.eval.generate.GenerationSettings`)."""

    max_new_tokens: int = 256
    temperature: float = 0.7
    """0 means greedy decoding."""
    top_p: float = 0.9
    repetition_penalty: float = 1.0


class Backend(Protocol):
    context_length: int

    def count_tokens(self, messages: list[dict[str, str]]) -> int: ...

    def stream(self, messages: list[dict[str, str]], settings: ChatSettings) -> Iterator[str]: ...


def _context_length(model, tokenizer) -> int:
    lengths = [getattr(model.config, "max_position_embeddings", None)]
    if 0 < (tokenizer.model_max_length or 0) < 1_000_000:  # tokenizers without a limit say ~1e30
        lengths.append(tokenizer.model_max_length)
    lengths = [length for length in lengths if length]
    return min(lengths) if lengths else 2048


class HFBackend:
    """A transformers model (with or without a peft adapter) and its tokenizer."""

    def __init__(self, model, tokenizer, context_length: int | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.context_length = context_length or _context_length(model, tokenizer)

    def _inputs(self, messages):
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                  return_dict=True)

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        return int(self._inputs(messages)["input_ids"].shape[1])

    def generate_kwargs(self, settings: ChatSettings) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": settings.max_new_tokens,
            "repetition_penalty": settings.repetition_penalty,
            "eos_token_id": self.tokenizer.eos_token_id,
            "pad_token_id": self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id,
        }
        if settings.temperature > 0:
            kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def stream(self, messages: list[dict[str, str]], settings: ChatSettings) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        inputs = self._inputs(messages).to(self.model.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []

        def generate() -> None:
            try:
                self.model.generate(**inputs, streamer=streamer, **self.generate_kwargs(settings))
            except BaseException as error:  # surfaced in the caller's thread below
                failure.append(error)
                streamer.end()

        thread = threading.Thread(target=generate, daemon=True)
        thread.start()
        for piece in streamer:
            if piece:
                yield piece
        thread.join()
        if failure:
            raise failure[0]


class LlamaCppBackend:
    """A GGUF file run by llama-cpp-python; the prompt is rendered with the HF tokenizer's chat
    template (the folder the GGUF was exported from), so both backends see the same text."""

    def __init__(self, gguf_file: str, tokenizer, context_length: int | None = None):
        try:
            from llama_cpp import Llama
        except ImportError as error:
            raise BelleError(
                "--gguf needs llama-cpp-python (`pip install llama-cpp-python`, which compiles llama.cpp); "
                "or chat with the HF model folder instead"
            ) from error
        self.tokenizer = tokenizer
        self.llm = Llama(model_path=str(gguf_file), n_ctx=context_length or 0, verbose=False)
        self.context_length = self.llm.n_ctx()

    def _prompt(self, messages) -> str:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        return len(self.llm.tokenize(self._prompt(messages).encode("utf-8"), add_bos=True, special=True))

    def stream(self, messages: list[dict[str, str]], settings: ChatSettings) -> Iterator[str]:
        chunks = self.llm.create_completion(
            self._prompt(messages), max_tokens=settings.max_new_tokens, temperature=settings.temperature,
            top_p=settings.top_p, repeat_penalty=settings.repetition_penalty, stream=True,
        )
        for chunk in chunks:
            piece = chunk["choices"][0]["text"]
            if piece:
                yield piece


class ChatSession:
    """Conversation state: the turns so far, trimmed (oldest first) to fit the context length."""

    def __init__(self, backend: Backend, settings: ChatSettings | None = None, system: str | None = None):
        self.backend = backend
        self.settings = settings or ChatSettings()
        self.system = system
        self.history: list[dict[str, str]] = []
        self.dropped_turns = 0
        """Turns dropped from the start of the history so far to stay within the context."""

    @classmethod
    def from_model(cls, model, tokenizer, settings: ChatSettings | None = None, system: str | None = None,
                   context_length: int | None = None) -> "ChatSession":
        return cls(HFBackend(model, tokenizer, context_length), settings, system)

    def reset(self) -> None:
        """Forget the conversation (the system prompt stays)."""
        self.history = []

    def _messages(self, user_text: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + self.history + [{"role": "user", "content": user_text}]

    def prompt_messages(self, user_text: str) -> list[dict[str, str]]:
        """The messages sent for ``user_text``: the system prompt, as many recent turns as fit in
        the context with room for ``max_new_tokens``, and the new message. Older turns are dropped
        from the history for good, a user/assistant pair at a time."""
        budget = self.backend.context_length - self.settings.max_new_tokens
        messages = self._messages(user_text)
        while self.backend.count_tokens(messages) > budget:
            if not self.history:
                raise BelleError(
                    f"the message does not fit in the context ({self.backend.context_length} tokens, "
                    f"{self.settings.max_new_tokens} kept for the reply); shorten it or lower --max-new-tokens"
                )
            del self.history[:2]
            self.dropped_turns += 1
            messages = self._messages(user_text)
        return messages

    def stream_reply(self, user_text: str) -> Iterator[str]:
        """Yield the reply to ``user_text`` piece by piece; the turn joins the history at the end."""
        messages = self.prompt_messages(user_text)
        pieces = []
        for piece in self.backend.stream(messages, self.settings):
            pieces.append(piece)
            yield piece
        self.history += [{"role": "user", "content": user_text},
                         {"role": "assistant", "content": "".join(pieces).strip()}]

    def reply(self, user_text: str) -> str:
        return "".join(self.stream_reply(user_text))
