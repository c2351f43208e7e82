"""Estimated cost of chat completions, from published per-token prices.

Prices change; pass your own ``prices`` where it matters. Unknown models cost ``None``
(unknown), never 0.
"""

from __future__ import annotations

# USD per million tokens: (prompt, completion). Longest matching prefix wins.
PRICES_PER_MILLION: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4-32k": (60.00, 120.00),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
}


def price_of(model: str, prices: dict[str, tuple[float, float]] | None = None) -> tuple[float, float] | None:
    """(prompt, completion) USD per million tokens for ``model``, or ``None`` if unknown."""
    table = prices if prices is not None else PRICES_PER_MILLION
    matches = [name for name in table if model == name or model.startswith(name)]
    return table[max(matches, key=len)] if matches else None


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int,
                  prices: dict[str, tuple[float, float]] | None = None) -> float | None:
    """Estimated USD cost of the tokens, or ``None`` when the model's price is unknown."""
    price = price_of(model, prices)
    if price is None:
        return None
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000
