import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from belle_hf.data import CORPORA, convert_file
from belle_hf.data.publish import dataset_card, publish_local
from belle_hf.errors import DataFormatError
from belle_hf.testing.sample_data import sample_data_path

DATASETS_SCRIPTS = Path(__file__).resolve().parents[2] / "datasets_scripts"


def front_matter(text):
    assert text.startswith("---\n")
    header, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_committed_card_is_current_and_valid(name):
    path = DATASETS_SCRIPTS / name / "README.md"
    committed = path.read_text(encoding="utf-8")
    assert committed == str(dataset_card(name)), f"stale card: run `python -m belle_hf.data.publish` ({path})"
    meta, body = front_matter(committed)
    corpus = CORPORA[name]
    assert meta["license"] == corpus.license == "gpl-3.0"
    assert meta["language"] == ["zh"] and meta["task_categories"] == ["text-generation"]
    assert meta["configs"] == [{"config_name": "messages", "default": True,
                                "data_files": [{"split": "train", "path": "messages/train-*.parquet"}]}]
    info = meta["dataset_info"]
    assert info["config_name"] == "messages"
    assert [f["name"] for f in info["features"]] == ["messages", "id", "source"]
    assert info["features"][0]["list"] == [{"name": "role", "dtype": "string"},
                                           {"name": "content", "dtype": "string"}]
    assert "research use only" in body.lower() and corpus.repo_id in body
    assert "@misc{BELLE," in body and "arXiv:2303.14742" in body and "arXiv:2304.07854" in body

    from huggingface_hub import DatasetCard

    card = DatasetCard.load(path)  # the Hub's own parser accepts it
    assert card.data.license == "gpl-3.0" and card.data.configs[0]["config_name"] == "messages"


def test_every_corpus_has_a_folder():
    folders = {p.name for p in DATASETS_SCRIPTS.iterdir() if p.is_dir()}
    assert folders == set(CORPORA)


def test_cli_card_writes_the_same_card(tmp_path, run_belle):
    code, _, _ = run_belle("data", "card", "train_1M_CN", "-o", tmp_path / "card")
    assert code == 0
    written = (tmp_path / "card" / "README.md").read_text(encoding="utf-8")
    assert written == (DATASETS_SCRIPTS / "train_1M_CN" / "README.md").read_text(encoding="utf-8")
    code, _, _ = run_belle("data", "card", "all", "-o", tmp_path / "all")
    assert code == 0 and {p.name for p in (tmp_path / "all").iterdir()} == set(CORPORA)
    code, _, err = run_belle("data", "card", "no_such_corpus", "-o", tmp_path / "x")
    assert code == 1 and "no_such_corpus" in err


def converted_rows(source, tmp_path):
    out = tmp_path / "converted.jsonl"
    convert_file(source, out)
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("key", ["belle-multiturn", "conversations"])
def test_local_layout_loads_with_datasets_and_belle(key, tmp_path):
    import datasets

    from belle_hf.data import load

    source = sample_data_path(key)
    folder = tmp_path / "repo"
    result = publish_local(source, folder)
    assert result.files == ["messages/train-00000-of-00001.parquet"]
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "README.md", "messages/train-00000-of-00001.parquet"]
    expected = converted_rows(source, tmp_path)

    loaded = datasets.load_dataset(str(folder), "messages", split="train", cache_dir=str(tmp_path / "cache"))
    assert loaded.column_names == ["messages", "id", "source"]
    assert [row["messages"] for row in loaded] == [row["messages"] for row in expected]
    assert loaded[0]["source"] == expected[0]["source"]

    ours = load(folder, config_name="messages", cache_dir=str(tmp_path / "cache2"))
    assert [row["messages"] for row in ours] == [row["messages"] for row in expected]

    meta, _ = front_matter((folder / "README.md").read_text(encoding="utf-8"))
    assert meta["dataset_info"]["splits"] == [{"name": "train", "num_bytes": meta["dataset_info"]["dataset_size"],
                                               "num_examples": len(expected)}]
    assert meta["configs"][0]["data_files"][0]["path"] == "messages/train-*.parquet"


def test_shards_and_row_groups_follow_the_size_limits(tmp_path):
    import datasets

    folder = tmp_path / "repo"
    result = publish_local(sample_data_path("alpaca"), folder, max_shard_size="12KB", row_group_size="4KB")
    assert len(result.files) >= 2 and result.rows == 120
    for name in result.files:
        parquet = pq.ParquetFile(folder / name)
        assert parquet.metadata.num_row_groups >= 2
    loaded = datasets.load_dataset(str(folder), "messages", split="train", cache_dir=str(tmp_path / "cache"))
    assert len(loaded) == 120


def test_registry_file_gets_the_corpus_card_and_other_config_names(tmp_path):
    # a file named like a registry corpus's file gets that corpus's card (license, citation)
    source = tmp_path / "school_math_0.25M.json"
    source.write_text(sample_data_path("alpaca").read_text(encoding="utf-8"), encoding="utf-8")
    folder = tmp_path / "repo"
    publish_local(source, folder, config_name="zh", repo_id="me/school_math")
    meta, body = front_matter((folder / "README.md").read_text(encoding="utf-8"))
    assert meta["license"] == "gpl-3.0" and meta["pretty_name"] == "school_math_0.25M"
    assert meta["configs"][0]["config_name"] == "zh" and (folder / "zh").is_dir()
    assert 'load_dataset("me/school_math", "zh"' in body and "120 conversations" in body


def test_republishing_replaces_and_failure_keeps_the_previous_folder(tmp_path):
    folder = tmp_path / "repo"
    publish_local(sample_data_path("messages"), folder)
    publish_local(sample_data_path("generated-chat"), folder)
    table = pq.read_table(folder / "messages" / "train-00000-of-00001.parquet")
    assert table.num_rows == 40 and set(table.column("source").to_pylist()) == {"generated_chat"}

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "你好", "output": 5}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=f"{bad}:1: field 'output'"):
        publish_local(bad, folder)
    assert pq.read_table(folder / "messages" / "train-00000-of-00001.parquet").num_rows == 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "repo"]  # no temp folders left


def test_cli_publish_local(tmp_path, run_belle):
    folder = tmp_path / "repo"
    code, out, _ = run_belle("data", "publish", sample_data_path("conversations"), folder, "--local",
                             "--max-shard-size", "300MB", "--license", "cc-by-nc-4.0")
    assert code == 0 and "60 rows" in out
    meta, _ = front_matter((folder / "README.md").read_text(encoding="utf-8"))
    assert meta["license"] == "cc-by-nc-4.0"


@pytest.fixture
def loopback_hub(tmp_path):
    """The project's loopback Hub with huggingface_hub and datasets pointed at it."""
    from belle_hf.testing.hub_server import HubServer, clients_pointed_at

    with HubServer() as server, clients_pointed_at(server.url, tmp_path / "hf-cache"):
        yield server


def test_cli_publish_pushes_shards_and_card_to_a_hub(loopback_hub, tmp_path, run_belle, monkeypatch):
    import datasets

    from belle_hf.data import load

    token = "hf_belletesttoken0123456789"
    monkeypatch.setenv("HF_TOKEN", token)
    code, out, _ = run_belle("data", "publish", sample_data_path("belle-multiturn"), "belle-test/multiturn",
                             "--config-name", "messages", "--private", "--max-shard-size", "300MB")
    assert code == 0 and "60 rows" in out
    assert loopback_hub.state.repos[("dataset", "belle-test/multiturn")].private  # --private reached the Hub
    files = loopback_hub.repo_files("belle-test/multiturn", "dataset")
    assert sorted(files) == [".gitattributes", "README.md", "messages/train-00000-of-00001.parquet"]
    assert all(token.encode() not in data for data in files.values())
    meta, body = front_matter(files["README.md"].decode("utf-8"))
    assert meta["dataset_info"]["splits"][0]["num_examples"] == 60  # what push_to_hub recorded, kept
    assert meta["configs"][0]["data_files"][0]["path"] == "messages/train-*.parquet"
    assert "research use only" in body.lower() and "@misc{BELLE," in body

    expected = converted_rows(sample_data_path("belle-multiturn"), tmp_path)
    pulled = datasets.load_dataset("belle-test/multiturn", "messages", split="train")
    assert [row["messages"] for row in pulled] == [row["messages"] for row in expected]
    assert len(load("belle-test/multiturn", config_name="messages")) == 60
