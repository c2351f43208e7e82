"""The record layouts of BELLE's corpora and their normalization to TRL's conversational format.

Every normalizer takes one raw record (a ``dict``) and returns
``{"messages": [{"role": "user"|"assistant"|"system", "content": str}, ...], "id": str|None,
"source": str|None}``, the format TRL's ``SFTTrainer`` reads as a conversational dataset.
A record that does not fit raises :class:`~belle_hf.errors.DataFormatError` naming the field.

Schemas:

``alpaca``
    ``{"instruction", "input", "output"}``: BELLE 0.5M / 1M / 2M, school_math. One exchange.
``belle-multiturn``
    The same fields, with the whole history written into ``instruction`` as
    ``Human:...\\nAssistant:...`` lines and the last answer in ``output`` (multiturn_chat_0.8M).
``generated-chat``
    Role-play dialogues (generated_chat_0.4M): ``instruction`` describes the characters,
    ``output`` is the whole dialogue. Laid out like ``alpaca``, and normalized the same way (the
    dialogue is the assistant's answer); auto-detection reports such files as ``alpaca``.
``conversations``
    ``{"id", "conversations": [{"from": "human"|"gpt"|"assistant"|"system", "value"}]}``:
    BELLE 3.5M and ShareGPT.
``messages``
    Already normalized: ``{"messages": [{"role", "content"}]}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping as _MappingABC
from typing import Any, Callable, Mapping

from belle_hf.errors import DataFormatError

SCHEMAS = ("alpaca", "belle-multiturn", "generated-chat", "conversations", "messages")
ROLES = ("system", "user", "assistant")

# ShareGPT-style speaker names seen in public corpora, mapped to chat roles.
SPEAKER_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "model": "assistant",
    "system": "system",
}

# A turn marker is "Human:" or "Assistant:" (half- or full-width colon) at the start of a line.
# Anywhere else the words and colons are content and survive untouched.
_TURN_MARKER = re.compile(r"^(Human|Assistant)[:：]", re.MULTILINE)
_LINE_START_TURN_MARKER = re.compile(r"\n(H(?:uman)|A(?:ssistant))[:：]")

Record = Mapping[str, Any]
Normalized = dict[str, Any]


def _is_mapping(value: Any) -> bool:
    # ``isinstance(x, typing.Mapping)`` goes through ABC machinery on every call; JSON objects
    # are plain dicts, so test that first (this is on the hot path of every conversion).
    return type(value) is dict or isinstance(value, _MappingABC)


def _text_field(record: Record, field: str, *, required: bool = True) -> str:
    value = record.get(field)
    if value is None:
        if required:
            raise DataFormatError("missing", field=field)
        return ""
    if not isinstance(value, str):
        raise DataFormatError(f"expected a string, got {type(value).__name__}", field=field)
    return value


def _provenance(record: Record) -> dict[str, Any]:
    record_id = record.get("id")
    source = record.get("source")
    return {
        "id": None if record_id is None else str(record_id),
        "source": None if source is None else str(source),
    }


def _single_exchange(record: Record) -> list[dict[str, str]]:
    instruction = _text_field(record, "instruction")
    extra_input = _text_field(record, "input", required=False)
    output = _text_field(record, "output")
    if not instruction.strip():
        raise DataFormatError("empty", field="instruction")
    if not output.strip():
        raise DataFormatError("empty", field="output")
    user = instruction if not extra_input.strip() else f"{instruction}\n{extra_input}"
    messages = []
    system = record.get("system")
    if isinstance(system, str) and system.strip():
        messages.append({"role": "system", "content": system})
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    return messages


def normalize_alpaca(record: Record) -> Normalized:
    """``instruction`` (+ ``input`` on the next line) is the user turn, ``output`` the answer."""
    return {"messages": _single_exchange(record), **_provenance(record)}


def normalize_generated_chat(record: Record) -> Normalized:
    """A role-play request and the whole generated dialogue as the assistant's answer."""
    return {"messages": _single_exchange(record), **_provenance(record)}


def split_belle_turns(text: str) -> list[tuple[str, str]]:
    """Split ``Human:``/``Assistant:`` history into ``(role, content)`` pairs.

    Only markers at the start of a line split turns; the text before the first marker must
    be blank. Content is stripped of the whitespace around it.
    """
    # ``split`` with the marker's group gives [before, marker, content, marker, content, ...] in
    # one C-level pass. Searching for "\n" + marker in "\n" + text is the same as a MULTILINE
    # "^" + marker, and about twice as fast (this is the hot path of multiturn_chat_0.8M).
    parts = _LINE_START_TURN_MARKER.split("\n" + text)
    if len(parts) == 1:
        raise DataFormatError("no 'Human:' turn marker at the start of a line", field="instruction")
    if parts[0].strip():
        raise DataFormatError("text before the first 'Human:' marker", field="instruction")
    return [("user" if parts[index] == "Human" else "assistant", parts[index + 1].strip())
            for index in range(1, len(parts), 2)]


def normalize_belle_multiturn(record: Record) -> Normalized:
    """History in ``instruction`` as ``Human:``/``Assistant:`` lines, last answer in ``output``."""
    turns = split_belle_turns(_text_field(record, "instruction"))
    output = _text_field(record, "output")
    if turns[-1] == ("assistant", ""):
        turns.pop()  # the trailing "Assistant:" that ``output`` answers
    if not output.strip():
        raise DataFormatError("empty", field="output")
    turns.append(("assistant", output.strip()))
    messages = [{"role": role, "content": content} for role, content in turns]
    _check_alternation(messages, field="instruction")
    for index, message in enumerate(messages):
        if message["role"] == "assistant" and not message["content"]:  # contents are stripped already
            raise DataFormatError(f"turn {index + 1} is an empty assistant answer", field="instruction")
    return {"messages": messages, **_provenance(record)}


def normalize_conversations(record: Record) -> Normalized:
    """``conversations: [{from, value}]`` (BELLE 3.5M, ShareGPT)."""
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise DataFormatError("expected a non-empty list", field="conversations")
    messages = []
    for index, turn in enumerate(turns):
        # Field names are only formatted on the error paths: this loop runs for every turn.
        if not _is_mapping(turn):
            raise DataFormatError("expected an object with 'from' and 'value'", field=f"conversations[{index}]")
        speaker = turn.get("from")
        role = SPEAKER_ROLES.get(speaker) if type(speaker) is str else None
        if role is None and speaker is not None:
            role = SPEAKER_ROLES.get(str(speaker).lower())
        if role is None:
            raise DataFormatError(f"unknown speaker {speaker!r}", field=f"conversations[{index}].from")
        value = turn.get("value")
        if not isinstance(value, str):
            raise DataFormatError("expected a string", field=f"conversations[{index}].value")
        messages.append({"role": role, "content": value})
    _check_alternation(messages, field="conversations")
    _check_answers(messages, "conversations[{}].value")
    return {"messages": messages, **_provenance(record)}


def normalize_messages(record: Record) -> Normalized:
    """Already in TRL's format: validated and passed through."""
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DataFormatError("expected a non-empty list", field="messages")
    clean = []
    for index, message in enumerate(messages):
        # Field names are only formatted on the error paths: this loop runs for every message.
        if not _is_mapping(message):
            raise DataFormatError("expected an object with 'role' and 'content'", field=f"messages[{index}]")
        role = message.get("role")
        if role not in ROLES:
            raise DataFormatError(f"unknown role {role!r}", field=f"messages[{index}].role")
        content = message.get("content")
        if not isinstance(content, str):
            raise DataFormatError("expected a string", field=f"messages[{index}].content")
        clean.append({"role": role, "content": content})
    _check_answers(clean, "messages[{}].content")
    return {"messages": clean, **_provenance(record)}


def _check_answers(messages: list[dict[str, str]], field: str) -> None:
    """Refuse an assistant answer that is blank: it would train the model on its end-of-turn token alone."""
    for index, message in enumerate(messages):
        if message["role"] == "assistant" and not message["content"].strip():
            raise DataFormatError("empty assistant answer", field=field.format(index))


def _check_alternation(messages: list[dict[str, str]], field: str) -> None:
    """Users and assistants take turns after an optional leading system message."""
    body = messages[1:] if messages and messages[0]["role"] == "system" else messages
    if not body:
        raise DataFormatError("no user or assistant turn", field=field)
    expected = "user"
    for index, message in enumerate(body):
        if message["role"] != expected:
            raise DataFormatError(
                f"turn {index + 1} is from {message['role']!r}, expected {expected!r}", field=field
            )
        expected = "assistant" if expected == "user" else "user"
    if body[-1]["role"] != "assistant":
        raise DataFormatError("the conversation does not end with an assistant turn", field=field)


NORMALIZERS: dict[str, Callable[[Record], Normalized]] = {
    "alpaca": normalize_alpaca,
    "belle-multiturn": normalize_belle_multiturn,
    "generated-chat": normalize_generated_chat,
    "conversations": normalize_conversations,
    "messages": normalize_messages,
}


def detect_schema(record: Record) -> str:
    """Name the schema of one raw record from its fields (see the module docstring)."""
    if "messages" in record:
        return "messages"
    if "conversations" in record:
        return "conversations"
    if "instruction" in record and "output" in record:
        instruction = record.get("instruction")
        if isinstance(instruction, str) and _TURN_MARKER.match(instruction.lstrip()):
            return "belle-multiturn"
        return "alpaca"
    raise DataFormatError(
        f"cannot tell the schema from fields {sorted(record)}; expected one of "
        "'messages', 'conversations', or 'instruction' + 'output'"
    )


def get_normalizer(schema: str) -> Callable[[Record], Normalized]:
    """The normalizer of a named schema; ``auto`` detects it per record."""
    if schema == "auto":
        return normalize_auto
    try:
        return NORMALIZERS[schema]
    except KeyError:
        raise DataFormatError(f"unknown schema {schema!r}; choose auto or one of {', '.join(SCHEMAS)}") from None


def normalize_auto(record: Record) -> Normalized:
    """Detect the schema of ``record`` and normalize it."""
    if not _is_mapping(record):
        raise DataFormatError(f"expected a JSON object, got {type(record).__name__}")
    return NORMALIZERS[detect_schema(record)](record)


def normalize(record: Record, schema: str = "auto") -> Normalized:
    """Normalize one record of the named schema (or ``auto``) to ``{"messages", "id", "source"}``."""
    if not _is_mapping(record):
        raise DataFormatError(f"expected a JSON object, got {type(record).__name__}")
    return get_normalizer(schema)(record)
