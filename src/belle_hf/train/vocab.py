"""Vocabulary extension, as BELLE's LLaMA-EXT: more Chinese pieces, same ids for the old ones.

A new BPE vocabulary is trained on Chinese text with the base tokenizer's own pipeline
(``train_new_from_iterator``: same normalizer, pre-tokenizer and byte fallback). Its merges are
then replayed, in order, onto the base tokenizer's BPE model: a merge whose result is new and
whose two parts are already known adds one token at the next free id and appends the merge
(lowest priority), so every existing token keeps its id, and text in a script the corpus does not
cover (English, with a Chinese corpus) tokenizes as before. BELLE merged SentencePiece protos the same way; tokenizers has no "merge two BPE models"
API, hence this hand-written replay. The model's embeddings (and output layer) grow to the new
size, the new rows set to the mean of the old ones.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from belle_hf.errors import BelleError
from belle_hf.io import atomic_dir, atomic_write_text

logger = logging.getLogger(__name__)


@dataclass
class VocabReport:
    old_vocab_size: int
    new_vocab_size: int
    added_tokens: int
    tokens_per_char_before: float
    tokens_per_char_after: float
    heldout_chars: int
    model_resized: bool = False


def read_corpus_lines(paths: list[str]) -> list[str]:
    """Text lines of ``.txt`` files, and the message contents of data files (any BELLE schema)."""
    lines: list[str] = []
    for path in paths:
        if not Path(path).is_file():
            raise BelleError(f"{path}: corpus file not found")
        if Path(path).suffix.lower() in (".json", ".jsonl", ".parquet"):
            from belle_hf.data import load

            for messages in load(path)["messages"]:
                lines.extend(line for message in messages for line in message["content"].splitlines())
        else:
            lines.extend(Path(path).read_text(encoding="utf-8").splitlines())
    lines = [line.strip() for line in lines if line.strip()]
    if not lines:
        raise BelleError(f"no text in the corpus files {', '.join(paths)}")
    return lines


def tokens_per_char(tokenizer, lines: list[str]) -> float:
    chars = sum(len(line) for line in lines)
    tokens = sum(len(ids) for ids in tokenizer(lines, add_special_tokens=False)["input_ids"])
    return tokens / max(chars, 1)


def merge_bpe_vocab(base_json: dict, new_json: dict, first_id: int) -> list[str]:
    """Replay ``new_json``'s merges onto ``base_json`` (both tokenizer.json dicts, edited in place).

    Returns the tokens added, which get ids from ``first_id`` on, in order.
    """
    vocab: dict[str, int] = base_json["model"]["vocab"]
    merges: list = base_json["model"]["merges"]
    added: list[str] = []
    next_id = first_id
    for merge in new_json["model"]["merges"]:
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        token = left + right
        if token in vocab or left not in vocab or right not in vocab:
            continue
        vocab[token] = next_id
        next_id += 1
        merges.append(f"{left} {right}" if isinstance(merges[0] if merges else merge, str) else [left, right])
        added.append(token)
    return added


def extend_vocab(base: str, corpus: list[str], vocab_size: int, out: str | os.PathLike, model: str | None = None,
                 heldout: str | None = None) -> VocabReport:
    """Train a Chinese vocabulary of ``vocab_size`` pieces on ``corpus``, add its new pieces to the
    ``base`` tokenizer (existing ids unchanged), resize ``model``'s embeddings with mean
    initialization (``model`` defaults to ``base`` when it holds weights), save both to ``out``,
    and report tokens per character on held-out text before and after."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    if vocab_size < 300:
        raise BelleError("--vocab-size must be at least 300 (the byte alphabet alone takes 256)")
    try:
        base_tokenizer = AutoTokenizer.from_pretrained(base)
    except OSError as error:
        raise BelleError(f"cannot load the tokenizer {base!r}: {error}") from None
    if not base_tokenizer.is_fast:
        raise BelleError(f"{base}: vocabulary extension needs a fast (tokenizers) tokenizer")
    base_json = json.loads(base_tokenizer.backend_tokenizer.to_str())
    if base_json["model"]["type"] != "BPE":
        raise BelleError(f"{base}: only BPE tokenizers can be extended (this one is {base_json['model']['type']})")

    lines = read_corpus_lines(corpus)
    if heldout:
        train_lines, heldout_lines = lines, read_corpus_lines([heldout])
    else:
        cut = max(1, len(lines) * 9 // 10)
        train_lines, heldout_lines = lines[:cut], lines[cut:] or lines[-1:]

    trained = base_tokenizer.train_new_from_iterator(train_lines, vocab_size=vocab_size)
    new_json = json.loads(trained.backend_tokenizer.to_str())
    old_size = len(base_tokenizer)
    added = merge_bpe_vocab(base_json, new_json, first_id=old_size)
    logger.info("%d of the %d trained pieces are new", len(added), len(new_json["model"]["vocab"]))

    out = Path(out)
    with atomic_dir(out) as staging:
        base_tokenizer.save_pretrained(staging)
        atomic_write_text(staging / "tokenizer.json", Tokenizer.from_str(json.dumps(base_json)).to_str())
        extended = AutoTokenizer.from_pretrained(staging)
        if len(extended) != old_size + len(added):
            raise BelleError(f"{base}: the extended tokenizer has {len(extended)} tokens, expected "
                             f"{old_size + len(added)}; this tokenizer class rebuilds its vocabulary on load")
        report = VocabReport(old_size, len(extended), len(added), tokens_per_char(base_tokenizer, heldout_lines),
                             tokens_per_char(extended, heldout_lines), sum(len(line) for line in heldout_lines))
        model_source = model or (base if _has_weights(base) else None)
        if model_source:
            resize_model(model_source, len(extended), staging)
            report.model_resized = True
        atomic_write_text(staging / "vocab_extension.json", json.dumps(vars(report), indent=2))
    return report


def _has_weights(path: str) -> bool:
    folder = Path(path)
    return folder.is_dir() and (folder / "config.json").is_file()


def resize_model(model_path: str, new_size: int, out_dir: Path) -> None:
    """Grow the input embeddings and the output layer to ``new_size`` rows, new rows = mean of the old."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype="auto")
    old_size = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(new_size, mean_resizing=False)
    with torch.no_grad():
        layers = [model.get_input_embeddings()]
        output = model.get_output_embeddings()
        if output is not None and output.weight is not layers[0].weight:
            layers.append(output)
        for layer in layers:
            layer.weight[old_size:] = layer.weight[:old_size].mean(dim=0, keepdim=True)
    model.save_pretrained(out_dir)
