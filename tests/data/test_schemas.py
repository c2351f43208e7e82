import pytest

from belle_hf.data.schemas import detect_schema, normalize, split_belle_turns
from belle_hf.errors import DataFormatError


def roles(record):
    return [m["role"] for m in record["messages"]]


def test_alpaca_joins_input_on_next_line():
    out = normalize({"instruction": "翻译成英文", "input": "你好", "output": "Hello", "id": 7})
    assert out["messages"] == [{"role": "user", "content": "翻译成英文\n你好"},
                               {"role": "assistant", "content": "Hello"}]
    assert out["id"] == "7"


def test_alpaca_empty_output_names_field():
    with pytest.raises(DataFormatError, match="field 'output'"):
        normalize({"instruction": "问题", "input": "", "output": "  "})


def test_multiturn_splits_only_at_line_start_markers():
    record = {
        "instruction": "Human:记录里写着 Human: 你好，Assistant: 在吗？这是什么？\nAssistant:这是对话记录：A：B。\n"
                       "Human：第二个问题\nAssistant:",
        "input": "",
        "output": "第二个回答",
    }
    out = normalize(record)
    assert detect_schema(record) == "belle-multiturn"
    assert out["messages"] == [
        {"role": "user", "content": "记录里写着 Human: 你好，Assistant: 在吗？这是什么？"},
        {"role": "assistant", "content": "这是对话记录：A：B。"},
        {"role": "user", "content": "第二个问题"},
        {"role": "assistant", "content": "第二个回答"},
    ]


def test_multiturn_without_trailing_assistant_marker():
    out = normalize({"instruction": "Human:问", "output": "答"}, schema="belle-multiturn")
    assert roles(out) == ["user", "assistant"]


def test_multiturn_text_before_first_marker_is_rejected():
    with pytest.raises(DataFormatError, match="before the first"):
        split_belle_turns("前言\nHuman:问")


def test_multiturn_two_humans_in_a_row_is_rejected():
    with pytest.raises(DataFormatError, match="expected 'assistant'"):
        normalize({"instruction": "Human:一\nHuman:二\nAssistant:", "output": "答"}, schema="belle-multiturn")


def test_conversations_maps_speakers_and_keeps_id():
    out = normalize({"id": "x1", "conversations": [
        {"from": "system", "value": "你是助手"}, {"from": "human", "value": "Q: 1+1?"},
        {"from": "gpt", "value": "A: 2"}, {"from": "human", "value": "再问"}, {"from": "assistant", "value": "再答"}]})
    assert roles(out) == ["system", "user", "assistant", "user", "assistant"]
    assert out["messages"][1]["content"] == "Q: 1+1?"
    assert out["id"] == "x1"


def test_conversations_unknown_speaker_names_index():
    with pytest.raises(DataFormatError, match=r"conversations\[1\]\.from"):
        normalize({"conversations": [{"from": "human", "value": "q"}, {"from": "robot", "value": "a"}]})


def test_messages_validated():
    with pytest.raises(DataFormatError, match=r"messages\[0\]\.role"):
        normalize({"messages": [{"role": "bot", "content": "x"}]})
    with pytest.raises(DataFormatError, match=r"messages\[0\]\.content"):
        normalize({"messages": [{"role": "user", "content": 3}]})


def test_generated_chat_keeps_the_dialogue_as_the_answer():
    record = {"instruction": "根据角色生成对话。\n小明：学生。", "input": "", "output": "小明：你好！\n小红：你好。"}
    out = normalize(record, schema="generated-chat")
    assert out["messages"][-1] == {"role": "assistant", "content": "小明：你好！\n小红：你好。"}


def test_unknown_layout_and_unknown_schema():
    with pytest.raises(DataFormatError, match="cannot tell the schema"):
        normalize({"prompt": "x"})
    with pytest.raises(DataFormatError, match="unknown schema"):
        normalize({"instruction": "a", "output": "b"}, schema="sharegpt4")
    with pytest.raises(DataFormatError, match="JSON object"):
        normalize(["not", "a", "record"])
