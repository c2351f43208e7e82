"""An append-only on-disk cache of chat completions, keyed by the full request.

One JSON Lines file: every answered request is appended (and flushed) as soon as it arrives,
so a run killed at any moment keeps everything it paid for, and a rerun sends none of those
requests again. A line cut short by a kill is dropped on open. The key is a SHA-256 of the
endpoint's model and the request body; the API key is never part of either.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from belle_hf.io import read_keyed_jsonl

CACHE_FILE = "responses.jsonl"


def request_key(model: str, body: dict[str, Any]) -> str:
    """Cache key of a request: SHA-256 over the model and the canonical JSON of the body."""
    canonical = json.dumps({"model": model, "request": body}, ensure_ascii=False, sort_keys=True,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """Append-only response cache in ``directory/responses.jsonl``; thread-safe."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / CACHE_FILE
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        self._load()

    def _load(self) -> None:
        # A write cut short by a kill is dropped; a damaged line is a cache miss, never a crash.
        self._entries.update(read_keyed_jsonl(self.path, "response"))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> dict[str, Any] | None:
        return self._entries.get(key)

    def put(self, key: str, response: dict[str, Any]) -> None:
        line = json.dumps({"key": key, "response": response}, ensure_ascii=False) + "\n"
        with self._lock:
            self._entries[key] = response
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
