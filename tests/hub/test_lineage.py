"""Provenance on the way to the Hub: portable adapters, lineage records, cards built from what the
folder records (no invented datasets), one-line Hub HTTP errors, card options declared once."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml


def _card_meta(readme: bytes | str) -> dict:
    text = readme.decode("utf-8") if isinstance(readme, bytes) else readme
    return yaml.safe_load(text.split("---\n")[1])


def _write_run_recipe(tmp_path: Path, data_file: Path) -> Path:
    """The quickstart's shape on a few steps: ``model: tiny`` (built into OUTPUT/base-model), a bundled
    sample and a local file."""
    recipe = {
        "model": "tiny", "method": "lora", "output_dir": str(tmp_path / "runs" / "quick"), "template": "belle",
        "data": [{"path": "sample:alpaca", "max_samples": 24}, {"path": str(data_file)}],
        "training": {"max_steps": 2, "per_device_train_batch_size": 4, "max_length": 128, "logging_steps": 1,
                     "save_steps": 50, "learning_rate": 1e-3, "activation_checkpointing": False,
                     "dataloader_num_workers": 0},
    }
    path = tmp_path / "quick.yaml"
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """A quickstart-shaped LoRA run, trained once for the module, then moved (with its base-model/)
    to another folder: where it was trained no longer exists."""
    from belle_hf.cli import main
    from belle_hf.testing import sample_data_path

    root = tmp_path_factory.mktemp("quick")
    data_file = root / "my_chats.jsonl"
    shutil.copyfile(sample_data_path("messages"), data_file)
    trained_in = root / "trained-here"
    trained_in.mkdir()
    assert main(["train", str(_write_run_recipe(trained_in, data_file))]) == 0
    moved = shutil.move(trained_in / "runs" / "quick", root / "moved-here")
    shutil.rmtree(trained_in)
    return Path(moved), data_file


def test_train_writes_a_portable_adapter_a_lineage_record_and_a_truthful_card(quick_run):
    from belle_hf.hub.lineage import file_sha256
    from belle_hf.testing import sample_data_path

    run, data_file = quick_run
    config = json.loads((run / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "base-model"  # relative to the adapter, not /tmp/...
    record = json.loads((run / "belle_lineage.json").read_text())
    assert record["stage"] == "train" and record["relation"] == "adapter"
    assert record["parent"]["name"] == "base-model" and record["parent"]["path"] == "base-model"
    assert len(record["parent"]["sha256"]) == 64
    assert record["outputs"]["adapter_model.safetensors"] == file_sha256(run / "adapter_model.safetensors")
    assert [(d["source"], d["hub_id"]) for d in record["data"]] == [("sample:alpaca", None),
                                                                  ("my_chats.jsonl", None)]
    assert record["data"][1]["sha256"] == file_sha256(data_file)
    assert record["data"][0]["sha256"] == file_sha256(sample_data_path("alpaca"))
    assert str(run.parent.parent) not in (run / "belle_lineage.json").read_text()
    card = (run / "README.md").read_text()
    meta = _card_meta(card)
    assert "datasets" not in meta  # local files are no Hub ids, and nothing is invented
    assert "base_model" not in meta  # the tiny base is not on the Hub
    assert file_sha256(data_file) in card and "my_chats.jsonl" in card
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"| train_loss | {metrics['train']['train_loss']:.4g} |" in card


def test_moved_adapter_folder_still_chats(quick_run, run_belle):
    run, _ = quick_run  # moved after training, base-model/ with it
    code, out, err = run_belle("chat", run, "--prompt", "你好", "--max-new-tokens", "3", "--temperature", "0")
    assert code == 0, err
    assert out.strip()


def test_merge_of_a_moved_adapter_records_its_parent(quick_run, tmp_path, run_belle):
    run, _ = quick_run
    moved = tmp_path / "moved"
    shutil.copytree(run, moved)
    code, _, err = run_belle("merge", moved, "-o", tmp_path / "merged")
    assert code == 0, err
    record = json.loads((tmp_path / "merged" / "belle_lineage.json").read_text())
    assert record["stage"] == "merge" and record["parent"]["path"] == "../moved"
    assert record["parent"]["lineage"]["stage"] == "train"
    assert str(tmp_path) not in (tmp_path / "merged" / "belle_lineage.json").read_text()


def test_adapter_push_leaves_its_local_base_behind_and_warns(hub, quick_run, tmp_path, run_belle, caplog):
    run, _ = quick_run
    with caplog.at_level("WARNING"):
        code, _, err = run_belle("hub", "push-adapter", run, "belle-test/local-base-lora")
    assert code == 0, err
    assert "not on the Hub" in caplog.text
    files = hub.repo_files("belle-test/local-base-lora")
    assert not any(name.startswith("base-model/") for name in files)
    assert "adapter_model.safetensors" in files and "belle_lineage.json" in files
    for name, data in files.items():
        assert str(tmp_path.parent).encode() not in data and str(run.parent).encode() not in data, name
    meta = _card_meta(files["README.md"])
    assert "datasets" not in meta and "base_model" not in meta
    assert json.loads(files["adapter_config.json"])["base_model_name_or_path"] == "base-model"
    # The folder remembers where it went; a derived folder's card then links to it.
    assert json.loads((run / "belle_lineage.json").read_text())["published_as"] == "belle-test/local-base-lora"


def test_push_without_dataset_flags_invents_no_dataset(hub, tiny_model_dir, tmp_path, run_belle):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    code, _, err = run_belle("hub", "push-model", folder, "belle-test/no-data")
    assert code == 0, err
    meta = _card_meta(hub.repo_files("belle-test/no-data")["README.md"])
    assert "datasets" not in meta  # was BelleGroup/train_0.5M_CN whatever the model was trained on


def test_flags_override_what_the_folder_records(hub, quick_run, tmp_path, run_belle):
    run, _ = quick_run
    summary = tmp_path / "s.json"
    summary.write_text(json.dumps({"overall": 0.25, "per_class": {"math": 0.5}, "judge": {"model": "judge-x"}}))
    code, _, err = run_belle("hub", "push-adapter", run, "belle-test/quick-flags", "--base-model", "org/real-base",
                             "--dataset", "org/real-data", "--eval-summary", summary, "--description", "Flags win.")
    assert code == 0, err
    files = hub.repo_files("belle-test/quick-flags")
    meta = _card_meta(files["README.md"])
    assert meta["base_model"] == "org/real-base" and meta["base_model_relation"] == "adapter"
    assert meta["datasets"] == ["org/real-data"]
    assert {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}["overall"] == 0.25
    assert "Flags win." in files["README.md"].decode()
    # The uploaded adapter config names the Hub base, so AutoPeftModel finds it.
    assert json.loads(files["adapter_config.json"])["base_model_name_or_path"] == "org/real-base"


class _Refusing(BaseHTTPRequestHandler):
    def _refuse(self):
        body = b'{"error": "Invalid credentials in Authorization header"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Error-Message", "Invalid credentials in Authorization header")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = _refuse

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("command", ["push-model", "push-dataset"])
def test_a_wrong_token_is_one_line_naming_401_and_the_fix(command, tiny_model_dir, tmp_path, run_belle, monkeypatch):
    from belle_hf.testing import sample_data_path
    from belle_hf.testing.hub_server import clients_pointed_at

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with clients_pointed_at(f"http://127.0.0.1:{server.server_port}", tmp_path / "cache"):
            monkeypatch.setenv("HF_TOKEN", "hf_wrongwrongwrongwrongwrongwrongwrong")
            source = tiny_model_dir if command == "push-model" else sample_data_path("alpaca")
            code, out, err = run_belle("hub", command, source, "belle-test/refused")
    finally:
        server.shutdown()
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("error:")]  # progress bars aside
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "401" in lines[0] and "hf auth login" in lines[0] and "belle-test/refused" in lines[0]
    assert "hf_wrong" not in err + out


def test_card_options_are_declared_once():
    """The seven card options come from CardOptions: each push-* command has all of them, and
    hub/commands.py spells none of their flags itself."""
    import typer

    from belle_hf.cli import app
    from belle_hf.hub.cards import CardOptions

    flags = {f.metadata["flag"] for f in CardOptions.__dataclass_fields__.values()}
    assert len(flags) == 7
    group = typer.main.get_command(app).commands["hub"]
    for name in ("push-model", "push-adapter", "push-quantized", "push-xor"):
        command = group.commands[name]
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        assert flags <= options, name
    source = (Path(__file__).parents[2] / "src" / "belle_hf" / "hub" / "commands.py").read_text()
    spelled = [flag for flag in flags if f'"{flag}"' in source]
    assert spelled == ["--license"] and source.count('"--license"') == 1  # push-dataset's own (data license)


def test_xor_and_gguf_outputs_carry_their_lineage(quick_run, tiny_model_dir, tmp_path, run_belle):
    """Merge, then XOR encode/decode and GGUF export: each output names its parent and keeps the
    chain, so the decoded folder still knows the training run."""
    pytest.importorskip("gguf")
    run, _ = quick_run
    merged = tmp_path / "merged"
    assert run_belle("merge", run, "-o", merged)[0] == 0
    code, _, err = run_belle("xor", "encode", "--base", run / "base-model", "--target", merged, "-o", tmp_path / "xor")
    assert code == 0, err
    diff_record = json.loads((tmp_path / "xor" / "belle_lineage.json").read_text())
    assert diff_record["stage"] == "xor-encode" and diff_record["parent"]["name"] == "merged"
    assert diff_record["settings"] == {"base": "base-model"}
    code, _, err = run_belle("xor", "decode", "--base", run / "base-model", "--diff", tmp_path / "xor",
                             "-o", tmp_path / "decoded")
    assert code == 0, err
    # Decoding restores the target byte for byte, its lineage record included: merge <- train.
    assert (tmp_path / "decoded" / "belle_lineage.json").read_bytes() == (merged / "belle_lineage.json").read_bytes()
    assert json.loads((merged / "belle_lineage.json").read_text())["parent"]["lineage"]["stage"] == "train"
    code, _, err = run_belle("xor", "decode", "--base", run / "base-model", "--diff", tmp_path / "xor",
                             "-o", tmp_path / "decoded")
    assert code == 0, err  # a rerun finds a complete decode of the same diff
    code, _, err = run_belle("export", "gguf", merged, "-o", tmp_path / "gguf" / "quick-f16.gguf")
    assert code == 0, err
    gguf_record = json.loads((tmp_path / "gguf" / "belle_lineage.json").read_text())
    assert gguf_record["stage"] == "gguf-export" and gguf_record["relation"] == "quantized"
    assert list(gguf_record["outputs"]) == ["quick-f16.gguf"] and gguf_record["parent"]["path"] == "../merged"
