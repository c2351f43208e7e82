"""Row outputs that survive a kill: rows are appended to ``OUTPUT.partial`` as they finish, and
``OUTPUT`` itself is written atomically, in input order, once every row is done.

A rerun reads the finished rows back (from ``OUTPUT`` if an earlier run completed, else from
``OUTPUT.partial``) and only works on the rest. Each row is stored with a key of what produced
it (its index and a hash of its input), so a row is reused only for the same input.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

from belle_hf.io import atomic_write, read_keyed_jsonl


def row_key(index: int, *parts: Any) -> str:
    """A key naming row ``index`` computed from ``parts`` (any JSON-serializable values)."""
    payload = json.dumps([index, *parts], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


class ResumableJsonl:
    """Finished rows of one output file, keyed by :func:`row_key`; see the module docstring."""

    def __init__(self, output: str | os.PathLike, resume: bool = True):
        self.output = Path(output)
        self.partial = self.output.with_name(self.output.name + ".partial")
        self.done: dict[str, dict[str, Any]] = {}
        if resume:
            self._load_partial()
        elif self.partial.exists():
            self.partial.unlink()

    def _load_partial(self) -> None:
        self.done.update(read_keyed_jsonl(self.partial, "row"))  # a line cut short by a kill is dropped

    def seed_from_output(self, keys: list[str], matches) -> None:
        """Reuse rows of a finished earlier ``OUTPUT``: row ``i`` is taken when
        ``matches(i, row)`` says it was made from the same input."""
        if not self.output.exists():
            return
        with open(self.output, encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        for index, row in enumerate(rows[: len(keys)]):
            if keys[index] not in self.done and matches(index, row):
                self.done[keys[index]] = row

    def get(self, key: str) -> dict[str, Any] | None:
        return self.done.get(key)

    def add(self, key: str, row: dict[str, Any]) -> None:
        """Record a finished row (appended and flushed at once)."""
        self.done[key] = row
        with open(self.partial, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"key": key, "row": row}, ensure_ascii=False) + "\n")
            handle.flush()

    def finish(self, rows: Iterable[dict[str, Any]]) -> None:
        """Write ``OUTPUT`` atomically and drop the partial file."""
        with atomic_write(self.output, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        if self.partial.exists():
            self.partial.unlink()
