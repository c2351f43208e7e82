"""Normalize a whole Arrow table of raw records at once: the fast path of :func:`belle_hf.data.load`.

The per-record normalizers of :mod:`belle_hf.data.schemas` are the reference: what they accept,
refuse and return defines every schema. Calling them row by row inside ``datasets.map`` costs
7-8x the plain ``load_dataset("json")`` on a multi-million-row corpus, almost all of it in
converting every row to Python objects and back. Here the same rules are written as pyarrow
compute kernels and numpy over whole columns, so the strings never leave Arrow's buffers.
(Neither ``datasets`` nor TRL has a columnar normalizer for these layouts; LLaMA-Factory's
aligner is per record too.)

:func:`normalize_table` returns the normalized table or raises :class:`BadRow` with the index of
the first row the reference would refuse; the caller re-runs the reference on that row for the
exact message and field. It raises :class:`Unsupported` when the columns are not the plain types
it handles (numbers where text belongs, JSON-encoded mixed fields, ...); the caller then
normalizes that table with the reference, row by row. A test compares both paths on every sample
file and on generated edge cases.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from belle_hf.data.schemas import ROLES, SPEAKER_ROLES

# ``str.strip()`` removes exactly the characters for which ``str.isspace()`` is true;
# pyarrow's own whitespace trimming uses a different set, so the set is spelled out
# (a test checks it against ``str.isspace``).
PY_WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
                 + "\u2028\u2029\u202f\u205f\u3000")

MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])
OUTPUT_SCHEMA = pa.schema([("messages", pa.list_(MESSAGE_TYPE)), ("id", pa.string()), ("source", pa.string())])

_SYSTEM, _USER, _ASSISTANT = 0, 1, 2  # indices into ROLES
assert ROLES == ("system", "user", "assistant")
_SPEAKERS = pa.array(list(SPEAKER_ROLES))
_SPEAKER_CODES = np.array([ROLES.index(role) for role in SPEAKER_ROLES.values()] + [-1], dtype=np.int8)


class BadRow(Exception):
    """The row at ``index`` of the table does not fit its schema."""

    def __init__(self, index: int):
        super().__init__(index)
        self.index = index


class Unsupported(Exception):
    """The table's column types are not the plain ones this module handles."""


def normalize_table(table: pa.Table, schema: str, default_source: str) -> pa.Table:
    """Normalize every row of ``table`` (raw records of ``schema``) to ``messages``/``id``/``source``."""
    _check_utf8(table)
    if schema == "auto":
        schema = _detect(table)
    if schema not in _NORMALIZERS:
        raise Unsupported(schema)
    messages = _NORMALIZERS[schema](table)
    return pa.Table.from_arrays([messages, _id_column(table), _source_column(table, default_source)],
                                schema=OUTPUT_SCHEMA)


def _check_utf8(table: pa.Table) -> None:
    # pyarrow's JSON reader copies bytes without decoding them: a GBK file loads "fine" and
    # only breaks when a string is read. Full validation checks every string is UTF-8.
    try:
        table.validate(full=True)
    except pa.ArrowInvalid:
        raise Unsupported("not UTF-8") from None


def _detect(table: pa.Table) -> str:
    """The schema of every row, as ``schemas.detect_schema`` names it (a null field is an absent one)."""
    def present(name: str) -> np.ndarray:
        if name not in table.column_names:
            return np.zeros(len(table), dtype=bool)
        return table.column(name).is_valid().to_numpy(zero_copy_only=False)

    messages, conversations = present("messages"), present("conversations")
    single = ~messages & ~conversations & present("instruction") & present("output")
    _first_bad(~(messages | conversations | single))
    if single.any():
        instruction = pc.utf8_ltrim(_column(table, "instruction"), characters=PY_WHITESPACE)
        turns = pc.fill_null(pc.match_substring_regex(instruction, "^(Human|Assistant)[:：]"), False)
        multiturn = turns.to_numpy(zero_copy_only=False) & single
        kinds = {"messages": messages, "conversations": conversations, "belle-multiturn": multiturn,
                 "alpaca": single & ~multiturn}
    else:
        kinds = {"messages": messages, "conversations": conversations}
    found = [name for name, rows in kinds.items() if rows.any()]
    if len(found) != 1:
        raise Unsupported("rows of several schemas")  # the reference detects them row by row
    return found[0]


def _column(table: pa.Table, name: str, required: bool = True) -> pa.Array:
    """A string column as one array; a missing column is all nulls."""
    if name not in table.column_names:
        return pa.nulls(len(table), pa.string())
    column = table.column(name).combine_chunks()
    if pa.types.is_null(column.type):
        return pa.nulls(len(table), pa.string())
    if pa.types.is_large_string(column.type) or pa.types.is_string_view(column.type):
        column = column.cast(pa.string())
    if not pa.types.is_string(column.type):
        raise Unsupported(f"{name} is {column.type}")
    return column


def _id_column(table: pa.Table) -> pa.Array:
    if "id" not in table.column_names:
        return pa.nulls(len(table), pa.string())
    column = table.column("id").combine_chunks()
    # Integers print exactly as written; floats do not (the reference reads them exactly).
    if pa.types.is_integer(column.type) or pa.types.is_null(column.type):
        return column.cast(pa.string())
    return _column(table, "id")


def _source_column(table: pa.Table, default_source: str) -> pa.Array:
    return pc.fill_null(_column(table, "source"), pa.scalar(default_source, pa.string()))


def _blank(strings: pa.Array) -> np.ndarray:
    """``not s.strip()`` for every string (nulls count as blank)."""
    trimmed = pc.binary_length(pc.utf8_trim(strings, characters=PY_WHITESPACE))
    return pc.fill_null(pc.equal(trimmed, 0), True).to_numpy(zero_copy_only=False)


def _first_bad(bad: np.ndarray) -> None:
    if bad.any():
        raise BadRow(int(np.argmax(bad)))


def _messages(offsets: np.ndarray, roles: np.ndarray, contents: pa.Array) -> pa.Array:
    """A ``list<struct<role, content>>`` array from flat role codes and contents."""
    role_names = pa.DictionaryArray.from_arrays(pa.array(roles.astype(np.int8)), pa.array(ROLES)).cast(pa.string())
    struct = pa.StructArray.from_arrays([role_names, contents], fields=list(MESSAGE_TYPE))
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), struct)


def _single_exchange(table: pa.Table) -> pa.Array:
    """alpaca and generated-chat: optional system, ``instruction`` (+ ``input``), ``output``."""
    instruction, extra_input, output = _column(table, "instruction"), _column(table, "input"), _column(table, "output")
    _first_bad(_blank(instruction) | _blank(output))
    user = pc.if_else(_blank(extra_input), instruction, pc.binary_join_element_wise(instruction, extra_input, "\n"))
    if "system" in table.column_names and not pa.types.is_string(table.column("system").type) \
            and not pa.types.is_null(table.column("system").type):
        raise Unsupported("system is not text")  # the reference ignores non-text systems row by row
    system = _column(table, "system")
    has_system = ~_blank(system)
    rows = len(table)
    per_row = 2 + has_system.astype(np.int64)
    offsets = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(per_row, out=offsets[1:])
    # Flat order: [system?, user, assistant] per row, gathered from [system..., user..., output...].
    row = np.arange(rows)
    take = np.empty(offsets[-1], dtype=np.int64)
    roles = np.empty(offsets[-1], dtype=np.int8)
    start = offsets[:-1]
    take[start[has_system]] = row[has_system]
    roles[start[has_system]] = _SYSTEM
    user_at = start + has_system
    take[user_at], roles[user_at] = rows + row, _USER
    take[user_at + 1], roles[user_at + 1] = 2 * rows + row, _ASSISTANT
    contents = pa.concat_arrays([system, user, output]).take(pa.array(take))
    return _messages(offsets, roles, contents)


def _alternation_bad(offsets: np.ndarray, roles: np.ndarray) -> np.ndarray:
    """Rows that break "optional system, then user/assistant in turn, ending with the assistant"."""
    lengths = np.diff(offsets)
    rows = len(lengths)
    nonempty = lengths > 0
    first = np.full(rows, -1)
    first[nonempty] = roles[offsets[:-1][nonempty]]
    has_system = (first == _SYSTEM).astype(np.int64)
    row_of = np.repeat(np.arange(rows), lengths)
    position = np.arange(len(roles)) - offsets[:-1][row_of] - has_system[row_of]
    expected = np.where(position < 0, _SYSTEM, np.where(position % 2 == 0, _USER, _ASSISTANT))
    bad = np.bincount(row_of[roles != expected], minlength=rows) > 0
    last = np.full(rows, -1)
    last[nonempty] = roles[offsets[1:][nonempty] - 1]
    return bad | (lengths - has_system == 0) | (last != _ASSISTANT)


def _empty_answers(offsets: np.ndarray, roles: np.ndarray, contents: pa.Array) -> np.ndarray:
    row_of = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    empty = (roles == _ASSISTANT) & _blank(contents)
    return np.bincount(row_of[empty], minlength=len(offsets) - 1) > 0


def _list_of_structs(table: pa.Table, name: str, fields: tuple[str, str]):
    """(offsets, null-or-empty rows, null items, first field, second field) of a list-of-objects column."""
    if name not in table.column_names:
        raise BadRow(0)
    column = table.column(name).combine_chunks()
    if pa.types.is_large_list(column.type):
        column = column.cast(pa.list_(column.type.value_type))
    if pa.types.is_null(column.type) or (pa.types.is_list(column.type) and pa.types.is_null(column.type.value_type)):
        raise BadRow(0)  # no row holds an object: every list is null, empty or made of nulls
    if not pa.types.is_list(column.type) or not pa.types.is_struct(column.type.value_type):
        raise Unsupported(f"{name} is {column.type}")
    empty = pc.fill_null(pc.equal(pc.list_value_length(column), 0), True).to_numpy(zero_copy_only=False)
    _first_bad(empty)
    items = column.flatten()  # list nulls were refused above, so offsets are plain
    offsets = column.offsets.to_numpy() - column.offsets[0].as_py()
    struct_type = items.type
    values = []
    for field in fields:
        if struct_type.get_field_index(field) < 0:
            values.append(pa.nulls(len(items), pa.string()))
            continue
        value = pc.struct_field(items, field)
        if pa.types.is_null(value.type):
            value = pa.nulls(len(items), pa.string())
        elif pa.types.is_large_string(value.type):
            value = value.cast(pa.string())
        elif not pa.types.is_string(value.type):
            raise Unsupported(f"{name}.{field} is {value.type}")
        values.append(value)
    row_of = np.repeat(np.arange(len(table)), np.diff(offsets))
    null_items = items.is_null().to_numpy(zero_copy_only=False)
    for value in values:  # an item that is null, or has a null field, is refused
        null_items = null_items | value.is_null().to_numpy(zero_copy_only=False)
    _first_bad(np.bincount(row_of[null_items], minlength=len(table)) > 0)
    return offsets, values[0], values[1]


def _conversations(table: pa.Table) -> pa.Array:
    offsets, speakers, values = _list_of_structs(table, "conversations", ("from", "value"))
    # Speaker names are ASCII, so lower-casing the ASCII letters is the same as ``str.lower``.
    found = pc.index_in(pc.ascii_lower(speakers), value_set=_SPEAKERS).fill_null(-1).to_numpy(zero_copy_only=False)
    roles = _SPEAKER_CODES[found]
    row_of = np.repeat(np.arange(len(table)), np.diff(offsets))
    _first_bad(np.bincount(row_of[roles < 0], minlength=len(table)) > 0)
    _first_bad(_alternation_bad(offsets, roles) | _empty_answers(offsets, roles, values))
    return _messages(offsets, roles, values)


def _messages_schema(table: pa.Table) -> pa.Array:
    offsets, role_names, contents = _list_of_structs(table, "messages", ("role", "content"))
    roles = pc.index_in(role_names, value_set=pa.array(ROLES)).fill_null(-1).to_numpy(zero_copy_only=False)
    row_of = np.repeat(np.arange(len(table)), np.diff(offsets))
    _first_bad((np.bincount(row_of[roles < 0], minlength=len(table)) > 0)
               | _empty_answers(offsets, roles, contents))
    return _messages(offsets, roles, contents)


# The turn markers of belle-multiturn, as in ``schemas._LINE_START_TURN_MARKER``: "Human:" or
# "Assistant:" (half- or full-width colon) at the start of a line, the newline included.
_SPEAKER_WORDS = ((b"Human", _USER), (b"Assistant", _ASSISTANT))
_COLONS = (b":", "：".encode())


def _split_at_markers(strings: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Cut every string at its turn markers, without copying a byte.

    Returns ``(pieces, counts, roles)``: row ``i`` becomes ``counts[i]`` consecutive pieces
    ``[before, marker, content, marker, content, ...]``, and ``roles`` holds the speaker of
    every marker in order. A regex replace-and-split in pyarrow costs as much as loading the
    file; markers always follow a newline (or open the string), so numpy finds the newlines,
    compares the few bytes after each, and the pieces are new offsets over the same data buffer.
    """
    rows = len(strings)
    _, offset_buffer, data_buffer = strings.buffers()
    offsets = np.frombuffer(offset_buffer, np.int32, rows + 1, strings.offset * 4).astype(np.int64)
    data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.zeros(1, np.uint8)
    last_byte = len(data) - 1
    low, high = int(offsets[0]), int(offsets[-1])
    newlines = low + np.flatnonzero(data[low:high] == ord("\n"))
    # A marker may open the string (the reference splits "\n" + text) or follow a newline in it.
    opens = offsets[:-1][np.diff(offsets) > 0]
    marker_start = np.concatenate([opens, newlines])
    word_start = np.concatenate([opens, newlines + 1])

    def matching(candidates: np.ndarray, at: np.ndarray, text: bytes) -> tuple[np.ndarray, np.ndarray]:
        for index, byte in enumerate(text):  # byte by byte: each step only gathers the survivors
            keep = data[np.minimum(at + index, last_byte)] == byte
            candidates, at = candidates[keep], at[keep]
        return candidates, at + len(text)

    found, ends, speakers = [], [], []
    initial = data[np.minimum(word_start, last_byte)]
    for word, role in _SPEAKER_WORDS:
        candidates = np.flatnonzero(initial == word[0])
        after_word = matching(candidates, word_start[candidates], word)
        for colon in _COLONS:
            candidates, end = matching(*after_word, colon)
            found.append(candidates)
            ends.append(end)
            speakers.append(np.full(len(candidates), role, dtype=np.int8))
    found, ends, speakers = np.concatenate(found), np.concatenate(ends), np.concatenate(speakers)
    starts = marker_start[found]
    row = np.searchsorted(offsets, starts, side="right") - 1
    inside = ends <= offsets[row + 1]  # a marker never runs into the next string
    order = np.argsort(starts[inside], kind="stable")
    starts, ends, speakers, row = starts[inside][order], ends[inside][order], speakers[inside][order], row[inside][order]
    # Two sorted runs (string bounds, marker bounds): the stable sort merges them in one pass.
    bounds = np.sort(np.concatenate([offsets, np.column_stack([starts, ends]).ravel()]), kind="stable")
    pieces = pa.StringArray.from_buffers(len(bounds) - 1, pa.py_buffer(bounds.astype(np.int32)), data_buffer)
    return pieces, 1 + 2 * np.bincount(row, minlength=rows), speakers


def _belle_multiturn(table: pa.Table) -> pa.Array:
    instruction, output = _column(table, "instruction"), _column(table, "output")
    rows = len(table)
    _first_bad(instruction.is_null().to_numpy(zero_copy_only=False) | output.is_null().to_numpy(zero_copy_only=False))
    parts, counts, roles = _split_at_markers(instruction)
    # Every piece stripped once: the text before the first marker, the markers and the contents.
    pieces = pc.utf8_trim(parts, characters=PY_WHITESPACE)
    empty = pc.binary_length(pieces).to_numpy(zero_copy_only=False) == 0
    starts = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    # No marker at all, or text before the first one.
    _first_bad((counts == 1) | ~empty[starts[:-1]])
    turns_per_row = (counts - 1) // 2
    row_of_turn = np.repeat(np.arange(rows), turns_per_row)
    turn_start = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(turns_per_row, out=turn_start[1:])
    rank = np.arange(turn_start[-1]) - turn_start[:-1][row_of_turn]
    content_at = starts[:-1][row_of_turn] + 2 + 2 * rank  # each turn: its marker, then its content
    # The trailing "Assistant:" that ``output`` answers is dropped; ``output`` (stripped) is the last turn.
    last = turn_start[1:] - 1
    drop_last = (roles[last] == _ASSISTANT) & empty[content_at[last]]
    keep = np.ones(len(roles), dtype=bool)
    keep[last[drop_last]] = False
    answers = pc.utf8_trim(output, characters=PY_WHITESPACE)
    _first_bad(pc.binary_length(answers).to_numpy(zero_copy_only=False) == 0)
    kept_per_row = turns_per_row - drop_last
    offsets = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(kept_per_row + 1, out=offsets[1:])
    kept = np.flatnonzero(keep)
    row_of_kept = row_of_turn[kept]
    kept_rank = np.arange(len(kept)) - (offsets[:-1] - np.arange(rows))[row_of_kept]
    take = np.empty(offsets[-1], dtype=np.int64)
    all_roles = np.empty(offsets[-1], dtype=np.int8)
    at = offsets[:-1][row_of_kept] + kept_rank
    take[at], all_roles[at] = content_at[kept], roles[kept]
    answer_at = offsets[1:] - 1
    take[answer_at], all_roles[answer_at] = len(pieces) + np.arange(rows), _ASSISTANT
    # Contents are stripped already: an empty answer in the history is an empty piece.
    empty_answer = np.zeros(offsets[-1], dtype=bool)
    empty_answer[at] = empty[content_at[kept]] & (roles[kept] == _ASSISTANT)
    _first_bad(_alternation_bad(offsets, all_roles) | (np.bincount(np.repeat(np.arange(rows), np.diff(offsets))[empty_answer], minlength=rows) > 0))
    contents = pa.concat_arrays([pieces, answers]).take(pa.array(take))
    return _messages(offsets, all_roles, contents)


_NORMALIZERS = {
    "alpaca": _single_exchange,
    "generated-chat": _single_exchange,
    "belle-multiturn": _belle_multiturn,
    "conversations": _conversations,
    "messages": _messages_schema,
}
