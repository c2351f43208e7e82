import random

from belle_hf.data.generate import MinHashIndex, RougeLIndex, make_index, rouge_l
from belle_hf.data.generate.similarity import normalize_for_similarity


def lcs(a: str, b: str) -> int:
    """Textbook dynamic-programming LCS, the reference for the rapidfuzz-based score."""
    previous = [0] * (len(b) + 1)
    for char in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if char == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def test_rouge_l_is_the_character_lcs_f_measure():
    rng = random.Random(0)
    alphabet = "天地人你我他的是了不在有大小上下"
    for _ in range(200):
        a = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 20)))
        b = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 20)))
        length = lcs(a, b)
        precision, recall = length / len(a), length / len(b)
        expected = 0.0 if length == 0 else 2 * precision * recall / (precision + recall)
        assert abs(rouge_l(a, b) - expected) < 1e-9


def test_rouge_l_sees_chinese_and_ignores_punctuation():
    assert normalize_for_similarity("写一首诗，关于 Spring！") == "写一首诗关于spring"
    assert rouge_l("给出下面词语的同义词。", "给出下面词语的同义词") == 1.0
    assert rouge_l("给出下面词语的同义词", "给出下面词语的反义词") == 0.9
    assert rouge_l("写一首诗", "计算圆的面积") == 0.0


def test_indexes_find_the_most_similar_instruction():
    texts = ["给出下面词语的同义词", "把下面的句子翻译成英文", "计算下面算式的结果"]
    for index in (RougeLIndex(texts), MinHashIndex(texts)):
        match = index.most_similar("给出下面词语的反义词")
        assert match.text == "给出下面词语的同义词" and abs(match.score - 0.9) < 1e-9
        index.add("给出下面词语的反义词")
        assert index.most_similar("给出下面词语的反义词").score == 1.0
        assert len(index) == 4


def test_minhash_agrees_with_exact_scan_on_near_duplicates():
    rng = random.Random(1)
    cjk = [chr(code) for code in range(0x4E00, 0x9FA5)]
    originals = ["".join(rng.choice(cjk) for _ in range(15)) for _ in range(300)]
    exact, approximate = RougeLIndex(originals), MinHashIndex(originals)
    for text in originals[:100]:
        variant = text[:-2] + "甲乙"  # ROUGE-L 13/15 ≈ 0.87
        assert exact.most_similar(variant).text == approximate.most_similar(variant).text == text
    fresh = "".join(rng.choice(cjk) for _ in range(15))
    assert exact.most_similar(fresh).score < 0.7 and approximate.most_similar(fresh).score < 0.7


def test_auto_switches_to_minhash_for_large_runs():
    assert isinstance(make_index("auto", ["写诗"], expected_size=100), RougeLIndex)
    assert isinstance(make_index("auto", ["写诗"], expected_size=1_000_000), MinHashIndex)
    assert isinstance(make_index("minhash", ["写诗"], expected_size=10), MinHashIndex)
