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
character spans of the ``{% generation %}`` blocks), cuts the text at those spans and tokenizes
each piece on its own (behind a special token, so SentencePiece-style tokenizers add no ``▁``). No token can straddle a boundary, the mask is exact by construction, and
each prompt part is tokenized exactly as ``apply_chat_template(..., add_generation_prompt=True)``
tokenizes it at inference. This is hand-written because neither TRL nor transformers offers
segment-wise tokenization of a chat template.
"""

from __future__ import annotations

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
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

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
    """:func:`tokenize_conversation` over a batch, with every piece of every conversation encoded in
    ONE call of the (fast, Rust, multi-threaded) tokenizer.

    A per-piece Python loop calls the tokenizer a dozen times per conversation and spends most of
    its time in call overhead; one batched call runs at the tokenizer's own speed. The result is
    the same as tokenizing each conversation alone: each piece is still encoded on its own.
    ``turn_ends`` holds the last token of each assistant turn (its end-of-turn token, when the
    template's ``{% generation %}`` block is right).
    """
    from transformers.utils.chat_template_utils import render_jinja_template

    template = chat_template or tokenizer.chat_template
    texts, all_spans = render_jinja_template(
        conversations=conversations,
        chat_template=template,
        return_assistant_tokens_mask=True,
        **tokenizer.special_tokens_map,
    )
    anchor = tokenizer.eos_token or tokenizer.bos_token
    anchor_ids = _encode(tokenizer, [anchor])[0] if anchor else []
    anchored = len(anchor_ids) == 1
    # Every piece of the batch, flat: (conversation, trained, encoded behind the anchor).
    strings: list[str] = []
    where: list[tuple[int, int, bool]] = []
    for row, (text, spans) in enumerate(zip(texts, all_spans)):
        first = True
        for start, end, trained in _cuts(spans, len(text)):
            piece = text[start:end]
            if not piece:
                continue
            behind = anchored and not first
            strings.append(anchor + piece if behind else piece)
            where.append((row, trained, behind))
            first = False
    encoded = _encode(tokenizer, strings)
    # A piece whose encoding does not start with the anchor's single id (it merged with the text
    # after it) falls back to being encoded alone, as the per-piece loop always did.
    redo = [i for i, (_, _, behind) in enumerate(where) if behind and encoded[i][:1] != anchor_ids]
    for i, ids in zip(redo, _encode(tokenizer, [strings[i][len(anchor):] for i in redo])):
        encoded[i] = [anchor_ids[0], *ids]  # the anchor is cut off again below
    input_ids: list[list[int]] = [[] for _ in texts]
    masks: list[list[int]] = [[] for _ in texts]
    turn_ends: list[list[int]] = [[] for _ in texts]
    for ids, (row, trained, behind) in zip(encoded, where):
        if behind:
            ids = ids[1:]
        input_ids[row].extend(ids)
        masks[row].extend([trained] * len(ids))
        if trained and ids:
            turn_ends[row].append(ids[-1])
    return {"input_ids": input_ids, "assistant_masks": masks, "turn_ends": turn_ends}


def _cuts(spans, length: int):
    """(start, end, trained) pieces of a rendered text of ``length`` characters cut at ``spans``."""
    position = 0
    for start, end in sorted(spans):
        yield position, start, 0
        yield start, end, 1
        position = max(position, end)
    yield position, length, 0


def _encode(tokenizer, strings: list[str]) -> list[list[int]]:
    """Token ids of each string, no special tokens added: SentencePiece-style tokenizers (Llama,
    Mistral: ``Metaspace`` with ``prepend_scheme="first"``) prepend a ``▁`` to every string, so a
    piece after the first is encoded behind a special token (the eos), which ends a section of
    text so nothing merges across it and no ``▁`` is prepended; that token's id is then dropped."""
    if not strings:
        return []
    return tokenizer(strings, add_special_tokens=False, return_attention_mask=False)["input_ids"]


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
