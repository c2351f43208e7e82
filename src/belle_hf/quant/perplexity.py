"""Perplexity of a causal LM on a list of texts (token-weighted, each text scored on its own)."""

from __future__ import annotations

import math


def perplexity(model, tokenizer, texts: list[str], max_length: int = 512) -> tuple[float, int]:
    """``(perplexity, number of predicted tokens)`` of ``model`` on ``texts``.

    Each text is cut to ``max_length`` tokens and scored separately (no padding, no sliding
    window: chat turns are short), then the negative log-likelihoods are summed over all
    predicted tokens, so long texts weigh more than short ones, as in the wikitext numbers.
    """
    import torch

    device = next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False, truncation=True, max_length=max_length,
                            return_tensors="pt")["input_ids"].to(device)
            predicted = ids.shape[1] - 1
            if predicted < 1:
                continue
            loss = model(input_ids=ids, labels=ids).loss.float().item()
            total_nll += loss * predicted
            total_tokens += predicted
    if total_tokens == 0:
        raise ValueError("no text with at least two tokens to compute perplexity on")
    return math.exp(total_nll / total_tokens), total_tokens
