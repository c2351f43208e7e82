"""A concurrent, cached, retrying client for OpenAI-compatible chat completions."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Sequence

from belle_hf.errors import ConfigError
from belle_hf.llm.cache import ResponseCache, request_key
from belle_hf.llm.pricing import estimate_cost
from belle_hf.redact import redact_url

logger = logging.getLogger(__name__)

Messages = list[dict[str, str]]

STOP_GRACE_SECONDS = 30.0
"""After an interrupt, how long requests already in flight may take to finish (at most one
attempt's ``timeout``); their replies are paid for, so they are kept. Nothing new is sent."""
STOPPED = "not sent: the run was interrupted"


def _help(text: str, **cli: Any) -> dict[str, Any]:
    """Field metadata: the help text, and settings for its command-line option
    (:func:`belle_hf.options.config_options` turns the field into ``--field-name``)."""
    return {"help": text, "cli": cli}


@dataclass
class EndpointConfig:
    """Where and how to ask: any OpenAI-compatible ``/v1/chat/completions`` endpoint.

    The one declaration of the endpoint settings: ``belle eval judge``, ``eval generate``,
    ``eval serve-page`` and ``data generate`` derive their options (and defaults) from it.
    """

    base_url: str = field(metadata=_help("OpenAI-compatible endpoint, e.g. https://api.openai.com/v1 "
                                         "or http://127.0.0.1:8000/v1."))
    model: str = field(metadata=_help("Model name the endpoint serves, e.g. gpt-4."))
    api_key: str | None = field(default=None, repr=False, metadata=_help(
        "The endpoint's key. Prefer the environment variable (api-key-env): a key on a command line "
        "lands in shell history."))
    api_key_env: str = field(default="OPENAI_API_KEY", metadata=_help(
        "Environment variable holding the key, read when no key is given."))
    temperature: float = 0.0
    seed: int | None = 42
    """Sent where supported (OpenAI, vLLM, llama.cpp); ``None`` leaves it out."""
    max_tokens: int | None = None
    timeout: float = field(default=120.0, metadata=_help("Seconds before one attempt times out (and is retried).",
                                                         min=0.001))
    max_retries: int = field(default=5, metadata=_help(
        "Retries per request on 408/409/429/5xx and timeouts, with exponential backoff.", min=0))
    """Retries per request on 408/409/429/5xx and timeouts, with exponential backoff and jitter
    (0.5 s doubling up to 8 s, less up to 25 %), honoring ``Retry-After``: the ``openai``
    client's own retry logic."""
    concurrency: int = field(default=8, metadata=_help("Requests in flight at once.", min=1))

    def __post_init__(self) -> None:
        from urllib.parse import urlsplit

        try:
            url = urlsplit(self.base_url) if isinstance(self.base_url, str) else None
            valid = url is not None and url.scheme in ("http", "https") and bool(url.hostname)
        except ValueError:  # e.g. a broken [IPv6] host
            valid = False
        if not valid:
            shown = redact_url(self.base_url) if isinstance(self.base_url, str) else self.base_url
            # Checked before anything is sent: a typo must not become a request to the wrong place.
            raise ConfigError("base_url", "must be an http:// or https:// URL with a host name, "
                                          f"e.g. https://api.openai.com/v1 (got {shown!r})")
        if not self.model or not isinstance(self.model, str):
            raise ConfigError("model", "must name the model the endpoint serves")
        if self.concurrency < 1:
            raise ConfigError("concurrency", f"must be at least 1, not {self.concurrency}")
        if self.max_retries < 0:
            raise ConfigError("max_retries", f"must be 0 or more, not {self.max_retries}")
        if not self.timeout > 0:
            raise ConfigError("timeout", f"must be more than 0 seconds, not {self.timeout}")

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
        self._stopping = threading.Event()
        self._openai = openai.OpenAI(
            base_url=config.base_url,
            api_key=config.resolve_api_key(),
            timeout=config.timeout,
            max_retries=config.max_retries,
            # Every attempt, retries included, passes this hook: once the run is stopped no
            # request leaves the process (the openai client re-raises its own errors at once,
            # without retrying them).
            http_client=openai.DefaultHttpxClient(event_hooks={"request": [self._refuse_after_stop]}),
        )

    def _refuse_after_stop(self, request: Any) -> None:
        if self._stopping.is_set():
            import openai

            raise openai.OpenAIError(STOPPED)

    def stop(self) -> None:
        """Send nothing more: requests not started are never sent, retries are not made. A
        stopped client stays stopped (make a new one to go on)."""
        self._stopping.set()

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
        if self._stopping.is_set():
            return ChatResult(text=None, error=STOPPED)
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
            if self._stopping.is_set():
                return ChatResult(text=None, error=STOPPED)
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

        Requests start one by one as earlier ones finish, never queued in bulk, so an interrupt
        (``KeyboardInterrupt``, SIGTERM via :mod:`belle_hf.interrupts`) stops the run at once:
        nothing more is sent (:meth:`stop`), the requests in flight get up to
        ``min(timeout, STOP_GRACE_SECONDS)`` to finish and their replies still reach
        ``on_result``, and the interrupt is re-raised.
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
        waiting = iter(indices_by_key.values())
        finished: queue.Queue = queue.Queue()
        taking = threading.Lock()
        taken = received = 0
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(requests), desc=progress, unit="req")

        def work() -> None:
            # Each worker takes the next request only when its previous one is done, so at most
            # ``concurrency`` are ever in flight and nothing is queued that a stop would have to
            # cancel.
            nonlocal taken
            while not self._stopping.is_set():
                with taking:
                    indices = next(waiting, None)
                    if indices is None:
                        return
                    taken += 1
                try:
                    outcome: ChatResult | BaseException = self.complete(requests[indices[0]],
                                                                        **per_request[indices[0]])
                except BaseException as error:  # re-raised in the calling thread
                    outcome = error
                finished.put((indices, outcome))

        def deliver(indices: list[int], outcome: ChatResult | BaseException) -> None:
            if isinstance(outcome, BaseException):
                raise outcome
            for index in indices:
                results[index] = outcome
                if on_result is not None:
                    on_result(index, outcome)
                if bar is not None:
                    bar.update(1)

        # Daemon threads, not a ThreadPoolExecutor: the executor's workers are joined at
        # interpreter exit, so one request hanging in its retries would hold an interrupted
        # process open past the grace period.
        for _ in range(min(max(1, self.config.concurrency), len(indices_by_key))):
            threading.Thread(target=work, name="belle-chat", daemon=True).start()
        try:
            while received < len(indices_by_key):
                indices, outcome = finished.get()
                received += 1
                deliver(indices, outcome)
        except BaseException as error:
            self.stop()
            with taking:
                in_flight = taken - received
            if isinstance(error, KeyboardInterrupt) and in_flight:
                grace = min(self.config.timeout, STOP_GRACE_SECONDS)
                logger.warning("stopping: nothing more is sent; waiting up to %.0f s for %d request(s) in flight "
                               "(interrupt again to abandon them)", grace, in_flight)
                deadline = time.monotonic() + grace
                while received < taken and deadline > time.monotonic():
                    try:
                        indices, outcome = finished.get(timeout=deadline - time.monotonic())
                    except queue.Empty:
                        break
                    received += 1
                    if isinstance(outcome, ChatResult) and outcome.error != STOPPED:
                        deliver(indices, outcome)
            raise
        finally:
            if bar is not None:
                bar.close()
        return results  # type: ignore[return-value]
