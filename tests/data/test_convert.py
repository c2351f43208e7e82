import json

import pytest

from belle_hf.data.convert import convert_file
from belle_hf.errors import DataFormatError
from belle_hf.testing.sample_data import SAMPLE_FILES, sample_data_path

EXPECTED_ROWS = {"alpaca": 120, "alpaca-array": 30, "belle-multiturn": 60, "generated-chat": 40,
                 "conversations": 60, "messages": 40}


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("key", sorted(SAMPLE_FILES))
def test_cli_converts_every_sample_schema(key, tmp_path, run_belle):
    out = tmp_path / "out.jsonl"
    code, stdout, _ = run_belle("data", "convert", sample_data_path(key), "-o", out)
    assert code == 0
    rows = read_jsonl(out)
    assert len(rows) == EXPECTED_ROWS[key]
    for row in rows:
        assert set(row) >= {"messages"}
        assert row["messages"][-1]["role"] == "assistant"
        assert all(m["role"] in ("system", "user", "assistant") and m["content"] for m in row["messages"])
    assert f"{EXPECTED_ROWS[key]} rows written" in stdout


def test_named_schema_must_fit(tmp_path, run_belle):
    code, _, err = run_belle("data", "convert", sample_data_path("alpaca"), "-o", tmp_path / "o.jsonl",
                             "--schema", "conversations")
    assert code == 1
    assert "alpaca.jsonl:1" in err and "conversations" in err
    assert not (tmp_path / "o.jsonl").exists()


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = json.dumps({"instruction": "问题", "input": "", "output": "回答"}, ensure_ascii=False)


def test_malformed_line_fails_naming_file_and_line_and_writes_nothing(tmp_path, run_belle):
    src = write_lines(tmp_path / "src.jsonl", [GOOD, GOOD, '{"instruction": "坏', GOOD])
    out = tmp_path / "out.jsonl"
    code, _, err = run_belle("data", "convert", src, "-o", out)
    assert code == 1
    assert f"{src}:3" in err and "invalid JSON" in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src.jsonl"]  # no temp file left either


def test_failed_convert_keeps_previous_output_intact(tmp_path, run_belle):
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n")
    src = write_lines(tmp_path / "src.jsonl", [GOOD, json.dumps({"instruction": "q", "output": 5})])
    code, _, err = run_belle("data", "convert", src, "-o", out)
    assert code == 1
    assert f"{src}:2" in err and "field 'output'" in err
    assert out.read_text() == "previous\n"


def test_skip_keeps_good_rows_and_reports_where(tmp_path, run_belle):
    src = write_lines(tmp_path / "src.jsonl", [GOOD, "not json", GOOD, json.dumps({"foo": 1}), "", GOOD])
    out = tmp_path / "out.jsonl"
    code, stdout, err = run_belle("data", "convert", src, "-o", out, "--on-error", "skip")
    assert code == 0
    assert len(read_jsonl(out)) == 3
    assert "2 skipped" in stdout
    assert f"{src}:2" in err and f"{src}:4" in err


def test_json_array_error_names_index(tmp_path):
    src = tmp_path / "arr.json"
    src.write_text(json.dumps([{"instruction": "q", "output": "a"}, {"instruction": "q"}]))
    with pytest.raises(DataFormatError, match=r"arr\.json\[1\]"):
        convert_file(src, tmp_path / "o.jsonl")


def test_bad_flag_values_are_rejected(tmp_path, run_belle):
    code, _, err = run_belle("data", "convert", sample_data_path("alpaca"), "-o", tmp_path / "o.jsonl",
                             "--on-error", "ignore")
    assert code == 1 and "--on-error" in err
    code, _, err = run_belle("data", "convert", tmp_path / "missing.jsonl", "-o", tmp_path / "o.jsonl")
    assert code == 1 and "missing.jsonl" in err


def test_parquet_output_round_trips(tmp_path):
    import datasets

    out = tmp_path / "out.parquet"
    report = convert_file(sample_data_path("conversations"), out)
    loaded = datasets.load_dataset("parquet", data_files=str(out), split="train")
    assert report.written == len(loaded) == 60
    assert loaded[0]["messages"][0]["role"] == "system"
    assert loaded[0]["id"] == "conv-0"
