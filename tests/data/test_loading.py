import json

import pytest

from belle_hf.data import CORPORA, load, resolve_corpus
from belle_hf.errors import BelleError
from belle_hf.testing.sample_data import SAMPLE_FILES, sample_data_path


@pytest.mark.parametrize("key", sorted(SAMPLE_FILES))
@pytest.mark.parametrize("streaming", [False, True])
def test_load_normalizes_every_sample_file(key, streaming):
    dataset = load(sample_data_path(key), streaming=streaming)
    rows = list(dataset)
    assert rows, key
    assert set(rows[0]) == {"messages", "id", "source"}
    assert all(row["messages"][-1]["role"] == "assistant" for row in rows)


def test_load_plain_folder_of_json_files(tmp_path):
    for name in ("alpaca", "belle-multiturn"):
        (tmp_path / SAMPLE_FILES[name]).write_bytes(sample_data_path(name).read_bytes())
    # Two schemas in one folder: detect per record.
    dataset = load(tmp_path, schema="auto")
    assert len(dataset) == 180


def test_load_hub_style_folder_with_configs(tmp_path):
    import datasets

    rows = [json.loads(line) for line in sample_data_path("messages").read_text().splitlines()]
    (tmp_path / "messages").mkdir()
    datasets.Dataset.from_list(rows).to_parquet(tmp_path / "messages" / "train-00000-of-00001.parquet")
    (tmp_path / "README.md").write_text(
        "---\nconfigs:\n- config_name: messages\n  data_files:\n  - split: train\n    path: messages/train-*.parquet\n---\n"
    )
    dataset = load(tmp_path, config_name="messages")
    assert len(dataset) == 40 and dataset[0]["messages"] == rows[0]["messages"]


def test_registry_covers_belle_corpora():
    assert {"train_0.5M_CN", "train_1M_CN", "train_2M_CN", "train_3.5M_CN", "school_math_0.25M",
            "multiturn_chat_0.8M", "generated_chat_0.4M"} <= set(CORPORA)
    corpus = resolve_corpus("BelleGroup/train_0.5M_CN")
    assert corpus.hf_path == "hf://datasets/BelleGroup/train_0.5M_CN/Belle_open_source_0.5M.json"
    assert resolve_corpus("multiturn_chat_0.8M").schema == "belle-multiturn"
    assert resolve_corpus("train_3.5M_CN").schema == "conversations"


def test_unknown_name_is_a_clear_error():
    with pytest.raises(BelleError, match="not a local file"):
        load("no-such-thing")
    with pytest.raises(BelleError, match="cannot load files ending in"):
        load("hf://datasets/x/y/data.txt")


def test_a_dataset_folder_rewritten_in_place_loads_its_new_rows(tmp_path):
    """datasets keys a card-configured folder's cache on its patterns; load() must see new files."""
    import datasets

    (tmp_path / "messages").mkdir()
    (tmp_path / "README.md").write_text(
        "---\nconfigs:\n- config_name: messages\n  data_files:\n  - split: train\n    path: messages/train-*.parquet\n---\n"
    )
    shard = tmp_path / "messages" / "train-00000-of-00001.parquet"
    for answer in ("第一版", "第二版，更长一些"):
        rows = [{"messages": [{"role": "user", "content": "问"}, {"role": "assistant", "content": answer}]}]
        datasets.Dataset.from_list(rows).to_parquet(shard)
        assert load(tmp_path, config_name="messages")[0]["messages"][1]["content"] == answer
