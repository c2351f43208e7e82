"""Chinese calibration and held-out text for GPTQ and perplexity, taken from the data layer.

BELLE's GPTQ models were calibrated on English wikitext; here the calibration samples are
conversations from any BELLE corpus or file (``belle_hf.data.load``), rendered with the model's
chat template, so the quantizer sees the text the chat model will actually process.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable

from belle_hf.errors import BelleError
from belle_hf.templates import render_belle_prompt


def load_conversations(source: str, limit: int, skip: int = 0) -> list[list[dict[str, Any]]]:
    """The ``messages`` of records ``skip .. skip+limit`` of ``source`` (streamed, so a multi-million
    corpus is never downloaded whole)."""
    from belle_hf.data import load

    dataset = load(str(source), streaming=True)
    rows = itertools.islice(iter(dataset), skip, skip + limit)
    return [row["messages"] for row in rows if row.get("messages")]


def chat_texts(conversations: Iterable[list[dict[str, Any]]], tokenizer) -> list[str]:
    """Render each conversation as the model sees it: its chat template, or BELLE's format."""
    texts = []
    for messages in conversations:
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(messages, tokenize=False)
        else:
            text = render_belle_prompt(messages, eos_token=tokenizer.eos_token or "</s>", add_generation_prompt=False)
        if text.strip():
            texts.append(text)
    return texts


def split_calibration_and_heldout(
    calibration: str, n_samples: int, n_heldout: int, heldout: str | None = None
) -> tuple[list[list[dict]], list[list[dict]]]:
    """Calibration conversations and held-out conversations that the quantizer never saw.

    Without ``heldout``, the held-out set is the ``n_heldout`` records that follow the
    calibration records in ``calibration``; with it, the first ``n_heldout`` records of ``heldout``.
    """
    if n_samples < 1:
        raise BelleError(f"--n-samples must be at least 1, not {n_samples}")
    if n_heldout < 1:
        raise BelleError(f"--eval-samples must be at least 1, not {n_heldout}")
    if heldout is None:
        rows = load_conversations(calibration, n_samples + n_heldout)
        calibration_rows, heldout_rows = rows[:n_samples], rows[n_samples:]
    else:
        calibration_rows = load_conversations(calibration, n_samples)
        heldout_rows = load_conversations(heldout, n_heldout)
    if not calibration_rows:
        raise BelleError(f"{calibration}: no conversations to calibrate with")
    if not heldout_rows:
        raise BelleError(
            f"{calibration}: only {len(calibration_rows)} records, none left for held-out perplexity; "
            "lower --n-samples or pass --eval-data"
        )
    return calibration_rows, heldout_rows


def tokenize_calibration(texts: list[str], tokenizer, max_length: int) -> list[dict[str, list[int]]]:
    """Token ids (cut to ``max_length``) in the list-of-dicts form GPTQModel accepts."""
    samples = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
        if ids:
            samples.append({"input_ids": ids, "attention_mask": [1] * len(ids)})
    return samples
