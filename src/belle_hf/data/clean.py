"""Cleaning rules BELLE applied to its generated data, each a named function, each counted.

BELLE's ``train_1M_CN`` was generated like ``train_0.5M_CN`` and then filtered in
post-processing (BELLE's ``data/1.5M/README.md`` and ``1.5M/generate_instruction.py``):

* answers and instructions that call themselves, or mention, a GPT model
  (:func:`mentions_gpt_or_openai`, :func:`ai_self_reference`);
* items the model could not answer because the input was incomplete
  (:func:`asks_for_missing_input`);
* Chinese instructions with English answers (:func:`english_answer_to_chinese`);
* tasks a text model cannot do: images, charts, files, audio, links (:func:`multimodal_or_link_task`,
  BELLE's keyword blacklist);
* instructions of at most 3 characters, and answers cut off by the generation length limit
  (:func:`too_short_instruction`, :func:`truncated_answer`); plus empty messages
  (:func:`empty_message`).

Every rule takes the ``messages`` of one normalized record and returns ``True`` to drop it.
Rules run in the order of :data:`RULES`; a dropped record is counted under the first rule
that fired. Records that are not valid JSON or do not fit their schema are dropped and counted
as ``malformed`` (an empty instruction or answer, which the schema already rejects, counts as
``empty_message``).

>>> from belle_hf.data.clean import clean_file
>>> report = clean_file("Belle_open_source_0.5M.json", "clean.jsonl", report_path="clean_report.json")
>>> report.dropped["english_answer_to_chinese"]
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from belle_hf.data.files import dump_json
from belle_hf.errors import BelleError
from belle_hf.io import atomic_write_text

Messages = Sequence[dict]
Rule = Callable[[Messages], bool]

MALFORMED = "malformed"
"""Report key of records dropped because they are not valid JSON or do not fit their schema."""

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")


def _user_turns(messages: Messages) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "user"]


def _assistant_turns(messages: Messages) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "assistant"]


def _cjk_share(text: str) -> tuple[float, int]:
    """Share of Chinese characters among the letters of ``text``, and the number of letters."""
    cjk = len(_CJK.findall(text))
    letters = cjk + len(_LATIN.findall(text))
    return (cjk / letters if letters else 0.0), letters


# --- the rules --------------------------------------------------------------------------------


def empty_message(messages: Messages) -> bool:
    """A message is empty or whitespace only."""
    return any(not m["content"].strip() for m in messages)


def too_short_instruction(messages: Messages) -> bool:
    """The first user message has at most 3 characters (BELLE dropped such instructions)."""
    users = _user_turns(messages)
    return bool(users) and len("".join(users[0].split())) <= 3


# A sentence cannot end on these: a comma, an enumeration comma, a colon, a Chinese semicolon,
# an opening bracket or quote, or a connective; an answer ending so was cut off. (An ASCII ";"
# ends code, so it does not count.)
_OPEN_ENDING = re.compile(r"([，,、：:；（(【\[{《“‘]|以及|并且|而且|因为|所以|例如|比如|包括)\s*$")


def truncated_answer(messages: Messages) -> bool:
    """The last answer was cut off: it ends mid-sentence or inside an unclosed code block.

    BELLE discarded the last item of a generation that stopped on the length limit; in
    released data such items show as answers that stop on a comma, colon or connective, or
    leave a Markdown code fence open.
    """
    answers = _assistant_turns(messages)
    if not answers:
        return True
    answer = answers[-1].rstrip()
    return answer.count("```") % 2 == 1 or bool(_OPEN_ENDING.search(answer))


_GPT = re.compile(r"gpt|openai", re.IGNORECASE)


def mentions_gpt_or_openai(messages: Messages) -> bool:
    """A message mentions GPT, ChatGPT or OpenAI (BELLE's blacklist and its ``"GPT" in inst`` check)."""
    return any(_GPT.search(m["content"]) for m in messages)


_AI_SELF_REFERENCE = re.compile(
    r"作为一?[个名款]?(AI|ai|人工智能|语言模型|机器人|虚拟助手|计算机程序)"
    r"|我(只)?是一?[个名款]?(AI|ai|人工智能|语言模型|大型语言模型|虚拟助手|计算机程序)"
    r"|\bas an? (AI|artificial intelligence|language model)\b"
    r"|\bI(?: am|'m) (?:just |only )?an? (AI|artificial intelligence|language model)\b",
    re.IGNORECASE,
)


def ai_self_reference(messages: Messages) -> bool:
    """An answer calls itself an AI / language model ("作为一个AI语言模型", "as an AI language model")."""
    return any(_AI_SELF_REFERENCE.search(answer) for answer in _assistant_turns(messages))


_MISSING_INPUT = re.compile(
    r"(没有|未|并未|没)(提供|给出|给定|附上)(具体|足够|任何|完整)?的?(文本|输入|信息|内容|数据|句子|文章|段落|问题|上下文|选项|列表|代码|表格)"
    r"|请(您)?(提供|给出|补充)(具体|需要|要|更多|完整)?的?(文本|输入|信息|内容|数据|句子|文章|段落|上下文|选项|列表|代码)"
    r"|(缺少|缺乏)(必要的|足够的)?(输入|信息|上下文|数据)"
    r"|\bplease provide (the|more|a|an|some)\b|\byou (did not|didn't|have not|haven't) provide",
    re.IGNORECASE,
)


def asks_for_missing_input(messages: Messages) -> bool:
    """The only answer says the input is missing or incomplete, so the item cannot be answered.

    Applies to single-exchange records; in a multi-turn dialogue a clarifying question is fine.
    """
    if len(_user_turns(messages)) != 1:
        return False
    return any(_MISSING_INPUT.search(answer) for answer in _assistant_turns(messages))


# An instruction that asks for English (translation, English writing) or code may have an
# answer in Latin letters.
_ENGLISH_WANTED = re.compile(r"英文|英语|英译|翻译|translat|english|代码|程序|编程|函数|python|java|sql|正则|脚本|命令|单词",
                             re.IGNORECASE)


def english_answer_to_chinese(messages: Messages) -> bool:
    """A Chinese instruction got an English answer (question mostly Chinese, its answer almost all Latin).

    Each answer is judged against the user message it answers. Questions that ask for English,
    a translation or code are exempt, and so are answers with a code block.
    """
    question = None
    for message in messages:
        if message["role"] == "user":
            question = message["content"]
            continue
        if message["role"] != "assistant" or question is None:
            continue
        share, letters = _cjk_share(question)
        if letters == 0 or share < 0.5 or _ENGLISH_WANTED.search(question) or "```" in message["content"]:
            continue
        answer_share, answer_letters = _cjk_share(message["content"])
        if answer_letters >= 10 and answer_share < 0.1:
            return True
    return False


# BELLE's blacklist of tasks a text-only model cannot do, plus audio/video and URLs.
BLACKLIST = ("图像", "图片", "照片", "文件", "图表", "图层", "曲线图", "折线图", "直线图", "柱形图", "柱状图", "饼状图",
             "饼图", "链接", "http", "www.", "音频", "录音", "视频")
_BLACKLIST = re.compile("|".join(re.escape(word) for word in BLACKLIST), re.IGNORECASE)


def multimodal_or_link_task(messages: Messages) -> bool:
    """A user message asks about an image, chart, file, audio, video or link (BELLE's keyword blacklist)."""
    return any(_BLACKLIST.search(text) for text in _user_turns(messages))


RULES: dict[str, Rule] = {
    rule.__name__: rule
    for rule in (
        empty_message,
        too_short_instruction,
        truncated_answer,
        mentions_gpt_or_openai,
        ai_self_reference,
        asks_for_missing_input,
        english_answer_to_chinese,
        multimodal_or_link_task,
    )
}
"""Every cleaning rule by name, in the order they run."""


def describe_rules() -> dict[str, str]:
    """``{rule name: first line of its docstring}``."""
    return {name: (rule.__doc__ or "").strip().splitlines()[0] for name, rule in RULES.items()}


def select_rules(names: Iterable[str] | None = None) -> dict[str, Rule]:
    """The rules called ``names`` (all of :data:`RULES` when ``None``), in :data:`RULES` order."""
    if names is None:
        return dict(RULES)
    names = [name.strip() for name in names if name.strip()]
    unknown = [name for name in names if name not in RULES]
    if unknown:
        raise BelleError(f"unknown cleaning rule(s) {', '.join(unknown)}; choose from {', '.join(RULES)}")
    return {name: rule for name, rule in RULES.items() if name in names}


def first_failed_rule(messages: Messages, rules: dict[str, Rule] | None = None) -> str | None:
    """The name of the first rule that drops ``messages``, or ``None`` to keep it."""
    for name, rule in (RULES if rules is None else rules).items():
        if rule(messages):
            return name
    return None


# --- cleaning a file ---------------------------------------------------------------------------


@dataclass
class CleanReport:
    """What a cleaning pass did: rows in and kept, and per rule the drops and a few locations."""

    source: str
    output: str
    rules: list[str]
    rows_in: int = 0
    rows_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    """Rows dropped per rule (and under ``malformed``)."""
    examples: dict[str, list[str]] = field(default_factory=dict)
    """Per rule, the locations (``file:line``) of the first :attr:`MAX_EXAMPLES` rows it dropped."""

    MAX_EXAMPLES = 5

    def drop(self, rule: str, location: str) -> None:
        self.dropped[rule] = self.dropped.get(rule, 0) + 1
        examples = self.examples.setdefault(rule, [])
        if len(examples) < self.MAX_EXAMPLES:
            examples.append(location)

    @property
    def rows_dropped(self) -> int:
        return self.rows_in - self.rows_kept

    def to_dict(self) -> dict:
        data = asdict(self)
        data["rows_dropped"] = self.rows_dropped
        data["rule_descriptions"] = {name: describe_rules()[name] for name in self.rules}
        return data

    def summary(self) -> str:
        lines = [f"{self.source} -> {self.output}: {self.rows_in} rows in, {self.rows_kept} kept, "
                 f"{self.rows_dropped} dropped"]
        for rule, count in self.dropped.items():
            lines.append(f"  {rule:28} {count:>8}  e.g. {', '.join(self.examples.get(rule, [])[:2])}")
        return "\n".join(lines)


    @classmethod
    def merge(cls, parts: list[dict], source: str, output: str, rules: list[str]) -> "CleanReport":
        """One report from the per-task reports (in task order): counts summed, first examples kept."""
        report = cls(source=source, output=output, rules=rules)
        for part in parts:
            report.rows_in += part["rows_in"]
            report.rows_kept += part["rows_kept"]
            for rule, count in part["dropped"].items():
                report.dropped[rule] = report.dropped.get(rule, 0) + count
                examples = report.examples.setdefault(rule, [])
                examples += part["examples"].get(rule, [])[: cls.MAX_EXAMPLES - len(examples)]
        return report


def clean_stages(reader, rules: list[str], work, out: str = "out", with_location: bool = False) -> list:
    """The datatrove stage that cleans what ``reader`` yields: kept rows in ``work/<out>`` (JSON
    Lines shards), per-task reports in ``work/clean-reports``."""
    from belle_hf.data.pipeline.run import Stage
    from belle_hf.data.pipeline.steps import ApplyCleaningRules, WriteShards

    return [Stage("clean", [reader, ApplyCleaningRules(rules, work.sub("clean-reports")),
                            WriteShards(work.sub(out), with_location=with_location)], len(reader.plan))]


def clean_report(work_path: str, source: str, output: str, rules: list[str]) -> CleanReport:
    """The :class:`CleanReport` of a finished clean stage."""
    from belle_hf.data.pipeline.steps import read_json

    parts = [read_json(path) for path in sorted((Path(work_path) / "clean-reports").glob("*.json"))]
    return CleanReport.merge(parts, source, output, rules)


def _finish_clean(work_path: str, source: str, output: str, rules: list[str], report_path: str | None) -> None:
    from belle_hf.data.pipeline.run import RESULT
    from belle_hf.data.pipeline.steps import merge_shards, write_json

    report = clean_report(work_path, source, output, rules)
    merge_shards(Path(work_path) / "out", output)
    if report_path is not None:
        atomic_write_text(Path(report_path), dump_json(report.to_dict()))
    write_json(Path(work_path) / RESULT, asdict(report))


def clean_file(
    source: str | os.PathLike | list[str | os.PathLike],
    output: str | os.PathLike,
    rules: Iterable[str] | None = None,
    schema: str = "auto",
    report_path: str | os.PathLike | None = None,
    executor=None,
) -> CleanReport | None:
    """Normalize ``source`` (a file, folder or corpus, or a list of them; any BELLE schema),
    drop what the ``rules`` reject, write the rest in input order.

    Runs as a datatrove pipeline (``executor``: an :class:`~belle_hf.data.pipeline.ExecutorConfig`),
    each task streaming its share of the input. ``output`` (``.jsonl`` or ``.parquet``) and
    ``report_path`` (JSON) are written atomically. Bad records are dropped and counted as
    ``malformed``. Returns ``None`` when the stages were submitted to Slurm.
    """
    from belle_hf.data.pipeline.inputs import expand_sources
    from belle_hf.data.pipeline.run import Stage, run_pipeline
    from belle_hf.data.pipeline.steps import ReadRecords, RunOnce

    selected = list(select_rules(rules))
    sources = expand_sources(source if isinstance(source, (list, tuple)) else [source])
    label = ", ".join(str(s) for s in (source if isinstance(source, (list, tuple)) else [source]))

    def build(work, plan, tasks):
        finish = RunOnce(_finish_clean, work_path=str(work.path), source=label, output=str(output), rules=selected,
                         report_path=None if report_path is None else str(report_path))
        return clean_stages(ReadRecords(plan, schema=schema, keep_bad=True), selected, work) + [
            Stage("finish", [finish])]

    result = run_pipeline("clean", sources, output, {"rules": selected, "schema": schema}, build, executor,
                          report_path=report_path)
    return None if result is None else CleanReport(**result)
