"""Talking to any OpenAI-compatible chat endpoint (OpenAI, Azure OpenAI, vLLM, llama.cpp server,
``belle serve``): bounded concurrency, retries with backoff, an on-disk response cache so that
interrupted runs resume without resending, and token/cost accounting.

Shared by the GPT-4 judge (:mod:`belle_hf.eval`) and self-instruct generation
(:mod:`belle_hf.data.generate`).
"""

from belle_hf.llm.cache import ResponseCache, request_key
from belle_hf.llm.client import ChatClient, ChatResult, EndpointConfig, UsageTotals
from belle_hf.llm.pricing import PRICES_PER_MILLION, estimate_cost

__all__ = [
    "PRICES_PER_MILLION",
    "ChatClient",
    "ChatResult",
    "EndpointConfig",
    "ResponseCache",
    "UsageTotals",
    "estimate_cost",
    "request_key",
]
