import re

import pytest

from belle_hf.data.generate import Item, encode_prompt, load_prompt_template, load_seed_tasks, parse_reply, prompt_hash
from belle_hf.data.generate.seeds import DEFAULT_SEED_TASKS, SeedTask
from belle_hf.errors import BelleError, DataFormatError

REPLY = (" 列举三种常见的水果\n4. 输入:\n<无输入>\n4. 输出:\n苹果、香蕉、橙子\n"
         "###\n5. 指令： 把下面的句子改写成被动句\n5. 输入：\n小明打碎了杯子。\n5. 输出：\n杯子被小明打碎了。\n"
         "###\n6. 指令: 计算下面算式的结果\n6. 输入:\n12 × 3\n6. 输出:\n36\n"
         "###\n7. 指令: 写一段关于秋天的描")


def test_numbered_items_with_half_and_full_width_colons():
    parsed = parse_reply(REPLY, "stop", num_prompt_tasks=3)
    assert parsed.items[:3] == [
        Item("列举三种常见的水果", "", "苹果、香蕉、橙子"),
        Item("把下面的句子改写成被动句", "小明打碎了杯子。", "杯子被小明打碎了。"),
        Item("计算下面算式的结果", "12 × 3", "36"),
    ]
    # The cut-off fourth item has no 输入/输出: unparseable when the reply claims to be whole.
    assert parsed.unparseable == 1 and parsed.truncated == 0


def test_last_item_dropped_when_the_reply_stopped_for_length():
    parsed = parse_reply(REPLY, "length", num_prompt_tasks=3)
    assert [item.instruction for item in parsed.items] == ["列举三种常见的水果", "把下面的句子改写成被动句",
                                                           "计算下面算式的结果"]
    assert parsed.truncated == 1 and parsed.unparseable == 0
    # A complete last item is dropped too: with "length" it cannot be trusted to be whole.
    whole = parse_reply(REPLY.rsplit("###", 1)[0], "length", num_prompt_tasks=3)
    assert len(whole.items) == 2 and whole.truncated == 1


def test_reply_that_repeats_the_marker_and_forgets_separators():
    text = ("4. 指令: 说出中国的首都\n4. 输入:\n<无输入>\n4. 输出:\n北京\n"
            "5. 指令: 给出“快乐”的近义词\n5. 输入:\n<无输入>\n5. 输出:\n高兴、愉快\n6.")
    parsed = parse_reply(text, "stop", num_prompt_tasks=3)
    assert parsed.items == [Item("说出中国的首都", "", "北京"), Item("给出“快乐”的近义词", "", "高兴、愉快")]


def test_instruction_ending_in_a_number_is_kept_whole():
    parsed = parse_reply(" 计算1+2+3\n4. 输入:\n<无输入>\n4. 输出:\n6", "stop", 3)
    assert parsed.items == [Item("计算1+2+3", "", "6")]
    parsed = parse_reply(" 写出圆周率的前两位\n4. 输入:\n<无输入>\n4. 输出:\n3.\n5.\n", "stop", 3)
    assert parsed.items == [Item("写出圆周率的前两位", "", "3.")]


def test_garbage_is_counted_not_raised():
    parsed = parse_reply("抱歉，我不明白你的要求。", "stop", 3)
    assert parsed.items == [] and parsed.unparseable == 1
    assert parse_reply("", "stop", 3).items == []


def test_prompt_layout_and_hash():
    tasks = [SeedTask("写一首诗：", "", "春眠不觉晓"), SeedTask("翻译成英文", "你好", "Hello")]
    prompt = encode_prompt("请写十个任务。", tasks)
    assert prompt == ("请写十个任务。\n###\n1. 指令: 写一首诗\n1. 输入:\n<无输入>\n1. 输出:\n春眠不觉晓\n"
                      "###\n2. 指令: 翻译成英文\n2. 输入:\n你好\n2. 输出:\nHello\n###\n3. 指令:")
    assert prompt_hash(prompt) == prompt_hash(prompt) != prompt_hash(prompt + " ")
    # The reply to such a prompt parses back into the items of the same layout.
    reply = prompt.split("3. 指令:")[0].split("###", 2)[2] + "###"
    assert parse_reply("2. 指令: 翻译成英文\n" + reply.split("\n", 1)[1], "stop", 1).items == [
        Item("翻译成英文", "你好", "Hello")]


def test_project_seed_file_and_prompt():
    tasks = load_seed_tasks(DEFAULT_SEED_TASKS)
    assert len(tasks) >= 10 and all(t.instruction and t.output for t in tasks)
    template = load_prompt_template()
    assert "<无输入>" in template and "###" in template


def test_bad_seed_file_names_the_line(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_text('{"instruction": "写诗", "instances": [{"input": "", "output": "诗"}]}\n'
                    '{"instruction": "写诗", "instances": []}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"seeds.jsonl:2: field 'instances'"):
        load_seed_tasks(path)
    flat = tmp_path / "flat.jsonl"
    flat.write_text('{"instruction": "写诗", "input": "", "output": "诗"}\n', encoding="utf-8")
    assert load_seed_tasks(flat) == [SeedTask("写诗", "", "诗")]
    with pytest.raises(BelleError, match="no such file"):
        load_seed_tasks(tmp_path / "missing.jsonl")


@pytest.mark.shared
def test_belle_seed_tasks_and_prompt(shared_data):
    seed_dir = shared_data / "belle_seed"
    tasks = load_seed_tasks(seed_dir / "zh_seed_tasks.json")
    assert len(tasks) == 175
    template = load_prompt_template(seed_dir / "prompt_cn.txt")
    assert "\\n" not in template and template.count("\n") >= 8  # BELLE's literal \n became line breaks
    prompt = encode_prompt(template, tasks[:3])
    assert prompt.endswith("###\n4. 指令:") and prompt.count("###\n") == 4
    assert tasks[0].instruction in prompt


@pytest.mark.shared
def test_every_belle_seed_task_survives_a_round_trip_through_the_layout(shared_data):
    tasks = load_seed_tasks(shared_data / "belle_seed" / "zh_seed_tasks.json")
    # All 175 tasks as one numbered reply, the way a model would continue the list.
    reply = encode_prompt("T", tasks)[len("T\n"):].rsplit("###", 1)[0]
    parsed = parse_reply(reply, "stop", num_prompt_tasks=0)
    assert parsed.unparseable == 0
    assert [(i.instruction, i.input, i.output) for i in parsed.items] == [
        (re.sub(r"\s+", " ", t.instruction).strip().rstrip(":："), t.input.strip(), t.output.strip()) for t in tasks]
