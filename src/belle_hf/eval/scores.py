"""Reading the 0-1 score out of a judge's free-text reply.

BELLE's prompts ask for ``得分:`` but judges write ``得分：0.8``, ``得分: 1分。理由...``,
``理由... 最终得分：0.5``, ``０.８`` in fullwidth digits, ``8/10`` or only ``0.8分``. No
library parses this, so it is done here with a few regular expressions:

1. NFKC turns fullwidth digits and colons into ASCII;
2. the last labelled score (``得分``/``分数``/``评分``/``score`` then a number) wins, so a
   score after the reason and a score before it both work;
3. without a label, a reply that is only a number (``0.8``, ``0.8分``) is read, and so is a
   reply whose ``N分`` mentions all agree;
4. ``x/y`` and ``x%`` are scaled to 0-1; anything else outside [0, 1] is unreadable.

Unreadable replies give ``None``: the caller counts them as failures and never as 0.
"""

from __future__ import annotations

import re
import unicodedata

_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
_SCALE = rf"(?:\s*(?:/|／|分之|out of)\s*{_NUMBER})?\s*(%)?"
_LABELLED = re.compile(rf"(?:得分|分数|评分|打分|score)\s*(?:为|是|[:=])?\s*[:=]?\s*{_NUMBER}{_SCALE}", re.IGNORECASE)
_ONLY_NUMBER = re.compile(rf"^\s*{_NUMBER}{_SCALE}\s*分?\s*[。.!！]?\s*$")
_WITH_FEN = re.compile(rf"(?<![\d.]){_NUMBER}\s*分(?!之)")


def _scaled(value: str, denominator: str | None, percent: str | None) -> float | None:
    score = float(value)
    if denominator is not None:
        total = float(denominator)
        if total <= 0:
            return None
        score /= total
    elif percent:
        score /= 100
    return score if 0.0 <= score <= 1.0 else None


def parse_score(text: str | None) -> float | None:
    """The score in [0, 1] written in a judge reply, or ``None`` when there is no readable one.

    >>> parse_score("得分：0.8分。模型回答基本正确。")
    0.8
    >>> parse_score("模型回答有误。得分: 0") == 0.0
    True
    >>> parse_score("无法评价") is None
    True
    """
    if not text:
        return None
    text = unicodedata.normalize("NFKC", text)
    labelled = list(_LABELLED.finditer(text))
    if labelled:
        match = labelled[-1]
        return _scaled(match.group(1), match.group(2), match.group(3))
    if match := _ONLY_NUMBER.match(text):
        return _scaled(match.group(1), match.group(2), match.group(3))
    mentions = {float(m.group(1)) for m in _WITH_FEN.finditer(text)}
    if len(mentions) == 1:
        return _scaled(str(mentions.pop()), None, None)
    return None
