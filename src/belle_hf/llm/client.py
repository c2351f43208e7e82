"""A concurrent, cached, retrying client for OpenAI-compatible chat completions."""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Sequence

from belle_hf.errors import BelleError
from belle_hf.llm.cache import ResponseCache, request_key
from belle_hf.llm.pricing import estimate_cost
from belle_hf.redact import redact_url

logger = logging.getLogger(__name__)

Messages = list[dict[str, str]]


@dataclass
class EndpointConfig:
    """Where and how to ask: any OpenAI-compatible ``/v1/chat/completions`` endpoint."""

    base_url: str
    """Endpoint root, e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1``."""
    model: str
    """Model name sent with every request (``gpt-4``, a vLLM model id, ...)."""
    api_key: str | None = field(default=None, repr=False)
    """The key itself; prefer ``api_key_env`` so that it never sits in a command line."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the key, read when ``api_key`` is not given."""
    temperature: float = 0.0
    seed: int | None = 42
    """Sent where supported (OpenAI, vLLM, llama.cpp); ``None`` leaves it out."""
    max_tokens: int | None = None
    timeout: float = 60.0
    """Seconds before one attempt times out (and is retried)."""
    max_retries: int = 5
    """Retries per request on 408/409/429/5xx and timeouts, with exponential backoff and jitter
    (0.5 s doubling up to 8 s, less up to 25 %), honoring ``Retry-After``: the ``openai``
    client's own retry logic."""
    concurrency: int = 8
    """Requests in flight at once."""

    def resolve_api_key(self) -> str:
        """The key to send. Local servers accept any key, so a missing one becomes ``"EMPTY"``."""
        return self.api_key or os.environ.get(self.api_key_env) or "EMPTY"

    def public_dict(self) -> dict[str, Any]:
        """Settings safe to record in outputs: everything but the key, and the URL without
        the credentials it may carry (:func:`belle_hf.redact.redact_url`)."""
        settings = {k: v for k, v in asdict(self).items() if k != "api_key"}
        return {**settings, "base_url": redact_url(self.base_url)}


@dataclass
class ChatResult:
    """One completion, or why there is none."""

    text: str | None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    """True when the answer came from the cache and no request was sent."""
    error: str | None = None
    """Set when every attempt failed; such results are not cached, so a rerun asks again."""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class UsageTotals:
    """Requests and tokens of one client, and their estimated cost."""

    model: str
    requests_sent: int = 0
    cache_hits: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, result: ChatResult) -> None:
        with self._lock:
            if result.cached:
                self.cache_hits += 1
                return
            self.requests_sent += 1
            if result.error:
                self.failures += 1
            self.prompt_tokens += result.prompt_tokens
            self.completion_tokens += result.completion_tokens

    def as_dict(self, prices: dict[str, tuple[float, float]] | None = None) -> dict[str, Any]:
        """Counts of this run (cache hits cost nothing) and the estimated USD cost (``None`` if the
        model's price is unknown)."""
        return {
            "requests_sent": self.requests_sent,
            "cache_hits": self.cache_hits,
            "failures": self.failures,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "estimated_cost_usd": estimate_cost(self.model, self.prompt_tokens, self.completion_tokens, prices),
        }


class ChatClient:
    """Send chat requests to an OpenAI-compatible endpoint, many at a time, each at most once.

    >>> client = ChatClient(EndpointConfig("http://127.0.0.1:8000/v1", "gpt-4"), cache_dir="cache")
    >>> results = client.complete_many([[{"role": "user", "content": "你好"}]])
    """

    def __init__(self, config: EndpointConfig, cache_dir: str | os.PathLike | None = None):
        import openai

        self.config = config
        self.cache = ResponseCache(cache_dir) if cache_dir is not None else None
        self.usage = UsageTotals(model=config.model)
        self._openai = openai.OpenAI(
            base_url=config.base_url,
            api_key=config.resolve_api_key(),
            timeout=config.timeout,
            max_retries=config.max_retries,
        )

    def request_body(self, messages: Messages, **overrides: Any) -> dict[str, Any]:
        """The JSON body sent for ``messages`` (also the cache key's content)."""
        body: dict[str, Any] = {"model": self.config.model, "messages": messages,
                                "temperature": self.config.temperature}
        if self.config.seed is not None:
            body["seed"] = self.config.seed
        if self.config.max_tokens is not None:
            body["max_tokens"] = self.config.max_tokens
        body.update({k: v for k, v in overrides.items() if v is not None})
        return body

    def complete(self, messages: Messages, **overrides: Any) -> ChatResult:
        """One completion: from the cache when this exact request was answered before."""
        body = self.request_body(messages, **overrides)
        key = request_key(self.config.model, body)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            result = ChatResult(**hit, cached=True)
            self.usage.add(result)
            return result
        result = self._send(body)
        self.usage.add(result)
        if result.ok and self.cache is not None:
            self.cache.put(key, {"text": result.text, "finish_reason": result.finish_reason,
                                 "prompt_tokens": result.prompt_tokens,
                                 "completion_tokens": result.completion_tokens})
        return result

    def _send(self, body: dict[str, Any]) -> ChatResult:
        import openai

        try:
            response = self._openai.chat.completions.create(**body)
        except openai.APIStatusError as error:
            return ChatResult(text=None, error=f"HTTP {error.status_code} after retries")
        except openai.APITimeoutError:
            return ChatResult(text=None, error="timed out after retries")
        except openai.APIConnectionError:
            return ChatResult(text=None, error=f"cannot connect to {redact_url(self.config.base_url)}")
        except (openai.OpenAIError, ValueError) as error:  # a 200 whose body is not a completion
            return ChatResult(text=None, error=f"unreadable response ({type(error).__name__})")
        if not getattr(response, "choices", None):
            return ChatResult(text=None, error="response has no choices")
        choice = response.choices[0]
        usage = getattr(response, "usage", None)
        return ChatResult(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        )

    def complete_many(
        self,
        requests: Sequence[Messages] | Iterable[Messages],
        on_result: Callable[[int, ChatResult], None] | None = None,
        progress: str | None = None,
        overrides: Sequence[dict[str, Any]] | None = None,
    ) -> list[ChatResult]:
        """Complete every request with at most ``config.concurrency`` in flight.

        ``on_result(index, result)`` is called (from the calling thread) as each finishes,
        so callers can append outputs as they come and a killed run loses nothing answered.
        Cached requests finish at once without a network call. ``overrides``, when given, holds
        one dict of body settings per request (e.g. its own ``seed``), as in :meth:`complete`.
        """
        requests = list(requests)
        per_request = [dict(o) for o in overrides] if overrides is not None else [{} for _ in requests]
        if len(per_request) != len(requests):
            raise ValueError("overrides must have one entry per request")
        results: list[ChatResult | None] = [None] * len(requests)
        # Identical requests are sent once; every index that asked gets the answer.
        indices_by_key: dict[str, list[int]] = {}
        for index, messages in enumerate(requests):
            key = request_key(self.config.model, self.request_body(messages, **per_request[index]))
            indices_by_key.setdefault(key, []).append(index)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(requests), desc=progress, unit="req")
        with ThreadPoolExecutor(max_workers=max(1, self.config.concurrency)) as pool:
            futures = {pool.submit(self.complete, requests[indices[0]], **per_request[indices[0]]): indices
                       for indices in indices_by_key.values()}
            for future in as_completed(futures):
                result = future.result()
                for index in futures[future]:
                    results[index] = result
                    if on_result is not None:
                        on_result(index, result)
                    if bar is not None:
                        bar.update(1)
        if bar is not None:
            bar.close()
        return results  # type: ignore[return-value]


def require_endpoint(base_url: str | None, model: str | None) -> None:
    """Raise a clear error when the endpoint settings are missing."""
    if not base_url:
        raise BelleError("--base-url is required (an OpenAI-compatible endpoint, e.g. https://api.openai.com/v1)")
    if not model:
        raise BelleError("--model is required (the model name the endpoint serves)")
