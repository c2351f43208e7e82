"""Tokenize once (cached under a content key, shared by ranks, atomic) and the preflight that refuses
to train on nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from belle_hf.errors import BelleError
from belle_hf.train.recipe import load_recipe


@pytest.fixture
def tokenize_calls(monkeypatch):
    """Counts the conversations the batched tokenizer is asked to tokenize (the real function runs)."""
    from belle_hf.train import template

    calls = {"conversations": 0}
    real = template.encode_conversations

    def counting(tokenizer, conversations, chat_template=None):
        calls["conversations"] += len(conversations)
        return real(tokenizer, conversations, chat_template)

    monkeypatch.setattr(template, "encode_conversations", counting)
    return calls


def write_alpaca(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}, ensure_ascii=False) + "\n"
                            for q, a in rows), encoding="utf-8")
    return path


def prepared_folders(cache: Path) -> list[Path]:
    root = cache / "prepared"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []


# ---------------------------------------------------------------------------------- the cache
def test_prepare_then_train_data_is_not_tokenized_again(run_belle, write_recipe, belle_cache, tokenize_calls):
    from belle_hf.train.trainer import prepare_data

    recipe = write_recipe(eval_split=4)
    code, out, err = run_belle("data", "prepare", recipe)
    assert code == 0, err
    folder = prepared_folders(belle_cache)
    assert len(folder) == 1 and f"prepared data: {folder[0]}" in out and "prepared now" in out
    assert "train: 20 conversations" in out and "eval: 4 conversations" in out and "tokens (" in out
    assert "longer than max_length=128" in out and "no trained token left" in out
    assert tokenize_calls["conversations"] == 24
    code, out, err = run_belle("data", "prepare", recipe)
    assert code == 0 and "already prepared" in out and tokenize_calls["conversations"] == 24
    data = prepare_data(load_recipe(recipe))  # what build_trainer / belle train call
    assert data.cache_hit and data.cache_dir == folder[0] and tokenize_calls["conversations"] == 24
    assert len(data.train_dataset) == 20 and len(data.eval_dataset) == 4
    assert data.train_dataset.column_names == ["messages", "input_ids", "assistant_masks"]
    # Memory-mapped from the prepared folder, not copied into memory.
    assert all(str(folder[0]) in f["filename"] for f in data.train_dataset.cache_files)


def rows(count: int, prompt: str = "你好") -> list[tuple[str, str]]:
    return [(f"{prompt} {i}", f"回答 {i}。") for i in range(count)]


def test_every_changed_input_makes_a_new_key(write_recipe, tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from belle_hf.templates import BELLE_CHAT_TEMPLATE
    from belle_hf.train.dataset import recipe_cache_key

    data = write_alpaca(tmp_path / "data.jsonl", rows(12))
    recipe_path = write_recipe(data=[{"path": str(data)}])
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    def key(overrides=(), tok=tokenizer, template=BELLE_CHAT_TEMPLATE, max_length=128):
        return recipe_cache_key(load_recipe(recipe_path, list(overrides)), tok, template, max_length)

    first = key()
    assert key() == first  # a rerun with the same settings hits
    assert key(["output_dir=elsewhere", "training.learning_rate=0.5"]) == first  # training-only settings do not count
    changed = {
        "max_length": key(max_length=64),
        "template": key(template=BELLE_CHAT_TEMPLATE.replace("Human", "User")),
        "truncation": key(["truncation=drop"]),
        "truncation_mode": key(["training.truncation_mode=keep_end"]),
        "packing": key(["training.packing=true"]),
        "seed": key(["seed=7"]),
        "max_samples": key(["max_samples=5"]),
        "eval_split": key(["eval_split=2"]),
        "source max_samples": key(["data.0.max_samples=3"]),
    }
    other = AutoTokenizer.from_pretrained(tiny_model_dir)
    other.add_special_tokens({"additional_special_tokens": ["<|new|>"]})
    changed["tokenizer"] = key(tok=other)
    same_size = data.read_text(encoding="utf-8").replace("回答 1。", "回答 7。")
    data.write_text(same_size, encoding="utf-8")
    changed["file content, same size"] = key()
    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed["file time"] = key()
    write_alpaca(data, rows(13))
    changed["file grown"] = key()
    assert len(set(changed.values()) | {first}) == len(changed) + 1, changed


def test_changed_file_is_prepared_again(write_recipe, tmp_path):
    from belle_hf.train.trainer import prepare_data

    data = write_alpaca(tmp_path / "data.jsonl", rows(10))
    recipe = load_recipe(write_recipe(data=[{"path": str(data)}]))
    first = prepare_data(recipe)
    assert not first.cache_hit and len(first.train_dataset) == 10
    write_alpaca(data, rows(15))
    second = prepare_data(recipe)
    assert not second.cache_hit and len(second.train_dataset) == 15 and second.cache_dir != first.cache_dir


def test_dataset_num_proc_is_a_recipe_field_and_gives_the_same_rows(write_recipe, tmp_path):
    from belle_hf.train.dataset import MAX_DATASET_PROCS, dataset_num_proc
    from belle_hf.train.trainer import prepare_data

    assert dataset_num_proc(500) is None  # small data: no process start-up cost
    assert dataset_num_proc(500, requested=3) == 3
    cores = len(os.sched_getaffinity(0))
    assert dataset_num_proc(10**8) == (min(cores, MAX_DATASET_PROCS) if cores > 1 else None)
    with pytest.raises(BelleError, match="set 'dataset_num_proc' at the top level"):
        load_recipe(write_recipe(training={"dataset_num_proc": 2}))
    with pytest.raises(BelleError, match="dataset_num_proc must be a positive integer"):
        load_recipe(write_recipe(), ["dataset_num_proc=0"])
    one = prepare_data(load_recipe(write_recipe(), ["dataset_num_proc=1"])).train_dataset
    two = prepare_data(load_recipe(write_recipe(), ["dataset_num_proc=2"])).train_dataset  # a real 2-process map
    assert one["input_ids"] == two["input_ids"] and one["assistant_masks"] == two["assistant_masks"]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_killed_prepare_leaves_no_cache_that_is_later_hit(sig, write_recipe, tmp_path, belle_cache, run_belle):
    from belle_hf.testing.sample_data import sample_data_path

    lines = sample_data_path("alpaca").read_text(encoding="utf-8").splitlines()
    big = tmp_path / "big.jsonl"
    big.write_text("\n".join(lines * (30000 // len(lines) + 1)) + "\n", encoding="utf-8")
    recipe = write_recipe(data=[{"path": str(big)}])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    process = subprocess.Popen([sys.executable, "-m", "belle_hf.cli", "data", "prepare", str(recipe),
                                "dataset_num_proc=1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    root = belle_cache / "prepared"
    deadline = time.monotonic() + 240
    while not (root.is_dir() and list(root.glob(".*.tmp/work/*"))):  # tokenization under way
        assert process.poll() is None, process.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(sig)
    process.communicate(timeout=120)
    assert process.returncode != 0
    assert prepared_folders(belle_cache) == []  # nothing a later run could take as prepared
    # The next preparation, even of another recipe, removes what the killed one left.
    other = write_recipe("other.yaml", data=[{"path": "sample:alpaca", "max_samples": 8}])
    code, out, err = run_belle("data", "prepare", other)
    assert code == 0, err
    assert not list(root.glob(".*.tmp")) and len(prepared_folders(belle_cache)) == 1
    code, out, err = run_belle("data", "prepare", recipe)
    assert code == 0, err
    assert "prepared now" in out and f"train: {len(lines) * (30000 // len(lines) + 1)} conversations" in out


# ---------------------------------------------------------------------------------- preflight
def test_every_prompt_longer_than_max_length_fails_before_the_model_loads(run_belle, write_recipe, tmp_path,
                                                                          monkeypatch):
    import transformers

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_model)
    for packing in ("false", "true"):
        code, _, err = run_belle("train", write_recipe(), "training.max_length=4", f"training.packing={packing}")
        assert code == 1, err
        assert "every prompt is longer than max_length=4" in err and "nothing would be trained" in err
    assert not list((tmp_path / "out").glob("checkpoint-*")) if (tmp_path / "out").exists() else True


def mixed_data(tmp_path: Path) -> Path:
    """10 conversations whose prompt alone is far longer than 64 tokens, 10 short ones."""
    long_prompt = "请详细解释下面这段话的意思：" + "天气很好，我们去公园散步。" * 30
    return write_alpaca(tmp_path / "mixed.jsonl", rows(10, long_prompt) + rows(10))


def test_conversations_left_without_trained_tokens_are_dropped_and_counted(write_recipe, tmp_path, run_belle):
    from belle_hf.train.trainer import prepare_data

    recipe = write_recipe(data=[{"path": str(mixed_data(tmp_path))}], training={"max_length": 64})
    data = prepare_data(load_recipe(recipe))
    report = data.truncation
    assert (report.examples, report.no_trained_tokens, report.rows, len(data.train_dataset)) == (20, 10, 10, 10)
    assert report.too_long == 10
    assert all(sum(mask[:64]) > 0 for mask in data.train_dataset["assistant_masks"])
    code, out, err = run_belle("train", recipe, "--preview", "20")
    assert code == 0, err
    assert "dropped: 10 of 20 conversations have no trained token left" in out
    # keep_end truncation keeps the replies: nothing is dropped.
    kept = prepare_data(load_recipe(recipe, ["training.truncation_mode=keep_end"]))
    assert kept.truncation.no_trained_tokens == 0 and len(kept.train_dataset) == 20


def test_each_turn_ends_with_a_trained_end_of_turn_token(write_recipe, tmp_path):
    from belle_hf.train.template import decode_example
    from belle_hf.train.trainer import prepare_data

    data = prepare_data(load_recipe(write_recipe()))
    eos = data.tokenizer.eos_token_id
    for ids, mask in zip(data.train_dataset["input_ids"], data.train_dataset["assistant_masks"]):
        ends = [i for i in range(len(mask)) if mask[i] and (i + 1 == len(mask) or not mask[i + 1])]
        assert ends and all(ids[i] == eos for i in ends)
        assert decode_example(data.tokenizer, ids, mask)[1].count("</s>") == len(ends)
    # A template whose {% generation %} block leaves the end-of-turn token out is refused.
    template = tmp_path / "no-eos.jinja"
    template.write_text(
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' -%}{{ 'Human: ' + message['content'] + '\\n' }}"
        "{%- elif message['role'] == 'assistant' -%}{{ 'Assistant: ' }}{% generation %}{{ message['content'] }}"
        "{% endgeneration %}{{ eos_token }}{%- endif -%}{%- endfor -%}", encoding="utf-8")
    with pytest.raises(BelleError, match="generation %} block ends with .* not an end-of-turn token"):
        prepare_data(load_recipe(write_recipe(template=str(template))))


@pytest.mark.slow
def test_packing_never_trains_an_all_masked_batch(write_recipe, tmp_path):
    from belle_hf.train.trainer import build_trainer, train

    recipe_path = write_recipe(data=[{"path": str(mixed_data(tmp_path))}],
                               training={"max_length": 64, "packing": True, "per_device_train_batch_size": 1,
                                         "max_steps": 3})
    for strategy in ("bfd", "bfd_split"):
        trainer, _ = build_trainer(load_recipe(recipe_path, [f"training.packing_strategy={strategy}"]))
        batches = list(trainer.get_train_dataloader())
        assert batches and all((batch["labels"] != -100).any() for batch in batches), strategy
    result = train(load_recipe(recipe_path))
    assert result.metrics["truncation"]["no_trained_tokens"] == 10
    losses = [entry["loss"] for entry in result.metrics["log_history"] if "loss" in entry]
    assert losses and all(loss > 0 for loss in losses)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text(encoding="utf-8"))
    assert saved["truncation"]["no_trained_tokens"] == 10


# ------------------------------------------------------------------------------------ ranks
@pytest.mark.slow
def test_two_processes_prepare_once(write_recipe, tmp_path, capfd, belle_cache):
    """A real 2-process (gloo) run: rank 0 tokenizes, rank 1 waits and loads what rank 0 prepared."""
    from belle_hf.cli import main

    recipe = write_recipe(training={"max_steps": 1, "per_device_train_batch_size": 2, "save_steps": 10})
    code = main(["train", str(recipe), "--nproc", "2"])
    err = capfd.readouterr().err
    assert code == 0, err[-3000:]
    assert err.count("tokenizing 24 train conversations") == 1, err[-3000:]
    assert ("rank 1: waiting for the main process" in err) or err.count("using the prepared data") == 1
    assert len(prepared_folders(belle_cache)) == 1


# ------------------------------------------------------------------ the rerun's fixed cost
CHECK = """
import json, sys
from belle_hf.train.recipe import Recipe
recipe = Recipe.from_dict({"model": "m", "data": ["sample:alpaca"], "output_dir": "o", "training": json.loads(sys.argv[1])})
recipe.check_training_fields()
print(json.dumps({"training": recipe.training, "imported_trl": "trl" in sys.modules}))
"""


def test_a_passed_training_check_is_remembered_and_any_change_is_checked_again(belle_cache):
    """Checking ``training`` imports TRL (torch, peft...: seconds); a rerun of the same values skips
    it, while a changed value, valid or not, is checked for real."""

    def check(training: dict) -> tuple[int, dict | str]:
        done = subprocess.run([sys.executable, "-c", CHECK, json.dumps(training)], capture_output=True, text=True,
                              env={**os.environ, "BELLE_CACHE": str(belle_cache)})
        return done.returncode, json.loads(done.stdout) if done.returncode == 0 else done.stderr

    assert check({"max_steps": "6", "learning_rate": 1e-4}) == (
        0, {"training": {"max_steps": 6, "learning_rate": 1e-4}, "imported_trl": True})
    assert check({"max_steps": "6", "learning_rate": 1e-4}) == (
        0, {"training": {"max_steps": 6, "learning_rate": 1e-4}, "imported_trl": False})
    code, err = check({"max_steps": "six", "learning_rate": 1e-4})
    assert code != 0 and "training.max_steps must be int" in err
    code, err = check({"max_steps": 6, "learning_rat": 1e-4})
    assert code != 0 and "unknown training field(s) learning_rat" in err
    assert check({"max_steps": 7, "learning_rate": 1e-4})[1]["imported_trl"] is True


PREPARE = """
import sys
from belle_hf.cli import main
code = main(["data", "prepare", sys.argv[1]])
print("loaded:", ",".join(m for m in ("torch", "transformers", "trl") if m in sys.modules))
sys.exit(code)
"""


def test_a_rerun_of_prepare_finds_the_data_without_loading_the_tokenizer(write_recipe, tiny_model_dir, tmp_path,
                                                                          belle_cache):
    """`belle data prepare` on prepared data spends nothing on the tokenizer: the model folder's
    files are fingerprinted instead. Any changed file falls back to loading the tokenizer and
    checking the full key, and a bad record is never followed."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    recipe = write_recipe(model=str(model), eval_split=4)

    def prepare() -> str:
        done = subprocess.run([sys.executable, "-c", PREPARE, str(recipe)], capture_output=True, text=True,
                              env={**os.environ, "BELLE_CACHE": str(belle_cache)})
        assert done.returncode == 0, done.stderr
        return done.stdout

    first = prepare()
    assert "prepared now" in first and "loaded: torch,transformers" in first
    again = prepare()
    assert "already prepared" in again and "loaded: \n" in again  # no torch, transformers or TRL
    assert again.splitlines()[1:-1] == first.splitlines()[1:-1]  # the same report
    # A model file changes (same tokenizer): the tokenizer is loaded, and the full key still hits.
    config = model / "config.json"
    config.write_text(config.read_text(encoding="utf-8") + " ", encoding="utf-8")
    out = prepare()
    assert "already prepared" in out and "transformers" in out.splitlines()[-1]
    assert "loaded: \n" in prepare()  # recorded again for the new files
    # A changed tokenizer is a new preparation.
    template = model / "chat_template.jinja"
    template.write_text(template.read_text(encoding="utf-8").replace("Human: ", "User: "), encoding="utf-8")
    assert "prepared now" in prepare() and len(prepared_folders(belle_cache)) == 2
    # Records that point at a missing folder or outside the cache are not followed.
    records = sorted((belle_cache / "prepared-recipes").iterdir())
    assert records
    for record in records:
        record.write_text("../../../etc", encoding="ascii")
    out = prepare()
    assert "already prepared" in out and "transformers" in out.splitlines()[-1]
    shutil.rmtree(prepared_folders(belle_cache)[0])
    shutil.rmtree(prepared_folders(belle_cache)[0])
    assert "prepared now" in prepare()
