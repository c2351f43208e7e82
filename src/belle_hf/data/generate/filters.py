"""The quality filters of BELLE's self-instruct script, each with a name for the report.

Applied in order to every parsed item; the first that rejects it names the reason:

``blacklist``
    BELLE's keyword blacklist over the whole item: tasks about images, charts, files, links,
    audio or video (a text model cannot do them) and mentions of OpenAI / ChatGPT / GPT-3/4.
    Matched case-insensitively (BELLE's ``chatgpt`` missed ``ChatGPT``). Kept as crude as
    BELLE's: it would also drop 7 of BELLE's own 175 seed tasks (code using HTTP, "文件").
``gpt_reference``
    BELLE first strips phrases such as ``要求GPT模型能够`` / ``请GPT`` from the instruction; an
    item whose instruction or input still mentions GPT, or whose output speaks as an AI
    model (``作为一个AI语言模型``), is dropped.
``length``
    BELLE's length rules: instructions of 3 characters or fewer are dropped; with an input,
    the instruction must be shorter than 100 characters (150 when it gives examples).
``empty_output``
    No answer.
``instruction_not_chinese``
    The prompt asks for Chinese instructions; one without Chinese text is dropped.
``language_mismatch``
    A Chinese instruction answered in English (translation and code tasks excepted).
"""

from __future__ import annotations

import re
from dataclasses import replace

from belle_hf.data.generate.parsing import Item

FILTER_NAMES = ("blacklist", "gpt_reference", "length", "empty_output", "instruction_not_chinese",
                "language_mismatch")

# BELLE's blacklist, plus audio/video words (its prompt rules those tasks out too).
BLACKLIST = ("图像", "图片", "照片", "文件", "图表", "图层", "曲线图", "折线图", "直线图", "柱形图", "饼状图",
             "链接", "http", "音频", "视频", "录音", "openai", "chatgpt", "gpt-3", "gpt-3.5", "gpt-4")

# BELLE's list of phrases removed from instructions ("请GPT模型写..." -> "写...").
GPT_PHRASES = ("要求GPT模型能够", "要求GPT能够", "要求GPT模型", "让GPT模型", "使用GPT模型", "请向GPT模型", "GPT模型应",
               "GPT模型应该", "请求GPT模型", "需要GPT模型回答", "请GPT模型", "请让GPT模型", "训练GPT模型", "GPT模型需要",
               "要求GPT", "让GPT", "使用GPT", "请向GPT", "GPT应", "GPT应该", "请求GPT", "需要GPT回答", "请GPT", "请让GPT",
               "训练GPT", "GPT需要", "希望GPT模型能够", "希望GPT能够", "以便GPT模型能够", "以便GPT能够", "使得GPT模型能够",
               "使得GPT能够", "使GPT模型能够", "使GPT能够", "由GPT模型", "使GPT模型")
# Longest first, so that "要求GPT模型能够" goes whole rather than leaving "模型能够".
_GPT_PHRASES_LONGEST_FIRST = sorted(GPT_PHRASES, key=len, reverse=True)

# An answer written as the model talking about itself.
AI_SELF_REFERENCES = ("作为一个ai", "作为一个人工智能", "作为ai语言模型", "作为人工智能语言模型", "作为一个语言模型",
                      "作为语言模型", "我是一个ai", "我是一个人工智能", "as an ai language model", "as a language model")

# Instructions whose answer may rightly be English or code.
ENGLISH_OK_WORDS = ("翻译", "英文", "英语", "英译", "english", "代码", "程序", "编程", "函数", "sql", "python", "java",
                    "正则", "脚本", "命令", "公式", "html", "json", "算法", "缩写", "单词")

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_VOWEL = re.compile(r"[aeiouyAEIOUY]")
_LEADING_PUNCTUATION = re.compile(r"^[\s,，.。、;；:：!！?？]+")


def chinese_ratio(text: str) -> float:
    """Chinese characters among the letters of ``text`` (Chinese + Latin), 0 when it has none."""
    cjk = len(_CJK.findall(text))
    latin = len(_LATIN.findall(text))
    return cjk / (cjk + latin) if cjk + latin else 0.0


def is_english(text: str) -> bool:
    """English prose: no Chinese, at least three words, and words (not symbols, numbers or
    vowel-less strings such as chess notation) make up half of the text."""
    if _CJK.search(text):
        return False
    words = [word for word in _LATIN_WORD.findall(text) if _VOWEL.search(word)]
    visible = sum(not char.isspace() for char in text)
    return len(words) >= 3 and sum(map(len, words)) >= 0.5 * visible


def strip_gpt_phrases(instruction: str) -> str:
    """Remove BELLE's "ask GPT to ..." phrases from an instruction."""
    for phrase in _GPT_PHRASES_LONGEST_FIRST:
        instruction = instruction.replace(phrase, "")
    return _LEADING_PUNCTUATION.sub("", instruction).strip()


def check_blacklist(item: Item) -> bool:
    text = f"{item.instruction}\n{item.input}\n{item.output}".lower()
    return not any(word in text for word in BLACKLIST)


def check_gpt_reference(item: Item) -> bool:
    if "gpt" in item.instruction.lower() or "gpt" in item.input.lower():
        return False
    output = item.output.lower()
    return not any(phrase in output for phrase in AI_SELF_REFERENCES)


def check_length(item: Item) -> bool:
    if len(item.instruction) <= 3:
        return False
    if not item.input:
        return True
    gives_examples = "示例" in item.instruction or "例子" in item.instruction
    return len(item.instruction) < (150 if gives_examples else 100)


def check_output(item: Item) -> bool:
    return bool(item.output.strip())


def check_instruction_chinese(item: Item) -> bool:
    return chinese_ratio(item.instruction) >= 0.5


def check_language_match(item: Item) -> bool:
    if not is_english(item.output):
        return True
    asked = f"{item.instruction}\n{item.input}".lower()
    if any(word in asked for word in ENGLISH_OK_WORDS):
        return True
    return bool(item.input) and is_english(item.input)  # English material, English answer


_CHECKS = {
    "blacklist": check_blacklist,
    "gpt_reference": check_gpt_reference,
    "length": check_length,
    "empty_output": check_output,
    "instruction_not_chinese": check_instruction_chinese,
    "language_mismatch": check_language_match,
}


def apply_filters(item: Item) -> tuple[Item, str | None]:
    """The item with GPT phrases stripped, and the name of the first filter that rejects it."""
    cleaned = replace(item, instruction=strip_gpt_phrases(item.instruction))
    for name in FILTER_NAMES:
        if not _CHECKS[name](cleaned):
            return cleaned, name
    return cleaned, None
