"""A stand-in self-instruct model for the loopback OpenAI server: numbered Chinese batches that
contain every kind of trouble the filters exist for.

Each reply is a pure function of the request (its ``seed`` and prompt), so tests can predict it.
A reply (``###``-separated, continuing the prompt's ``N. 指令:``) holds, in order:

* ``GOOD`` unique tasks (random Chinese text, so they are far apart in ROUGE-L), one of them
  with a ``请GPT模型`` phrase that must be stripped, one with full-width colons;
* a translation task answered in English (allowed), then the trouble: a picture task
  (blacklist), a GPT self-reference, an AI-voiced answer, an English answer, a too-short
  instruction, an exact copy of the prompt's first seed task, a near copy of a task in this
  batch and one of the previous request's first task, a piece without 输出, and finally a
  truncated item with ``finish_reason="length"``.
"""

from __future__ import annotations

import random
import re

GOOD = 4
CJK = [chr(code) for code in range(0x4E00, 0x9FA5)]


def chinese(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(CJK) for _ in range(n))


def good_instruction(seed: int, j: int) -> str:
    """The j-th unique instruction of the reply to the request with this ``seed``."""
    return "请" + chinese(random.Random(f"good:{seed}:{j}"), 12)


def near_copy(text: str) -> str:
    """``text`` with its last character changed: ROUGE-L about 0.92."""
    return text[:-1] + ("甲" if text[-1] != "甲" else "乙")


def first_seed_instruction(prompt: str) -> str:
    return re.search(r"1\. 指令: (.*)\n", prompt).group(1)


def item(number: int, instruction: str, input_text: str, output: str, colon: str = ":") -> str:
    return f"{number}. 指令{colon} {instruction}\n{number}. 输入{colon}\n{input_text}\n{number}. 输出{colon}\n{output}\n"


def reply_items(body: dict) -> list[tuple[str, str, str, str]]:
    """``(kind, instruction, input, output)`` of the reply, in order."""
    seed = body.get("seed", 0)
    rng = random.Random(f"reply:{seed}")
    prompt = body["messages"][-1]["content"]
    good = [good_instruction(seed, j) for j in range(GOOD)]
    items = [("good", good[0], "<无输入>", chinese(rng, 30)),
             ("good_stripped", "请GPT模型" + good[1], chinese(rng, 20), chinese(rng, 30)),
             ("good", good[2], "<无输入>", chinese(rng, 30)),
             ("good_fullwidth", good[3], chinese(rng, 15), chinese(rng, 30)),
             ("good_translation", "把下面的句子翻译成英文" + chinese(rng, 4), "今天天气很好。",
              "The weather is very nice today."),
             ("blacklist", "描述这张图片中的" + chinese(rng, 8), "<无输入>", chinese(rng, 20)),
             ("gpt_reference", "解释GPT是如何" + chinese(rng, 8), "<无输入>", chinese(rng, 20)),
             ("gpt_reference", "说说" + chinese(rng, 10), "<无输入>", "作为一个AI语言模型，我无法回答这个问题。"),
             ("language_mismatch", "介绍一下" + chinese(rng, 10), "<无输入>",
              "This is an answer written in English instead of Chinese."),
             ("length", "写诗", "<无输入>", chinese(rng, 20)),
             ("exact_duplicate", first_seed_instruction(prompt), "<无输入>", chinese(rng, 20)),
             ("near_duplicate", near_copy(good[0]), "<无输入>", chinese(rng, 20)),
             ("near_duplicate_previous", near_copy(good_instruction(seed - 1, 0)), "<无输入>", chinese(rng, 20))]
    return items


def responder(body: dict) -> tuple[str, str]:
    """The reply text and ``finish_reason="length"`` (its last item is cut short)."""
    start = int(re.search(r"(\d+)\. 指令:$", body["messages"][-1]["content"]).group(1))
    pieces = []
    for offset, (kind, instruction, input_text, output) in enumerate(reply_items(body)):
        colon = "：" if kind == "good_fullwidth" else ":"
        pieces.append(item(start + offset, instruction, input_text, output, colon))
    number = start + len(pieces)
    pieces.append(f"{number}. 指令: 只有指令没有输出的一段{chinese(random.Random(number), 6)}\n{number}. 输入:\n<无输入>\n")
    number += 1
    pieces.append(f"{number}. 指令: 这一条被截断了{chinese(random.Random(-number), 6)}\n{number}. 输入:\n<无输入>\n"
                  f"{number}. 输出:\n写到一半")
    text = "###\n".join(pieces)
    # The model continues after the prompt's "N. 指令:", so the first marker is not repeated.
    text = text[len(f"{start}. 指令:"):]
    return text, "length"
