import json

import pytest

from belle_hf.data import clean, iter_records
from belle_hf.data.clean import MALFORMED, RULES, clean_file, first_failed_rule
from belle_hf.errors import BelleError
from belle_hf.testing.sample_data import SAMPLE_FILES, sample_data_path


def chat(question, answer, *more):
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    for index, text in enumerate(more):
        messages.append({"role": "user" if index % 2 == 0 else "assistant", "content": text})
    return messages


GOOD = chat("请用一句话介绍长城。", "长城是中国古代修建的军事防御工程，全长两万多公里。")

# (rule, messages it must drop)
DROPPED = [
    ("empty_message", chat("请介绍一下长城。", "   ")),
    ("too_short_instruction", chat("长城", "长城是中国古代修建的军事防御工程。")),
    ("truncated_answer", chat("请列举三种水果。", "常见的水果有苹果、香蕉，")),
    ("truncated_answer", chat("写一个打印问候的函数。", "下面是代码：\n```python\ndef hello():\n    print('你好')")),
    ("mentions_gpt_or_openai", chat("要求GPT模型写一首诗。", "春风吹绿了江南岸。")),
    ("mentions_gpt_or_openai", chat("你是谁开发的？", "我是由OpenAI开发的。")),
    ("ai_self_reference", chat("你喜欢吃什么？", "作为一个AI语言模型，我没有味觉，也不会吃东西。")),
    ("ai_self_reference", chat("Do you dream?", "As an AI language model, I do not sleep or dream.")),
    ("asks_for_missing_input", chat("总结下面这段文字的主要内容。", "抱歉，您没有提供需要总结的文本，请提供具体内容。")),
    ("english_answer_to_chinese", chat("请介绍一下长城的历史。", "The Great Wall was built over many centuries.")),
    ("multimodal_or_link_task", chat("描述这张图片中的人物。", "图中有一位老人坐在长椅上。")),
    ("multimodal_or_link_task", chat("总结这个网页的内容：https://example.com/news", "这是一篇新闻报道。")),
    ("multimodal_or_link_task", chat("根据下面的数据画一个柱形图。", "好的，横轴是月份，纵轴是销量。")),
    ("multimodal_or_link_task", chat("帮我转写这段音频。", "音频内容是一段天气预报。")),
]

KEPT = [
    GOOD,
    chat("把“苹果”翻译成英文。", "apple"),  # asked for English
    chat("用 Python 写一个求和函数。", "```python\ndef add(a, b):\n    return a + b\n```"),
    chat("What is the capital of France?", "The capital of France is Paris."),  # English question
    chat("你好吗？", "我很好，谢谢！"),  # 3 characters is short, but "你好吗？" has 4
    chat("介绍 Human: 和 Assistant: 这两个词。", "它们是对话记录里的角色标记：用户和助手。"),
    chat("计算 2 加 3。", "2 加 3 等于 5。", "再加 4 呢？", "再加 4 等于 9。"),
    # a clarifying question inside a dialogue is not an unanswerable item
    chat("帮我写封信。", "好的，请提供具体的收信人和内容。", "写给王老师，感谢他的帮助。", "王老师您好：感谢您一直以来的帮助！"),
]


@pytest.mark.parametrize("rule,messages", DROPPED, ids=[f"{rule}-{i}" for i, (rule, _) in enumerate(DROPPED)])
def test_each_rule_drops_what_it_names(rule, messages):
    assert RULES[rule](messages)
    assert rule in [name for name in RULES if RULES[name](messages)]


@pytest.mark.parametrize("messages", KEPT, ids=range(len(KEPT)))
def test_good_conversations_pass_every_rule(messages):
    assert first_failed_rule(messages) is None, [name for name, rule in RULES.items() if rule(messages)]


def test_every_rule_is_a_documented_function_in_the_module():
    for name, rule in RULES.items():
        assert rule.__name__ == name and getattr(clean, name) is rule
        assert rule.__doc__ and rule.__doc__.strip()


def test_english_answer_is_judged_against_its_own_question():
    # an English follow-up question may get an English answer in a Chinese dialogue
    messages = chat("法国的首都是哪里？", "法国的首都是巴黎。", "What about Germany?", "The capital of Germany is Berlin.")
    assert not clean.english_answer_to_chinese(messages)
    messages = chat("法国的首都是哪里？", "法国的首都是巴黎。", "德国的呢？", "The capital of Germany is Berlin.")
    assert clean.english_answer_to_chinese(messages)


def write_jsonl(path, records):
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def as_alpaca(messages):
    return {"instruction": messages[0]["content"], "input": "", "output": messages[1]["content"]}


@pytest.fixture
def mixed_file(tmp_path):
    """Good rows in three schemas, one row per rule to drop, a bad JSON line and an empty output."""
    records = [as_alpaca(GOOD), {"messages": KEPT[6]},
               {"conversations": [{"from": "human", "value": KEPT[1][0]["content"]},
                                  {"from": "gpt", "value": KEPT[1][1]["content"]}]}]
    records += [as_alpaca(m) if len(m) == 2 else {"messages": m} for _, m in DROPPED]
    records += ['{"instruction": "坏的 JSON', {"instruction": "请回答。", "input": "", "output": ""}]
    return write_jsonl(tmp_path / "mixed.jsonl", records)


def test_clean_file_counts_every_rule_with_locations(mixed_file, tmp_path):
    out, report_path = tmp_path / "clean.jsonl", tmp_path / "report.json"
    report = clean_file(mixed_file, out, report_path=report_path)
    kept = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [row["messages"] for row in kept] == [GOOD, KEPT[6], KEPT[1]]
    assert all(row["source"] == "mixed" for row in kept)
    expected = {}
    for rule, _ in DROPPED:
        expected[rule] = expected.get(rule, 0) + 1
    expected["empty_message"] += 1  # the empty "output" the alpaca schema rejects
    expected[MALFORMED] = 1
    assert report.dropped == expected
    assert report.rows_in == 3 + len(DROPPED) + 2 and report.rows_kept == 3
    # locations are file:line; the first rule-dropped row is on line 4
    assert report.examples["empty_message"][0].startswith(f"{mixed_file}:4: field 'output'")
    assert any(f"{mixed_file}:{4 + len(DROPPED)}" in where and "invalid JSON" in where
               for where in report.examples[MALFORMED])
    saved = json.loads(report_path.read_text(encoding="utf-8"))
    assert saved["dropped"] == expected and saved["rows_kept"] == 3 and saved["rows_in"] == report.rows_in
    assert set(saved["rule_descriptions"]) == set(RULES)


def test_selected_rules_only(mixed_file, tmp_path):
    report = clean_file(mixed_file, tmp_path / "o.jsonl", rules=["ai_self_reference", "empty_message"])
    assert set(report.dropped) == {"ai_self_reference", "empty_message", MALFORMED}
    assert report.dropped["ai_self_reference"] == 2 and report.dropped["empty_message"] == 2


def test_unknown_rule_is_an_error_and_writes_nothing(mixed_file, tmp_path):
    with pytest.raises(BelleError, match="no_such_rule"):
        clean_file(mixed_file, tmp_path / "o.jsonl", rules=["no_such_rule"])
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("key", sorted(SAMPLE_FILES))
def test_bundled_samples_of_every_schema_are_clean(key, tmp_path):
    rows = sum(1 for _ in iter_records(sample_data_path(key)))
    report = clean_file(sample_data_path(key), tmp_path / "o.parquet")
    assert rows >= 30 and report.rows_in == rows
    assert report.rows_kept == rows, report.dropped


def test_cli_clean(mixed_file, tmp_path, run_belle):
    out, report_path = tmp_path / "out.jsonl", tmp_path / "r.json"
    code, stdout, _ = run_belle("data", "clean", mixed_file, "-o", out, "--report", report_path,
                                "--rules", "truncated_answer,multimodal_or_link_task")
    assert code == 0
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["dropped"] == {"truncated_answer": 2, "multimodal_or_link_task": 4, MALFORMED: 3}
    assert len(out.read_text(encoding="utf-8").splitlines()) == report["rows_kept"] == report["rows_in"] - 9
    assert "truncated_answer" in stdout and f"{report['rows_in']} rows in" in stdout

    code, _, err = run_belle("data", "clean", mixed_file, "-o", tmp_path / "x.jsonl", "--rules", "bogus")
    assert code == 1 and "bogus" in err and not (tmp_path / "x.jsonl").exists()

    code, stdout, _ = run_belle("data", "clean", "--list-rules")
    assert code == 0 and all(name in stdout for name in RULES)


def test_rules_on_belle_eval_set(shared_data):
    """On BELLE's human-checked eval answers the rules drop few rows, and they do find real AI self-references."""
    rows = [json.loads(line) for line in (shared_data / "belle_eval" / "eval_set.json").read_text().splitlines()]
    answered = [r for r in rows if r.get("std_answer", "").strip()]
    failed = [first_failed_rule(chat(r["question"], r["std_answer"])) for r in answered]
    dropped = [rule for rule in failed if rule is not None]
    assert len(dropped) < 0.05 * len(answered)
    assert "ai_self_reference" in dropped
