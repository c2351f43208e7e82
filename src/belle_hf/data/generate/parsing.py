"""Parsing a model's reply into (instruction, input, output) items, the way BELLE did.

The reply continues the numbered list of the prompt: items separated by ``###``, each with
``N. 指令:`` / ``N. 输入:`` / ``N. 输出:`` (half- or full-width colons). The reply usually starts
right after the prompt's trailing ``指令:``, so the first item's marker is restored first. When
the reply stopped for length, its last item is cut short and is dropped. Items that a model
ran together without ``###`` are split at the next numbered ``指令:``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

COLON = "[:：]"
_INSTRUCTION = re.compile(rf"指令\s*{COLON}")
_INPUT = re.compile(rf"输入\s*{COLON}")
_OUTPUT = re.compile(rf"输出\s*{COLON}")
# "5. 指令:" at the start of a line: where an item begins when "###" is missing.
_NUMBERED_INSTRUCTION = re.compile(rf"\n\s*\d+\s*[.．、]\s*指令\s*{COLON}")
# The next field's number left after whitespace at the end of a field ("...\n5." before "5. 输入:").
_TRAILING_NUMBER = re.compile(r"(?:^|\s)\s*\d+\s*[.．、]\s*$")
# The same at the end of an output, only on a line of its own ("...\n11." before "###").
_TRAILING_NUMBER_LINE = re.compile(r"\n\s*\d+\s*[.．、]\s*$")


@dataclass
class Item:
    """One generated task."""

    instruction: str
    input: str
    output: str


@dataclass
class ParsedReply:
    """The items of one reply, and how many pieces could not be used."""

    items: list[Item] = field(default_factory=list)
    truncated: int = 0
    """The last item, dropped because the reply stopped for length."""
    unparseable: int = 0
    """Pieces without all three of 指令 / 输入 / 输出."""


def _clean_field(text: str) -> str:
    return _TRAILING_NUMBER.sub("", text.strip()).strip()


def parse_item(piece: str) -> Item | None:
    """One ``指令 / 输入 / 输出`` item, or ``None`` when a field is missing."""
    instruction = _INSTRUCTION.search(piece)
    if instruction is None:
        return None
    input_marker = _INPUT.search(piece, instruction.end())
    if input_marker is None:
        return None
    output_marker = _OUTPUT.search(piece, input_marker.end())
    if output_marker is None:
        return None
    input_text = _clean_field(piece[input_marker.end():output_marker.start()])
    if "无输入" in input_text:
        input_text = ""
    output = piece[output_marker.end():].strip()
    output = _TRAILING_NUMBER_LINE.sub("", output).strip()
    return Item(instruction=_clean_field(piece[instruction.end():input_marker.start()]),
                input=input_text, output=output)


def parse_reply(text: str, finish_reason: str | None, num_prompt_tasks: int) -> ParsedReply:
    """Split a reply into items; the last one is dropped when ``finish_reason == "length"``."""
    parsed = ParsedReply()
    if not text or not text.strip():
        return parsed
    if not _INSTRUCTION.search(text[:10]):  # the reply continues the prompt's trailing "N. 指令:"
        text = f"{num_prompt_tasks + 1}. 指令:" + text
    pieces = [piece for piece in re.split(r"###", text) if piece.strip()]
    if pieces and finish_reason == "length":
        pieces.pop()
        parsed.truncated = 1
    for piece in pieces:
        # A model that forgot the "###" separators: split at each numbered "指令:".
        starts = [0] + [m.start() for m in _NUMBERED_INSTRUCTION.finditer(piece)]
        for begin, end in zip(starts, starts[1:] + [len(piece)]):
            sub_piece = piece[begin:end]
            if not sub_piece.strip():
                continue
            item = parse_item(sub_piece)
            if item is None:
                parsed.unparseable += 1
            else:
                parsed.items.append(item)
    return parsed
