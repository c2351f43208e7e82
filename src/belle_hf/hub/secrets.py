"""Refuse to upload a secret: every file that would be pushed is scanned, whatever its size.

Files are read in chunks (with an overlap, so a token split across two reads is still seen) and
searched for Hugging Face, OpenAI-style and GitHub tokens, credentials in URLs
(``scheme://user:password@``, ``?api_key=…``) and the values of the tokens this machine holds.
Text may be UTF-8 or any ASCII-compatible encoding, UTF-16 or UTF-32 (either byte order, with or
without a BOM, even inside a binary file): a chunk holding NUL bytes is searched with them
removed, which turns ASCII-range characters of any wide encoding into plain ones, and a hit there
is confirmed on the original bytes.
Only tensor payloads are skipped: a safetensors file's JSON header (``__metadata__`` included)
and a GGUF file's metadata strings are checked, their weights are not.

Why by hand: huggingface_hub checks nothing before an upload, and secret scanners (detect-secrets,
trufflehog) read whole files as text, skip large or binary ones and have no notion of tensor
payloads; this needs a streaming search that knows those formats and reports the line.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from belle_hf.errors import BelleError
from belle_hf.redact import TOKEN_SHAPES, is_secret_parameter

CHUNK_BYTES = 8 * 1024 * 1024
OVERLAP_BYTES = 16 * 1024
"""Longer than any bounded shape in UTF-32 (URL credentials: up to 513 characters); a token
longer than that is still found, from its first 30 characters."""
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the format's own limit
WIDE_ENCODINGS = ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
_PADDING = {"utf-8": 0, "utf-16-le": 0, "utf-16-be": 1, "utf-32-le": 0, "utf-32-be": 3}
"""NUL bytes a big-endian match starts with: a little-endian match of the same text starts one
character unit later, and ties between them go to the file's own byte order."""
OWN_TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENAI_API_KEY")
_QUERY_NAME_END = re.compile(r"[?&#]([A-Za-z0-9_.-]*)$")
_IDENTIFIER_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

# Shapes as atoms, rendered for each encoding: literal regex text, or (character class, least, most).
# Every shape starts with a literal, which the regex engine finds fast; one starting with a class or
# an alternation is tried at every byte and runs some 20 times slower.
_URL_CHARS = "^\\s/?#@:\"'<>"
QUERY_SECRET = "a secret in a URL's query"
_SHAPES: list[tuple[str, list]] = [
    *((what, [prefix, (f"[{body}]", least, None)]) for what, (prefix, body, least) in TOKEN_SHAPES.items()),
    ("credentials in a URL", ["://", (f"[{_URL_CHARS}]", 1, 256), ":", (f"[{_URL_CHARS.replace(':', '')}*]", 3, 256),
                              "@"]),
    # ``=VALUE``, counted only when what comes before is ``[?&#]NAME`` and NAME ends with a secret
    # word (``api_key``, any case); a value is 8+ characters (``$TOKEN`` is not one).
    (QUERY_SECRET, ["=", ("[A-Za-z0-9._~+/%-]", 8, None)]),
]


@dataclass(frozen=True)
class _Shape:
    what: str
    narrow: re.Pattern
    """The shape in UTF-8 (and any ASCII-compatible encoding)."""
    wide: tuple[tuple[str, re.Pattern], ...]
    """``(encoding, pattern)`` in UTF-16 and UTF-32, both byte orders."""
    in_query: bool = False
    """Only counts after ``[?&#]NAME`` with a secret NAME (a query parameter)."""
    whole_word: bool = False
    """Only counts when not preceded by an identifier character: ``hf_…`` inside base64url data
    or a longer identifier is not a token."""


def _unit(character_class: str, encoding: str) -> str:
    """One character of ``character_class`` as bytes of ``encoding`` (ASCII-range characters)."""
    if encoding == "utf-8":
        return character_class
    if character_class.startswith("[^"):
        character_class = "[^\\x00" + character_class[2:]
    before, after = {"utf-16-le": ("", "\\x00"), "utf-16-be": ("\\x00", ""),
                     "utf-32-le": ("", "\\x00{3}"), "utf-32-be": ("\\x00{3}", "")}[encoding]
    return f"(?:{before}{character_class}{after})"


def _literal(text: str, encoding: str) -> str:
    """Regex text of literal characters and classes (``gh[pousr]_``) in ``encoding``."""
    if encoding == "utf-8":
        return text
    return "".join(_unit(piece, encoding) if piece.startswith("[") else
                   re.escape(piece.encode(encoding).decode("latin-1"))
                   for piece in re.findall(r"\[[^\]]*\]|.", text))


def _render(atoms: list, encoding: str) -> re.Pattern:
    parts = []
    for atom in atoms:
        if isinstance(atom, str):
            parts.append(_literal(atom, encoding))
        else:
            character_class, least, most = atom
            parts.append(f"{_unit(character_class, encoding)}{{{least},{'' if most is None else most}}}")
    return re.compile("".join(parts).encode("latin-1"))


def _shapes(own_tokens: list[str]) -> list[_Shape]:
    shapes = [_Shape(what, _render(atoms, "utf-8"), tuple((e, _render(atoms, e)) for e in WIDE_ENCODINGS),
                     in_query=what == QUERY_SECRET, whole_word=what in TOKEN_SHAPES) for what, atoms in _SHAPES]
    for token in own_tokens:
        shapes.append(_Shape("the value of a token set on this machine", re.compile(re.escape(token.encode())),
                             tuple((e, re.compile(re.escape(token.encode(e)))) for e in WIDE_ENCODINGS)))
    return shapes


def own_tokens() -> list[str]:
    """Tokens this machine holds (environment, huggingface_hub's stored token): never uploaded."""
    tokens = [os.environ.get(name, "") for name in OWN_TOKEN_VARIABLES]
    try:
        from huggingface_hub import get_token

        tokens.append(get_token() or "")
    except Exception:  # an unreadable token file is not this scan's problem
        pass
    return sorted({token for token in tokens if len(token) >= 8})


@dataclass
class Finding:
    path: Path
    where: str
    """``line N``, ``safetensors header``, ``GGUF metadata key general.name`` ..."""
    what: str

    def message(self) -> str:
        return (f"{self.path}: {self.where}: contains what looks like {self.what}; refusing to upload it "
                "(remove the secret or the file)")


class SecretScanner:
    """Searches files for the secret shapes above; one instance per push (the shapes are compiled once)."""

    def __init__(self, extra_tokens: list[str] | None = None):
        self.shapes = _shapes(sorted({*own_tokens(), *(extra_tokens or [])}))

    def _search(self, buffer: bytes, prefer: str = "utf-16-le") -> tuple[int, _Shape, str] | None:
        """``(offset, shape, encoding)`` of the earliest secret in ``buffer``.

        A buffer holding NUL bytes (binary data, UTF-16/32 text) is searched with them removed:
        that turns ASCII-range characters of any wide encoding and alignment into plain ones and
        leaves UTF-8 text as it was, so one pass finds every candidate; a shape found there is then
        confirmed (and located) on the original bytes by its exact UTF-8 and wide patterns.
        """
        if b"\x00" not in buffer:
            found = [hit for shape in self.shapes if (hit := self._first(shape, shape.narrow, buffer, "utf-8"))]
        else:
            stripped = buffer.replace(b"\x00", b"")
            found = [hit for shape in self.shapes if self._first(shape, shape.narrow, stripped, "utf-8", candidate=True)
                     for encoding, pattern in (("utf-8", shape.narrow), *shape.wide)
                     if (hit := self._first(shape, pattern, buffer, encoding))]
        return min(found, key=lambda hit: (hit[0], hit[2] != prefer)) if found else None

    @staticmethod
    def _first(shape: _Shape, pattern: re.Pattern, buffer: bytes, encoding: str,
               candidate: bool = False) -> tuple[int, _Shape, str] | None:
        """The first match that counts; ``candidate``: in the NUL-stripped bytes, where the byte
        before a token may have been a NUL, so only the query-name check applies."""
        unit = len("a".encode(encoding))
        for match in pattern.finditer(buffer):
            start = match.start()
            if shape.whole_word and not candidate and encoding == "utf-8" and start \
                    and buffer[start - 1] in _IDENTIFIER_BYTES:
                continue
            if shape.in_query:
                begin = max(0, start - 64 * unit)
                begin += (start - begin) % unit  # stay on a character boundary
                name = _QUERY_NAME_END.search(buffer[begin:start].decode(encoding, "replace"))
                if not (name and is_secret_parameter(name.group(1))):
                    continue
            return start + _PADDING[encoding], shape, encoding
        return None

    def scan_stream(self, chunks: Iterator[bytes], prefer: str = "utf-16-le") -> tuple[int, _Shape, str] | None:
        """``(byte offset, shape, encoding)`` of the first secret in the concatenated ``chunks``, or None."""
        tail, tail_offset = b"", 0
        for chunk in chunks:
            buffer = tail + chunk
            found = self._search(buffer, prefer)
            if found is not None:
                return tail_offset + found[0], found[1], found[2]
            keep = min(len(buffer), OVERLAP_BYTES)
            tail_offset += len(buffer) - keep
            tail = buffer[len(buffer) - keep:]
        return None

    def scan_file(self, path: str | os.PathLike) -> Finding | None:
        path = Path(path)
        with open(path, "rb") as handle:
            head = handle.read(4096)
            handle.seek(0)
            if path.suffix == ".safetensors" and (header := _safetensors_header(handle, head, path)) is not None:
                return self._scan_safetensors_header(path, header)
            if path.suffix == ".gguf" and head[:4] == b"GGUF" and _gguf_installed():
                return self._scan_gguf(path)
            found = self.scan_stream(iter(lambda: handle.read(CHUNK_BYTES), b""), _byte_order(head))
            if found is None:
                return None
            offset, shape, encoding = found
            handle.seek(0)
            return Finding(path, f"line {_line_of(handle, offset, encoding)}", shape.what)

    def _scan_text(self, path: Path, where: str, data: bytes) -> Finding | None:
        found = self.scan_stream(iter([data]))
        return Finding(path, where, found[1].what) if found else None

    def _scan_safetensors_header(self, path: Path, header: bytes) -> Finding | None:
        try:
            parsed = json.loads(header)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("__metadata__"), dict):
            # Decoded, so that a token written with JSON escapes (\u0068f_...) is seen too.
            for key, value in parsed["__metadata__"].items():
                text = f"{key}\n{value}".encode("utf-8", "surrogatepass")
                if finding := self._scan_text(path, f"safetensors __metadata__ {key!r}", text):
                    return finding
        decoded = json.dumps(parsed, ensure_ascii=False).encode("utf-8", "surrogatepass") if parsed else b""
        return self._scan_text(path, "safetensors header", header + b"\n" + decoded)

    def _scan_gguf(self, path: Path) -> Finding | None:
        from gguf import GGUFReader, GGUFValueType

        try:
            reader = GGUFReader(path)
        except Exception as error:  # the gguf reader raises many types for a damaged file
            raise BelleError(f"{path}: not a readable GGUF file ({error}); refusing to upload what cannot be checked") \
                from None
        for field in reader.fields.values():
            if not field.types or GGUFValueType.STRING not in (field.types[0], field.types[-1]):
                text = field.name.encode("utf-8", "replace")
            else:
                text = b"\n".join([field.name.encode("utf-8", "replace")]
                                  + [bytes(field.parts[index]) for index in field.data])
            if finding := self._scan_text(path, f"GGUF metadata key {field.name}", text):
                return finding
        return None


def _gguf_installed() -> bool:
    """The ``gguf`` reader comes with ``belle-hf[quant]``; without it a GGUF file is scanned whole."""
    import importlib.util

    return importlib.util.find_spec("gguf") is not None


def _byte_order(head: bytes) -> str:
    """The wide encoding a file's first bytes suggest: its BOM, else where its NUL bytes fall
    (ASCII-range text in UTF-16-LE has them at odd offsets, BMP text in UTF-32-LE at the two high
    bytes of each unit); only used to break ties between encodings that match the same text."""
    for bom, encoding in ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
                          (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if head.startswith(bom):
            return encoding
    zeros = [head[i::4].count(0) for i in range(4)]
    quarter = len(head) // 4
    if quarter and min(zeros[2], zeros[3]) > 0.9 * quarter:  # BMP text in UTF-32-LE: 2 high bytes are 0
        return "utf-32-le"
    if quarter and min(zeros[0], zeros[1]) > 0.9 * quarter:
        return "utf-32-be"
    return "utf-16-be" if zeros[0] + zeros[2] > zeros[1] + zeros[3] else "utf-16-le"


def _safetensors_header(handle, head: bytes, path: Path) -> bytes | None:
    """The JSON header of a well-formed safetensors file; None (scan it all) otherwise."""
    if len(head) < 8:
        return None
    (size,) = struct.unpack("<Q", head[:8])
    if size > MAX_SAFETENSORS_HEADER or 8 + size > path.stat().st_size:
        return None
    handle.seek(8)
    header = handle.read(size)
    handle.seek(0)
    return header if header[:1] == b"{" else None


def _line_of(handle, offset: int, encoding: str) -> int:
    """The line number of byte ``offset`` (only computed for a refusal)."""
    newline, lines, position = "\n".encode(encoding), 1, 0
    while position < offset:
        block = handle.read(min(CHUNK_BYTES, offset - position))
        if not block:
            break
        lines += block.count(newline)
        position += len(block)
    return lines


def scan_for_secrets(folder: str | os.PathLike, paths: list[str]) -> None:
    """Refuse (:class:`BelleError` naming the file and line) to upload ``paths`` under ``folder``
    when one holds a token, a credential in a URL or a token this machine holds."""
    scanner = SecretScanner()
    for rel in paths:
        finding = scanner.scan_file(Path(folder) / rel)
        if finding is not None:
            raise BelleError(finding.message())
