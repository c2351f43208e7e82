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
    from transformers.utils.chat_template_utils import render_jinja_template

    template = chat_template or tokenizer.chat_template
    rendered, spans = render_jinja_template(
        conversations=[messages],
        chat_template=template,
        return_assistant_tokens_mask=True,
        **tokenizer.special_tokens_map,
    )
    text, spans = rendered[0], sorted(spans[0])
    pieces: list[tuple[str, int]] = []
    position = 0
    for start, end in spans:
        pieces += [(text[position:start], 0), (text[start:end], 1)]
        position = max(position, end)
    pieces.append((text[position:], 0))
    input_ids: list[int] = []
    mask: list[int] = []
    for piece, trained in pieces:
        if piece:
            ids = _encode_piece(tokenizer, piece, first=not input_ids)
            input_ids.extend(ids)
            mask.extend([trained] * len(ids))
    return {"input_ids": input_ids, "assistant_masks": mask}


def _encode_piece(tokenizer, piece: str, first: bool) -> list[int]:
    """Token ids of ``piece`` as they come out inside a longer text.

    SentencePiece-style tokenizers (Llama, Mistral: ``Metaspace`` with ``prepend_scheme="first"``)
    prepend a ``▁`` to the start of every string they encode, so a reply encoded alone would start
    with a spurious space token. A piece after the first is therefore encoded behind a special
    token (the eos), which ends a section of text so nothing merges across it and no ``▁`` is
    prepended, and the special token's ids are dropped.
    """
    if first:
        return tokenizer(piece, add_special_tokens=False)["input_ids"]
    anchor = tokenizer.eos_token or tokenizer.bos_token
    if anchor:
        anchor_ids = tokenizer(anchor, add_special_tokens=False)["input_ids"]
        ids = tokenizer(anchor + piece, add_special_tokens=False)["input_ids"]
        if len(anchor_ids) == 1 and ids[:1] == anchor_ids:
            return ids[1:]
    return tokenizer(piece, add_special_tokens=False)["input_ids"]


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
