import pytest

from belle_hf.data.generate import FILTER_NAMES, Item, apply_filters, strip_gpt_phrases


@pytest.mark.parametrize("item, reason", [
    (Item("描述这张图片里的人物表情", "", "他在微笑。"), "blacklist"),
    (Item("总结下面这篇文章的要点", "文章见链接 http://example.com", "无法打开。"), "blacklist"),
    (Item("根据下面的音频写出歌词", "", "……"), "blacklist"),
    (Item("介绍一下你自己", "", "我是由OpenAI训练的语言模型。"), "blacklist"),
    (Item("ChatGPT能做什么？", "", "很多事情。"), "blacklist"),
    (Item("解释GPT的工作原理", "", "它是一种语言模型。"), "gpt_reference"),
    (Item("说说你对人生的看法", "", "作为一个AI语言模型，我没有个人看法。"), "gpt_reference"),
    (Item("写诗", "", "床前明月光"), "length"),
    (Item("总结这段话" + "很" * 100, "一段话", "总结。"), "length"),
    (Item("列举三个成语", "", "  "), "empty_output"),
    (Item("List three fruits please", "", "苹果、香蕉、橙子"), "instruction_not_chinese"),
    (Item("列举三种常见的水果", "", "Apple, banana and orange are common fruits."), "language_mismatch"),
])
def test_each_filter_rejects_its_case(item, reason):
    assert apply_filters(item)[1] == reason
    assert reason in FILTER_NAMES


@pytest.mark.parametrize("item", [
    Item("列举三种常见的水果", "", "苹果、香蕉、橙子"),
    Item("把下面的句子翻译成英文", "今天天气很好。", "The weather is very nice today."),
    Item("用Python写一个函数，返回列表中的最大值", "", "def largest(values):\n    return max(values)"),
    Item("概括下面这段英文的大意", "The quick brown fox jumps over the lazy dog.", "A fox jumps over a dog."),
    Item("举例说明什么是比喻，并给出示例" + "很" * 110, "", "比喻是……"),  # no input: no upper limit
    Item("使用FEN表示法设计一个国际象棋谜题", "", "rnbqkbnr/pp1ppppp/8/2p5/4P3/5N2/PPPP1PPP/RNBQKB1R b KQkq - 1 2"),
])
def test_good_items_pass(item):
    assert apply_filters(item)[1] is None


def test_gpt_phrases_are_stripped_first():
    assert strip_gpt_phrases("要求GPT模型能够写一首关于大海的诗") == "写一首关于大海的诗"
    assert strip_gpt_phrases("请GPT模型，总结下面的新闻") == "总结下面的新闻"
    cleaned, reason = apply_filters(Item("请让GPT模型列举三种常见的水果", "", "苹果、香蕉、橙子"))
    assert reason is None and cleaned.instruction == "列举三种常见的水果"
    # Stripping can make an instruction too short.
    assert apply_filters(Item("请GPT写诗", "", "床前明月光"))[1] == "length"
