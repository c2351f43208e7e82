import json
import random

import pytest

from belle_hf.data.pipeline import ExecutorConfig
from belle_hf.data.dedup import DedupConfig, conversation_text, dedup_file, shingles
from belle_hf.errors import BelleError, DataFormatError
from belle_hf.testing.sample_data import sample_data_path

ANSWER = ("北京是中国的首都，有三千多年的建城史和八百多年的建都史，是元、明、清等朝代的都城，"
          "拥有故宫、天坛、长城、颐和园等众多世界文化遗产，也是全国的政治和文化中心。")


def alpaca(instruction, output):
    return {"instruction": instruction, "input": "", "output": output}


def distinct_rows(n, seed=0):
    """Rows that share a template but differ in their facts (not duplicates)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(100, 999), rng.randint(100, 999)
        rows.append(alpaca(f"第{i}题：{a} 加 {b} 等于多少？", f"{a} 加 {b} 等于 {a + b}，{['对', '是的', '没错'][i % 3]}。"))
    return rows


def write_jsonl(path, records):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def jaccard(a, b, n=5):
    x, y = shingles(conversation_text(a), n), shingles(conversation_text(b), n)
    return len(x & y) / len(x | y)


@pytest.fixture
def dup_file(tmp_path):
    rows = distinct_rows(40)
    original = alpaca("请介绍一下北京的历史和文化。", ANSWER)
    near = alpaca("请介绍一下北京的历史和文化。", ANSWER.replace("也是全国的", "同时也是全国的"))  # Jaccard 0.89
    rows.insert(5, original)  # line 6
    rows.insert(20, {"messages": [{"role": "user", "content": "请介绍一下北京的历史和文化。 "},  # line 21: exact,
                                  {"role": "assistant", "content": ANSWER}]})              # other schema
    rows.insert(30, near)  # line 31: near duplicate
    rows.append(dict(rows[0]))  # line 44: exact duplicate of line 1
    return write_jsonl(tmp_path / "dups.jsonl", rows)


def test_exact_then_near_duplicates_are_removed_keeping_the_first(dup_file, tmp_path):
    out, report_path = tmp_path / "out.jsonl", tmp_path / "report.json"
    report = dedup_file(dup_file, out, report_path=report_path)
    kept = read_jsonl(out)
    assert report.rows_in == 44 and report.rows_kept == len(kept) == 41
    assert report.exact_duplicates == 2 and report.near_duplicates == 1
    pairs = {(e["kind"], e["duplicate"], e["kept"]) for e in report.examples}
    assert pairs == {("exact", f"{dup_file}:21", f"{dup_file}:6"), ("near", f"{dup_file}:31", f"{dup_file}:6"),
                     ("exact", f"{dup_file}:44", f"{dup_file}:1")}
    near = next(e for e in report.examples if e["kind"] == "near")
    assert 0.8 <= near["similarity"] < 1.0
    # the first occurrence is kept, in input order
    assert kept[5]["messages"][0]["content"] == "请介绍一下北京的历史和文化。"
    assert sum("北京" in row["messages"][1]["content"] for row in kept) == 1
    saved = json.loads(report_path.read_text(encoding="utf-8"))
    assert saved["rows_kept"] == 41 and saved["config"]["threshold"] == 0.8


def test_near_duplicate_test_follows_the_threshold(tmp_path):
    first = alpaca("请介绍一下北京的历史和文化。", ANSWER)
    second = alpaca("请介绍一下北京的历史和文化。", ANSWER[:60] + "北京还是一座充满活力的现代化国际大都市，每年吸引大量游客。")
    similarity = jaccard(normalize(first), normalize(second))
    assert 0.3 < similarity < 0.7
    src = write_jsonl(tmp_path / "two.jsonl", [first, second])
    strict = dedup_file(src, tmp_path / "a.jsonl", threshold=0.8)
    loose = dedup_file(src, tmp_path / "b.jsonl", threshold=similarity - 0.2)
    assert strict.rows_kept == 2 and strict.near_duplicates == 0
    assert loose.rows_kept == 1 and loose.near_duplicates == 1


def normalize(record):
    from belle_hf.data import normalize as normalize_record

    return normalize_record(record)["messages"]


def test_exact_only(dup_file, tmp_path):
    report = dedup_file(dup_file, tmp_path / "o.jsonl", DedupConfig(near=False))
    assert report.exact_duplicates == 2 and report.near_duplicates == 0 and report.rows_kept == 42


def test_templated_but_different_rows_survive(tmp_path):
    src = write_jsonl(tmp_path / "distinct.jsonl", distinct_rows(300, seed=3))
    report = dedup_file(src, tmp_path / "o.parquet", executor=ExecutorConfig(tasks=4, workers=1))  # several shards
    assert report.rows_kept == 300 and report.exact_duplicates == report.near_duplicates == 0


def test_duplicates_across_shards(tmp_path):
    rows = distinct_rows(50)
    src = write_jsonl(tmp_path / "rows.jsonl", rows + rows[:7])
    report = dedup_file(src, tmp_path / "o.jsonl", executor=ExecutorConfig(tasks=5, workers=1))
    assert report.rows_kept == 50 and report.exact_duplicates == 7


def test_bad_input_names_file_and_line_and_writes_nothing(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps(alpaca("你好吗？", "很好。"), ensure_ascii=False) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=f"{src}:2"):
        dedup_file(src, tmp_path / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists()


def test_bad_settings():
    with pytest.raises(BelleError):
        DedupConfig(threshold=1.5)
    with pytest.raises(BelleError):
        DedupConfig(ngram=0)


def test_cli_dedup(dup_file, tmp_path, run_belle):
    out, report_path = tmp_path / "out.jsonl", tmp_path / "r.json"
    code, stdout, _ = run_belle("data", "dedup", dup_file, "-o", out, "--threshold", "0.8", "--ngram", "5",
                                "--num-perm", "64", "--report", report_path)
    assert code == 0
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["config"]["num_perm"] == 64 and report["rows_kept"] == len(read_jsonl(out)) == 41
    assert "2 exact and 1 near duplicates removed" in stdout

    code, stdout, _ = run_belle("data", "dedup", sample_data_path("conversations"), "-o", tmp_path / "c.jsonl",
                                "--exact-only")
    assert code == 0 and "0 near duplicates" in stdout
