"""The self-instruct prompt: a fixed request followed by numbered example tasks.

The layout is BELLE's (Alpaca's, in Chinese): after the request text come ``###``-separated
items ``N. 指令: ...`` / ``N. 输入:`` / ``N. 输出:``, with ``<无输入>`` for an empty input, and the
prompt ends with ``###`` and the next number's ``指令:`` so that the model continues the list.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Sequence

from belle_hf.data.generate.seeds import RESOURCES, SeedTask
from belle_hf.errors import BelleError

DEFAULT_PROMPT = RESOURCES / "prompt_zh.txt"
"""The project's own Chinese request text (BELLE's ``prompt_cn.txt`` works the same way)."""

NO_INPUT = "<无输入>"


def load_prompt_template(path: str | os.PathLike | None = None) -> str:
    """The request text that precedes the examples.

    BELLE's ``prompt_cn.txt`` is one line with literal ``\\n`` escapes; those are turned into
    real line breaks so both styles of file give the same prompt.
    """
    path = Path(path) if path is not None else DEFAULT_PROMPT
    if not path.is_file():
        raise BelleError(f"{path}: no such prompt file")
    text = path.read_text(encoding="utf-8-sig").strip()
    if "\n" not in text and "\\n" in text:
        text = text.replace("\\n", "\n")
    if not text:
        raise BelleError(f"{path}: the prompt file is empty")
    return text


def encode_prompt(template: str, tasks: Sequence[SeedTask]) -> str:
    """The full prompt for ``tasks``: the request, the numbered examples, the next number's ``指令:``."""
    if not tasks:
        raise ValueError("a prompt needs at least one example task")
    parts = [template.rstrip() + "\n"]
    for number, task in enumerate(tasks, start=1):
        instruction = re.sub(r"\s+", " ", task.instruction).strip().rstrip(":：")
        input_text = task.input if task.input.strip() else NO_INPUT
        parts.append(f"###\n{number}. 指令: {instruction}\n{number}. 输入:\n{input_text}\n"
                     f"{number}. 输出:\n{task.output}\n")
    parts.append(f"###\n{len(tasks) + 1}. 指令:")
    return "".join(parts)


def prompt_hash(prompt: str) -> str:
    """A short, stable fingerprint of a prompt (recorded with every generated row)."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]
