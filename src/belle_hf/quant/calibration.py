"""Chinese calibration and held-out text for GPTQ and perplexity, taken from the data layer.

BELLE's GPTQ models were calibrated on English wikitext; here the calibration samples are
conversations from any BELLE corpus or file (``belle_hf.data.load``), or a bundled sample
(``sample:alpaca``, as recipes name it), rendered with the model's chat template, so the
quantizer sees the text the chat model will actually process. A ``.txt`` file, the most common
calibration format elsewhere, gives one text per non-empty line, used as written.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Iterable, Union

from belle_hf.errors import BelleError
from belle_hf.samples import is_sample, resolve_sample
from belle_hf.templates import render_belle_prompt

Sample = Union[list[dict[str, Any]], str]
"""One calibration sample: a conversation's ``messages``, or a plain text (a line of a ``.txt`` file)."""


def _text_lines(path: Path, limit: int, skip: int) -> list[str]:
    lines = []
    with open(path, "rb") as handle:  # bytes, so a decoding error names its exact line
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise BelleError(f"{path}: line {number}: not UTF-8 text ({error.reason})") from None
            if line.strip():
                lines.append(line)
                if len(lines) >= skip + limit:
                    break
    return lines[skip:]


def load_conversations(source: str, limit: int, skip: int = 0) -> list[Sample]:
    """The ``messages`` of records ``skip .. skip+limit`` of ``source`` (streamed, so a multi-million
    corpus is never downloaded whole); the lines of a ``.txt`` file as plain texts."""
    from belle_hf.data import load

    source = str(resolve_sample(source)) if is_sample(source) else str(source)
    if source.endswith(".txt") and Path(source).is_file():
        return _text_lines(Path(source), limit, skip)
    dataset = load(source, streaming=True)
    rows = itertools.islice(iter(dataset), skip, skip + limit)
    return [row["messages"] for row in rows if row.get("messages")]


def chat_texts(conversations: Iterable[Sample], tokenizer) -> list[str]:
    """Render each conversation as the model sees it: its chat template, or BELLE's format; plain
    texts stay as they are."""
    texts = []
    for messages in conversations:
        if isinstance(messages, str):
            text = messages
        elif getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(messages, tokenize=False)
        else:
            text = render_belle_prompt(messages, eos_token=tokenizer.eos_token or "</s>", add_generation_prompt=False)
        if text.strip():
            texts.append(text)
    return texts


def split_calibration_and_heldout(
    calibration: str, n_samples: int, n_heldout: int, heldout: str | None = None
) -> tuple[list[Sample], list[Sample]]:
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
