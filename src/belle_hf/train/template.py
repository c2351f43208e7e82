"""Chat template choice, tokenization and the loss mask.

The loss mask must cover exactly each assistant reply and its end-of-turn token, for every turn.
BELLE's original code tokenized the prompt and the prompt+reply separately and masked the first
``len(prompt_ids)`` tokens; with a prompt ending in ``"Assistant: "`` the trailing space merged
with the reply's first piece, so the boundary moved by a token. transformers'
``return_assistant_tokens_mask`` has a milder form of the same problem: it tokenizes the whole
conversation at once and marks every token that *overlaps* a ``{% generation %}`` span, so a
token straddling the header and the reply (``" 你"`` after ``"Assistant:"``) is trained, header
space included, and the prompt is tokenized differently from what the model sees at inference.

:func:`tokenize_conversation` therefore renders the template once (transformers gives the
character spans of the ``{% generation %}`` blocks; :mod:`belle_hf.train.render` gives the same
pieces without Jinja for templates that only paste contents), cuts the text at those spans and
tokenizes each piece on its own (behind a special token, so SentencePiece-style tokenizers add no ``▁``). No token can straddle a boundary, the mask is exact by construction, and
each prompt part is tokenized exactly as ``apply_chat_template(..., add_generation_prompt=True)``
tokenizes it at inference. This is hand-written because neither TRL nor transformers offers
segment-wise tokenization of a chat template.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

from belle_hf.errors import BelleError
from belle_hf.templates import BELLE_CHAT_TEMPLATE


def resolve_chat_template(tokenizer, template: str = "auto") -> str:
    """The chat template to train with, always with ``{% generation %}`` markers.

    ``auto`` takes the model's own template when it has one and BELLE's otherwise; ``belle``
    forces BELLE's; ``model`` requires the model's own; anything else is a ``.jinja`` file. A
    template without generation markers is patched by TRL's ``get_training_chat_template`` when
    TRL knows it (Qwen, Llama 3, ...), and refused otherwise.
    """
    from belle_hf.train.render import has_generation_markers

    own = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    if template == "belle" or (template == "auto" and not own):
        return BELLE_CHAT_TEMPLATE
    if template in ("auto", "model"):
        if not own:
            raise BelleError("template: model: this tokenizer has no chat template; use template: belle")
        chosen, name = own, "the model's chat template"
    else:
        path = Path(template).expanduser()
        if not path.is_file():
            raise BelleError(f"template: {template!r} is not auto, belle, model or an existing .jinja file")
        chosen, name = path.read_text(encoding="utf-8"), str(path)
    if has_generation_markers(chosen):
        return chosen
    from trl.chat_template_utils import get_training_chat_template  # imports torch: only when needed

    previous = tokenizer.chat_template
    tokenizer.chat_template = chosen
    try:
        patched = get_training_chat_template(tokenizer)
    except (ValueError, KeyError, NotImplementedError):
        patched = None
    finally:
        tokenizer.chat_template = previous
    if patched is None:
        raise BelleError(f"{name} has no {{% generation %}} markers, so the assistant turns cannot be told apart "
                         "for the loss, and TRL has no training version of it; add the markers around each "
                         "assistant reply and its end-of-turn token, or use template: belle")
    return patched


def tokenize_conversation(tokenizer, messages: list[dict[str, Any]], chat_template: str | None = None) -> dict[str, list[int]]:
    """Tokenize one conversation; return ``input_ids`` and ``assistant_masks`` (1 = trained).

    The rendered text is cut at the ``{% generation %}`` spans and each piece is tokenized on its
    own, so the mask covers exactly every assistant reply with its end-of-turn token.
    """
    batch = tokenize_conversations(tokenizer, [messages], chat_template)
    return {"input_ids": batch["input_ids"][0], "assistant_masks": batch["assistant_masks"][0]}


def tokenize_conversations(tokenizer, conversations: list[list[dict[str, Any]]],
                           chat_template: str | None = None) -> dict[str, list[list[int]]]:
    """:func:`tokenize_conversation` over a batch: ``input_ids``, ``assistant_masks`` and
    ``turn_ends`` (the last token of each assistant turn) as lists, one per conversation."""
    batch = encode_conversations(tokenizer, conversations, chat_template)
    bounds = batch.offsets.tolist()
    ids, bits = batch.input_ids.tolist(), batch.assistant_masks.tolist()
    ends: list[list[int]] = [[] for _ in conversations]
    for row, token in zip(batch.turn_rows.tolist(), batch.turn_ends.tolist()):
        ends[row].append(token)
    return {"input_ids": [ids[a:b] for a, b in zip(bounds, bounds[1:])],
            "assistant_masks": [bits[a:b] for a, b in zip(bounds, bounds[1:])], "turn_ends": ends}


@dataclass
class EncodedConversations:
    """A batch of tokenized conversations as flat numpy columns: conversation ``i`` is
    ``input_ids[offsets[i]:offsets[i + 1]]`` (and the same slice of ``assistant_masks``); each
    assistant turn's last token is ``turn_ends[j]``, in conversation ``turn_rows[j]``."""

    input_ids: Any
    assistant_masks: Any
    offsets: Any
    turn_ends: Any
    turn_rows: Any


def encode_conversations(tokenizer, conversations, chat_template: str | None = None) -> EncodedConversations:
    """Render, cut and tokenize a batch of conversations, every piece of every conversation encoded
    in ONE call of the fast (Rust, multi-threaded) tokenizer.

    A per-piece Python loop calls the tokenizer a dozen times per conversation and spends most of
    its time in call overhead; one batched call runs at the tokenizer's own speed, and the result
    is the same as tokenizing each conversation alone: each piece is still encoded on its own.
    The template is rendered by :class:`~belle_hf.train.render.ChatRenderer` (Jinja once per
    conversation shape when the template only pastes contents) and the pieces are reassembled with
    numpy, so no Python loop runs per token.
    """
    import numpy as np

    renderer = chat_renderer(tokenizer, chat_template or tokenizer.chat_template)
    texts, rows, trained = renderer.pieces(conversations)
    anchor = tokenizer.eos_token or tokenizer.bos_token
    anchor_ids = _encode(tokenizer, [anchor])[0] if anchor else []
    encoded = None
    if len(anchor_ids) == 1 and _is_clean_separator(tokenizer, anchor_ids[0]):
        encoded = _encode_joined(tokenizer, texts, rows, anchor, anchor_ids[0])
    flat, lengths = encoded or _encode_pieces(tokenizer, texts, rows, anchor, anchor_ids)
    trained_array = np.array(trained, dtype=np.int8)
    rows_array = np.array(rows, dtype=np.int64)
    per_row = np.bincount(rows_array, weights=lengths, minlength=len(conversations)).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(per_row)])
    ends = np.cumsum(lengths) - 1
    turns = (trained_array == 1) & (lengths > 0)
    return EncodedConversations(input_ids=flat, assistant_masks=np.repeat(trained_array, lengths), offsets=offsets,
                                turn_ends=flat[ends[turns]], turn_rows=rows_array[turns])


def _encode_pieces(tokenizer, texts: list[str], rows: list[int], anchor: str | None, anchor_ids: list[int]):
    """(flat ids, length of each piece): every piece a string of its own in one batched call."""
    import numpy as np

    anchored = len(anchor_ids) == 1
    # A piece after the first of its conversation is encoded behind the anchor (see _encode).
    behind = [anchored and i > 0 and rows[i - 1] == row for i, row in enumerate(rows)]
    pieces = _encode(tokenizer, [anchor + text if b else text for text, b in zip(texts, behind)])
    # A piece whose encoding does not start with the anchor's single id (it merged with the text
    # after it) falls back to being encoded alone, as the per-piece loop always did.
    redo = [i for i, b in enumerate(behind) if b and pieces[i][:1] != anchor_ids]
    for i, ids in zip(redo, _encode(tokenizer, [texts[i] for i in redo])):
        pieces[i] = [anchor_ids[0], *ids]  # the anchor is cut off again below
    lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    flat = np.fromiter(chain.from_iterable(pieces), dtype=np.int64, count=int(lengths.sum()))
    behind_array = np.array(behind, dtype=bool)
    if behind_array.any():  # drop each anchor id
        keep = np.ones(len(flat), dtype=bool)
        keep[(np.cumsum(lengths) - lengths)[behind_array]] = False
        flat = flat[keep]
        lengths = lengths - behind_array
    return flat, lengths


def _is_clean_separator(tokenizer, token_id: int) -> bool:
    """Whether a special token splits text into parts that are tokenized independently, and
    nothing else: an added token matched on its exact text, eating no space around it."""
    token = tokenizer.added_tokens_decoder.get(token_id)
    return token is not None and token.special and not (token.lstrip or token.rstrip or token.single_word
                                                         or token.normalized)


def _encode_joined(tokenizer, texts: list[str], rows: list[int], anchor: str, anchor_id: int):
    """:func:`_encode_pieces`' result from ONE string per conversation: its pieces joined by the
    anchor. The tokenizer splits its input at added tokens before anything else, so the ids between
    two anchors are exactly the piece's ids behind an anchor, and one string per conversation
    instead of one per piece halves the tokenizer's per-string cost. Each joining anchor is found
    by counting the anchors the pieces hold themselves (ChatML's ``<|im_end|>`` ends a reply); a
    batch where any count is off returns ``None`` (encoded piece by piece instead)."""
    import numpy as np

    count = len(texts)
    if count == 0:
        return None
    rows_array = np.asarray(rows, dtype=np.int64)
    first = np.ones(count, dtype=bool)
    first[1:] = rows_array[1:] != rows_array[:-1]
    starts = np.flatnonzero(first)
    bounds = [*starts.tolist(), count]
    encoded = _encode(tokenizer, [anchor.join(texts[a:b]) for a, b in zip(bounds, bounds[1:])])
    row_lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    flat = np.fromiter(chain.from_iterable(encoded), dtype=np.int64, count=int(row_lengths.sum()))
    row_starts = np.cumsum(row_lengths) - row_lengths
    own = np.fromiter((text.count(anchor) for text in texts), dtype=np.int64, count=count)
    anchors = np.flatnonzero(flat == anchor_id)
    found = np.bincount(np.searchsorted(row_starts, anchors, side="right") - 1, minlength=len(encoded))
    if not np.array_equal(found, np.add.reduceat(own, starts) + np.diff(bounds) - 1):
        return None
    # The anchor before piece p (not first in its conversation) is anchor number
    # (anchors held by the pieces before p) + p - (conversations before p's) - 1 of the batch.
    conversation = np.cumsum(first) - 1
    rank = (np.cumsum(own) - own) + np.arange(count) - conversation - 1
    joins = anchors[rank[~first]]
    last = np.ones(count, dtype=bool)
    last[:-1] = first[1:]
    begin, end = np.empty(count, dtype=np.int64), np.empty(count, dtype=np.int64)
    begin[first], begin[~first] = row_starts, joins + 1
    end[last], end[~last] = row_starts + row_lengths, joins
    keep = np.ones(len(flat), dtype=bool)
    keep[joins] = False
    return flat[keep], end - begin


_RENDERERS: dict[str, Any] = {}


def chat_renderer(tokenizer, chat_template: str):
    """The :class:`~belle_hf.train.render.ChatRenderer` of a template with a tokenizer's special
    tokens (kept: it learns each conversation shape once)."""
    import json

    from belle_hf.train.render import ChatRenderer

    key = json.dumps([chat_template, tokenizer.special_tokens_map], sort_keys=True, default=str)
    if key not in _RENDERERS:
        if len(_RENDERERS) >= 8:
            _RENDERERS.clear()
        _RENDERERS[key] = ChatRenderer(chat_template, **tokenizer.special_tokens_map)
    return _RENDERERS[key]


def _encode(tokenizer, strings: list[str]) -> list[list[int]]:
    """Token ids of each string, no special tokens added: SentencePiece-style tokenizers (Llama,
    Mistral: ``Metaspace`` with ``prepend_scheme="first"``) prepend a ``▁`` to every string, so a
    piece after the first is encoded behind a special token (the eos), which ends a section of
    text so nothing merges across it and no ``▁`` is prepended; that token's id is then dropped.

    A fast tokenizer's Rust backend is called directly after transformers has set it up (no
    truncation, no padding, its special-token splitting) with the first string: transformers'
    own conversion of each result to a dict costs as much as the encoding of short pieces."""
    if not strings:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    first = tokenizer(strings[:1], add_special_tokens=False, return_attention_mask=False)["input_ids"]
    if backend is None or len(strings) == 1:
        return first + (tokenizer(strings[1:], add_special_tokens=False, return_attention_mask=False)["input_ids"]
                        if len(strings) > 1 else [])
    return first + [encoding.ids for encoding in backend.encode_batch(strings[1:], add_special_tokens=False)]


def decode_example(tokenizer, input_ids: list[int], mask: list[int]) -> tuple[str, str]:
    """The full decoded input, and the decoded text of only the tokens that carry loss (runs of
    trained tokens are joined with a newline so separate turns stay apart)."""
    full = tokenizer.decode(input_ids, skip_special_tokens=False)
    runs: list[list[int]] = []
    previous = 0
    for token, bit in zip(input_ids, mask):
        if bit:
            if not previous:
                runs.append([])
            runs[-1].append(token)
        previous = bit
    trained = "\n".join(tokenizer.decode(run, skip_special_tokens=False) for run in runs)
    return full, trained
