import json

import numpy as np
import pytest

from belle_hf.data.stats import dataset_stats
from belle_hf.testing.sample_data import sample_data_path


def raw_conversations(path):
    """The conversations of the bundled ``conversations`` sample, read without belle_hf."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row["conversations"] for row in rows]


def test_rows_turns_characters():
    path = sample_data_path("conversations")
    conversations = raw_conversations(path)
    stats = dataset_stats(path)
    assert stats.rows == len(conversations)
    assert stats.turns == sum(len(c) for c in conversations)
    expected_turns = {}
    for c in conversations:
        expected_turns[len(c)] = expected_turns.get(len(c), 0) + 1
    assert stats.turns_per_row == dict(sorted(expected_turns.items()))
    assert list(stats.turns_per_row) == sorted(stats.turns_per_row)
    assert stats.characters == sum(len(t["value"]) for c in conversations for t in c)
    assert stats.characters_by_role["system"] == sum(len(t["value"]) for c in conversations for t in c
                                                     if t["from"] == "system")
    assert stats.tokens is None


def test_token_percentiles_match_per_row_tokenization(tiny_model_dir):
    from transformers import AutoTokenizer

    path = sample_data_path("belle-multiturn")
    stats = dataset_stats(path, tokenizer=str(tiny_model_dir), batch_size=7)  # several uneven batches
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    from belle_hf.data.stream import iter_normalized

    rows = []
    for _, record in iter_normalized(path):
        text = tokenizer.apply_chat_template(record["messages"], tokenize=False)
        rows.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
    lengths = np.sort(np.array(rows))
    assert stats.rows == len(rows) == 60
    assert stats.tokens["max"] == lengths[-1]
    assert stats.tokens["total"] == lengths.sum()
    for p in (50, 90, 99):  # nearest rank: the smallest length with at least p% of rows at or below it
        rank = int(np.ceil(p / 100 * len(lengths)))
        assert stats.tokens[f"p{p}"] == lengths[rank - 1]
    assert stats.tokens["p50"] <= stats.tokens["p90"] <= stats.tokens["p99"] <= stats.tokens["max"]


def test_limit_and_other_schemas():
    stats = dataset_stats(sample_data_path("alpaca-array"), limit=10)
    assert stats.rows == 10 and stats.turns == 20 and stats.turns_per_row == {2: 10}


def test_cli_table_and_json(tiny_model_dir, run_belle):
    code, out, _ = run_belle("data", "stats", sample_data_path("messages"), "--tokenizer", tiny_model_dir, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["rows"] == 40 and set(data["tokens"]) >= {"p50", "p90", "p99", "max"}
    assert data["turns"] == sum(int(k) * v for k, v in data["turns_per_row"].items())

    code, out, _ = run_belle("data", "stats", sample_data_path("generated-chat"))
    assert code == 0
    assert "rows" in out and "turns per row" in out and "characters" in out and "40" in out


def test_cli_bad_file(tmp_path, run_belle):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "你好"}]}\n{oops\n', encoding="utf-8")
    code, _, err = run_belle("data", "stats", bad)
    assert code == 1 and f"{bad}:2" in err


@pytest.mark.parametrize("key", ["alpaca", "conversations"])
def test_stats_of_a_published_folder(key, tmp_path):
    from belle_hf.data.publish import publish_local

    folder = tmp_path / "repo"
    publish_local(sample_data_path(key), folder)
    from_folder = dataset_stats(folder)
    from_file = dataset_stats(sample_data_path(key))
    assert (from_folder.rows, from_folder.turns, from_folder.characters) == (
        from_file.rows, from_file.turns, from_file.characters)


def test_a_tokenizer_that_cannot_be_loaded_is_one_line_naming_it(tmp_path):
    """Stats load their tokenizer through belle_hf.models.load_tokenizer, like training: a folder
    without a tokenizer is a one-line BelleError naming it, not transformers' multi-line OSError."""
    from belle_hf.errors import BelleError

    empty = tmp_path / "no-tokenizer"
    empty.mkdir()
    with pytest.raises(BelleError, match="cannot load the tokenizer of") as caught:
        dataset_stats(sample_data_path("messages"), tokenizer=empty)
    assert str(empty) in str(caught.value) and "\n" not in str(caught.value)
