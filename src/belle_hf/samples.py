"""The bundled sample data: a few hundred small records in every BELLE schema (``sample:<key>``).

A product feature, not only a test fixture: recipes name these files as ``sample:alpaca`` and
the quickstart trains on them with no download. Written by this project (templated arithmetic,
facts, word tasks and role-play dialogues), not copied from any corpus. Every conversation is
distinct across all files, so a recipe mixing several samples holds out an eval split that
shares nothing with its training split. The files ship inside the package under
``resources/sample_data``; ``python -m belle_hf.samples`` rewrites them, and a test checks they
are current.
"""

from __future__ import annotations

import json
import random
from importlib import resources
from pathlib import Path

from belle_hf.errors import BelleError

SAMPLE_PREFIX = "sample:"
"""Data paths starting with ``sample:`` name the bundled sample files (``sample:belle-multiturn``)."""
SAMPLE_FILES = {
    "alpaca": "alpaca.jsonl",
    "alpaca-array": "alpaca_array.json",
    "belle-multiturn": "belle_multiturn.jsonl",
    "generated-chat": "generated_chat.jsonl",
    "conversations": "conversations.jsonl",
    "messages": "messages.jsonl",
}

_CAPITALS = [
    ("中国", "北京", "China", "Beijing"), ("日本", "东京", "Japan", "Tokyo"), ("法国", "巴黎", "France", "Paris"),
    ("英国", "伦敦", "the United Kingdom", "London"), ("德国", "柏林", "Germany", "Berlin"),
    ("意大利", "罗马", "Italy", "Rome"), ("俄罗斯", "莫斯科", "Russia", "Moscow"),
    ("埃及", "开罗", "Egypt", "Cairo"), ("韩国", "首尔", "South Korea", "Seoul"),
    ("泰国", "曼谷", "Thailand", "Bangkok"), ("西班牙", "马德里", "Spain", "Madrid"),
    ("加拿大", "渥太华", "Canada", "Ottawa"), ("澳大利亚", "堪培拉", "Australia", "Canberra"),
    ("巴西", "巴西利亚", "Brazil", "Brasilia"), ("印度", "新德里", "India", "New Delhi"),
    ("美国", "华盛顿", "the United States", "Washington"),
]
_ANTONYMS = [("高", "低"), ("大", "小"), ("快", "慢"), ("冷", "热"), ("黑", "白"), ("长", "短"), ("多", "少"),
             ("远", "近"), ("新", "旧"), ("上", "下"), ("开心", "难过"), ("简单", "复杂"), ("安静", "热闹"),
             ("勇敢", "胆小"), ("干净", "肮脏"), ("成功", "失败")]
_WORDS = [("苹果", "apple"), ("书", "book"), ("猫", "cat"), ("狗", "dog"), ("老师", "teacher"), ("学校", "school"),
          ("太阳", "sun"), ("月亮", "moon"), ("朋友", "friend"), ("电脑", "computer"), ("水", "water"),
          ("音乐", "music"), ("城市", "city"), ("花", "flower"), ("火车", "train"), ("医生", "doctor")]
_NAMES = ["小明", "小红", "小刚", "小丽", "王老师", "李医生", "张三", "李四"]
_FRUITS = ["苹果", "橘子", "香蕉", "梨", "桃子"]
_TOPICS = [("健身", "坚持运动能增强体质，也能让人心情愉快。"), ("读书", "读书能开阔眼界，让人学会独立思考。"),
           ("旅行", "旅行让人见识不同的风景和文化。"), ("环保", "保护环境要从节约用水、垃圾分类做起。"),
           ("睡眠", "充足的睡眠有助于记忆和身体恢复。"), ("编程", "编程是用代码让计算机按步骤解决问题。")]
_TRAITS = ["热情开朗的大学生", "严谨认真的工程师", "喜欢讲故事的老人", "刚入职的程序员", "经验丰富的厨师",
           "好奇心很强的小学生"]


def _arithmetic(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    kind = rng.choice(["加", "减", "乘"])
    value = {"加": a + b, "减": a - b, "乘": a * b}[kind]
    return f"计算 {a} {kind} {b} 等于多少？", f"{a} {kind} {b} 等于 {value}。"


def _word_problem(rng: random.Random) -> tuple[str, str]:
    name, fruit = rng.choice(_NAMES), rng.choice(_FRUITS)
    have, give = rng.randint(5, 30), rng.randint(1, 4)
    return (f"{name}有 {have} 个{fruit}，送给朋友 {give} 个，还剩几个？",
            f"解：{have} - {give} = {have - give}。\n答：{name}还剩 {have - give} 个{fruit}。")


def _capital(rng: random.Random) -> tuple[str, str]:
    country, city, en_country, en_city = rng.choice(_CAPITALS)
    if rng.random() < 0.7:
        return f"{country}的首都是哪里？", f"{country}的首都是{city}。"
    return f"What is the capital of {en_country}?", f"The capital of {en_country} is {en_city}."


def _antonym(rng: random.Random) -> tuple[str, str]:
    word, opposite = rng.choice(_ANTONYMS)
    return f"请给出“{word}”的反义词。", f"“{word}”的反义词是“{opposite}”。"


def _translate(rng: random.Random) -> tuple[str, str]:
    zh, en = rng.choice(_WORDS)
    if rng.random() < 0.5:
        return f"把“{zh}”翻译成英文。", f"“{zh}”的英文是 {en}。"
    return f"Translate \"{en}\" into Chinese.", f"\"{en}\" 的中文是“{zh}”。"


def _essay(rng: random.Random) -> tuple[str, str]:
    topic, sentence = rng.choice(_TOPICS)
    return f"请用一句话谈谈{topic}的好处。", sentence


def _colon_edge(rng: random.Random) -> tuple[str, str]:
    # Colons and the words Human/Assistant inside content are content, not turn markers.
    zh, en = rng.choice(_WORDS)
    return (f"解释这句对话记录的含义：Human: 你好 Assistant: 你好！其中“{zh}”怎么说？",
            f"这是一段人机对话的记录，Human 表示用户，Assistant 表示助手。注意：“{zh}”的英文是 {en}。")


_TASKS = [_arithmetic, _word_problem, _capital, _antonym, _translate, _essay, _colon_edge]


class _DistinctConversations:
    """Draws conversations no earlier record of any sample file already holds.

    The task templates have small pools (16 capitals, 6 essay topics), so plain random draws
    repeat: the first release had 36 exact duplicates in 120 alpaca rows, and a recipe's eval
    split then overlapped its training split.
    """

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.seen: set[tuple] = set()

    def exchange(self) -> tuple[str, str]:
        return self.rng.choice(_TASKS)(self.rng)

    def claim(self, key: tuple) -> bool:
        """True (and remembered) when ``key`` is new."""
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

    def single(self) -> tuple[str, str]:
        while True:
            question, answer = self.exchange()
            if self.claim(((question, answer),)):
                return question, answer

    def turns(self, count: int) -> list[tuple[str, str]]:
        while True:
            turns = [self.exchange() for _ in range(count)]
            if self.claim(tuple(turns)):
                return turns


def build_sample_records(seed: int = 20230601) -> dict[str, list[dict]]:
    """All sample records, by file key of :data:`SAMPLE_FILES`; deterministic for a seed."""
    rng = random.Random(seed)
    draw = _DistinctConversations(rng)
    alpaca = []
    for index in range(120):
        question, answer = draw.single()
        extra = ""
        if index % 10 == 3:  # some records use the separate input field
            question, extra = "请回答下面的问题。", question
        alpaca.append({"instruction": question, "input": extra, "output": answer, "id": f"alpaca-{index}"})

    alpaca_array = []
    for index in range(30):
        question, answer = draw.single()
        alpaca_array.append({"instruction": question, "input": "", "output": answer})

    multiturn = []
    for index in range(60):
        turns = draw.turns(rng.randint(2, 3))
        history = "".join(f"Human:{q}\nAssistant:{a}\n" for q, a in turns[:-1])
        multiturn.append({"instruction": f"{history}Human:{turns[-1][0]}\nAssistant:", "input": "",
                          "output": turns[-1][1]})

    generated_chat = []
    for index in range(40):
        while True:
            first, second = rng.sample(_NAMES, 2)
            trait_a, trait_b = rng.sample(_TRAITS, 2)
            topic, sentence = rng.choice(_TOPICS)
            if draw.claim(("generated-chat", first, second, trait_a, trait_b, topic)):
                break
        instruction = (f"根据以下角色信息，生成一段关于{topic}的对话。\n{first}：{trait_a}。\n{second}：{trait_b}。")
        output = (f"{first}：你平时关注{topic}吗？\n{second}：当然，{sentence}\n"
                  f"{first}：说得对，我们一起试试吧。\n{second}：好的，就从今天开始。")
        generated_chat.append({"instruction": instruction, "input": "", "output": output})

    conversations = []
    for index in range(60):
        turns = []
        if index % 6 == 0:
            turns.append({"from": "system", "value": "你是一个乐于助人的中文助手。"})
        for question, answer in draw.turns(rng.randint(1, 3)):
            turns += [{"from": "human", "value": question},
                      {"from": rng.choice(["gpt", "assistant"]), "value": answer}]
        conversations.append({"id": f"conv-{index}", "conversations": turns})

    messages = []
    for index in range(40):
        turns = []
        for question, answer in draw.turns(rng.randint(1, 2)):
            turns += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        messages.append({"messages": turns, "id": f"msg-{index}", "source": "sample"})

    return {"alpaca": alpaca, "alpaca-array": alpaca_array, "belle-multiturn": multiturn,
            "generated-chat": generated_chat, "conversations": conversations, "messages": messages}


def render_sample_files(records: dict[str, list[dict]]) -> dict[str, str]:
    """File name -> file text for the records (JSON Lines, or a JSON array for ``alpaca-array``)."""
    texts = {}
    for key, rows in records.items():
        if key == "alpaca-array":
            texts[SAMPLE_FILES[key]] = json.dumps(rows, ensure_ascii=False, indent=1) + "\n"
        else:
            texts[SAMPLE_FILES[key]] = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return texts


def sample_data_dir() -> Path:
    """The folder of the bundled sample files (inside the installed package)."""
    return Path(str(resources.files("belle_hf") / "resources" / "sample_data"))


def sample_data_path(key: str = "alpaca") -> Path:
    """Path of one bundled sample file, by schema key of :data:`SAMPLE_FILES`."""
    return sample_data_dir() / SAMPLE_FILES[key]


def is_sample(path: str) -> bool:
    """Whether a data path names a bundled sample (``sample:alpaca``)."""
    return str(path).startswith(SAMPLE_PREFIX)


def resolve_sample(path: str) -> Path:
    """The file behind ``sample:<key>``; an unknown key is an error listing the known ones."""
    key = str(path)[len(SAMPLE_PREFIX):]
    if key not in SAMPLE_FILES:
        raise BelleError(f"unknown sample {path!r}; samples are " + ", ".join(SAMPLE_PREFIX + name for name in SAMPLE_FILES))
    return sample_data_path(key)


def write_sample_files(out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_sample_files(build_sample_records()).items():
        (out_dir / name).write_text(text, encoding="utf-8")
        written.append(out_dir / name)
    return written


def sample_text() -> str:
    """All text of the sample data, for training the tiny tokenizer."""
    parts = []
    for rows in build_sample_records().values():
        for row in rows:
            parts.append(json.dumps(row, ensure_ascii=False))
    return "\n".join(parts)


if __name__ == "__main__":
    for path in write_sample_files(sample_data_dir()):
        print(path)
