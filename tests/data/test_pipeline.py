"""clean / dedup / stats / mix as datatrove pipelines: workers, shards, corpora, resume after a kill, stale work."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from belle_hf.data.clean import clean_file
from belle_hf.data.dedup import dedup_file
from belle_hf.data.mix import mix
from belle_hf.data.pipeline import ExecutorConfig
from belle_hf.data.pipeline.inputs import plan_inputs
from belle_hf.data.stats import dataset_stats
from belle_hf.errors import BelleError
from belle_hf.testing.duplicates import planted_rows, write_planted

REPO = Path(__file__).resolve().parents[2]


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    path = tmp_path_factory.mktemp("planted") / "planted.jsonl"
    labels = write_planted(path, 600, seed=1, exact=0.08, near=0.12)
    return path, labels


def test_plan_cuts_one_file_into_line_ranges_that_cover_it_in_order(tmp_path):
    from belle_hf.data.files import iter_records

    lines = [json.dumps({"i": i, "pad": "长" * (i % 13)}, ensure_ascii=False) for i in range(300)]
    path = tmp_path / "x.jsonl"
    path.write_text("\n".join(lines[:100]) + "\n\n" + "\n".join(lines[100:]), encoding="utf-8")  # a blank line, no final newline
    whole = list(iter_records(path))
    for tasks in (1, 2, 7, 400):
        plan = plan_inputs([str(path)], tasks)
        assert len(plan) == tasks
        parts = [item for segments in plan for s in segments for item in iter_records(path, byte_range=s.byte_range)]
        assert parts == whole  # same records, same file:line locations, same order


def test_two_workers_and_many_shards_give_the_one_worker_result(planted, tmp_path):
    path, labels = planted
    one = dedup_file(path, tmp_path / "one.jsonl", executor=ExecutorConfig(workers=1, tasks=1))
    two = dedup_file(path, tmp_path / "two.jsonl", executor=ExecutorConfig(workers=2, tasks=4))
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    assert (one.exact_duplicates, one.near_duplicates) == (two.exact_duplicates, two.near_duplicates)
    assert one.examples == two.examples
    # planted duplicates found across the shards, no original dropped, the first occurrence kept
    planted_exact = sum(1 for label in labels if label and label.kind == "exact")
    planted_near = sum(1 for label in labels if label and label.kind == "near")
    assert one.exact_duplicates == planted_exact and 0.95 * planted_near <= one.near_duplicates <= planted_near
    kept = [row["messages"][1]["content"] for row in read_jsonl(tmp_path / "one.jsonl")]
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    originals = [row["output"] for row, label in zip(rows, labels) if label is None]
    missed = planted_near - one.near_duplicates
    assert [text for text in kept if text in set(originals)] == originals and len(kept) == len(originals) + missed
    assert not list(tmp_path.glob(".*belle-work"))  # the work folder is removed on success

    stats_one = dataset_stats(path, executor=ExecutorConfig(workers=1, tasks=1))
    stats_two = dataset_stats(path, executor=ExecutorConfig(workers=2, tasks=3))
    assert stats_one == stats_two and stats_one.rows == 600


def test_clean_in_shards_keeps_order_and_the_report(planted, tmp_path):
    path, _ = planted
    rows = path.read_text(encoding="utf-8").splitlines()
    rows[10] = json.dumps({"instruction": "作为一个AI语言模型，你怎么看？", "input": "", "output": "作为一个AI语言模型，我没有看法。"},
                          ensure_ascii=False)
    rows[500] = "{broken"
    src = tmp_path / "src.jsonl"
    src.write_text("\n".join(rows) + "\n", encoding="utf-8")
    one = clean_file(src, tmp_path / "one.jsonl", executor=ExecutorConfig(workers=1, tasks=1))
    many = clean_file(src, tmp_path / "many.jsonl", executor=ExecutorConfig(workers=1, tasks=5))
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "many.jsonl").read_bytes()
    assert (one.rows_kept, one.dropped, one.examples) == (many.rows_kept, many.dropped, many.examples)
    assert many.rows_in == 600 and many.rows_kept == 598
    assert many.examples["malformed"][0].startswith(f"{src}:501")
    assert many.examples["ai_self_reference"] == [f"{src}:11"]


def test_mix_dedups_across_corpora_keeps_sources_and_feeds_publish_and_train(tmp_path):
    from belle_hf.data import load
    from belle_hf.data.publish import publish_local
    from belle_hf.train.dataset import load_source
    from belle_hf.train.recipe import DataSource

    first = [record for record, _ in planted_rows(6, seed=5, exact=0, near=0)]  # six different rows
    first.append({"instruction": "画一张长城的图片。", "input": "", "output": "好的。"})  # dropped by a cleaning rule
    near = {**first[4], "output": first[4]["output"][:50] + "一" + first[4]["output"][51:]}  # one character changed
    second = [
        {"conversations": [{"from": "human", "value": first[2]["instruction"] + " "},   # exact duplicate of first[2]
                           {"from": "gpt", "value": first[2]["output"]}]},
        {"conversations": [{"from": "human", "value": near["instruction"]},             # near duplicate of first[4]
                           {"from": "gpt", "value": near["output"]}]},
        {"conversations": [{"from": "human", "value": "黄河有多长？"}, {"from": "gpt", "value": "黄河全长约五千四百六十四公里。"}]},
    ]
    a, b = write_jsonl(tmp_path / "corpus_a.jsonl", first), write_jsonl(tmp_path / "corpus_b.jsonl", second)
    out = tmp_path / "mixed"
    report = mix([a, b], out, report_path=tmp_path / "mix.json", executor=ExecutorConfig(workers=1, tasks=2))
    assert report.clean.dropped == {"multimodal_or_link_task": 1}
    assert (report.dedup.exact_duplicates, report.dedup.near_duplicates) == (1, 1)
    assert {(e["kind"], e["duplicate"], e["kept"]) for e in report.dedup.examples} == {
        ("exact", f"{b}:1", f"{a}:3"), ("near", f"{b}:2", f"{a}:5")}
    assert report.rows_per_source == {"corpus_a": 6, "corpus_b": 1}
    assert sorted(p.name for p in (out / "data").iterdir()) == ["train-00000-of-00002.parquet",
                                                               "train-00001-of-00002.parquet"]
    dataset = load(out)
    assert dataset["source"] == ["corpus_a"] * 6 + ["corpus_b"]
    assert len(load_source(DataSource(path=str(out)))) == 7
    published = publish_local(out, tmp_path / "repo")
    assert published.rows == 7
    assert len(load(tmp_path / "repo")) == 7
    assert json.loads((tmp_path / "mix.json").read_text(encoding="utf-8"))["dedup"]["rows_kept"] == 7


def test_output_that_is_an_input_is_refused(tmp_path, run_belle):
    src = write_jsonl(tmp_path / "rows.jsonl", [{"instruction": "你好吗？", "input": "", "output": "很好。"}])
    before = src.read_bytes()
    with pytest.raises(BelleError, match="output is the input"):
        dedup_file(src, src)
    with pytest.raises(BelleError, match="output is the input"):
        clean_file(src, tmp_path / "." / "rows.jsonl")
    with pytest.raises(BelleError, match="holds the input"):
        mix([src], tmp_path)  # the output folder holds the input
    code, _, err = run_belle("data", "mix", src, "-o", tmp_path, "--workers", "1")
    assert code == 1 and f"{tmp_path}: this output folder holds the input {src}" in err
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]


def test_a_work_folder_that_is_not_ours_is_left_alone(tmp_path):
    src = write_jsonl(tmp_path / "rows.jsonl", [{"instruction": "你好吗？", "input": "", "output": "很好。"}])
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(BelleError, match="not a belle work folder"):
        dedup_file(src, tmp_path / "o.jsonl", executor=ExecutorConfig(work_dir=str(foreign)))
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_executor_settings_are_checked(tmp_path):
    with pytest.raises(BelleError, match="executor"):
        ExecutorConfig(executor="spark")
    with pytest.raises(BelleError, match="workers"):
        ExecutorConfig(workers=0)
    with pytest.raises(BelleError, match="partition"):
        ExecutorConfig(executor="slurm")
    config = tmp_path / "cluster.yaml"
    config.write_text("executor: slurm\ncluster: {partition: cpu, time: '04:00:00', cpus_per_task: 2}\n")
    loaded = ExecutorConfig.from_file(config, tasks=40)
    assert loaded.executor == "slurm" and loaded.tasks == 40 and loaded.cluster["partition"] == "cpu"
    config.write_text("executor: local\nnodes: 3\n")
    with pytest.raises(BelleError, match=f"{config}: unknown field"):
        ExecutorConfig.from_file(config)


# --- a real `belle` process killed mid-run ---------------------------------------------------------


def _belle(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen([sys.executable, "-m", "belle_hf.cli", *map(str, args)], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_after_first_task(process, work: Path, stage: str = "signatures", sig=signal.SIGKILL) -> None:
    """Signal the whole process group (the command and its workers, as Ctrl-C or a node loss would)
    once one task of ``stage`` is done, and wait for the command to end."""
    deadline = time.monotonic() + 120
    marker = work / "logs" / stage / "completions"
    while time.monotonic() < deadline and process.poll() is None:
        if marker.is_dir() and any(marker.iterdir()):
            break
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()
    os.killpg(process.pid, sig)
    process.communicate(timeout=300)


@pytest.fixture(scope="module")
def big_planted(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "planted.jsonl"
    write_planted(path, 3000, seed=2)
    return path


@pytest.mark.slow
def test_rerun_after_sigkill_resumes_and_equals_an_uninterrupted_run(big_planted, tmp_path):
    options = ["--workers", "2", "--tasks", "6"]
    dedup_file(big_planted, tmp_path / "reference.jsonl", executor=ExecutorConfig(workers=1, tasks=6))

    out = tmp_path / "out.jsonl"
    process = _belle("data", "dedup", big_planted, "-o", out, *options)
    _kill_after_first_task(process, tmp_path / ".out.jsonl.belle-work")
    assert process.returncode == -signal.SIGKILL and not out.exists()

    rerun = _belle("data", "dedup", big_planted, "-o", out, *options)
    stdout, stderr = rerun.communicate()
    assert rerun.returncode == 0, stderr
    assert "resuming" in stderr and "signatures" in stderr  # finished tasks were reused, not redone
    assert out.read_bytes() == (tmp_path / "reference.jsonl").read_bytes()
    assert not (tmp_path / ".out.jsonl.belle-work").exists()


@pytest.mark.slow
def test_rerun_with_another_threshold_does_not_reuse_stale_work(big_planted, tmp_path):
    out = tmp_path / "out.jsonl"
    process = _belle("data", "dedup", big_planted, "-o", out, "--threshold", "0.8", "--tasks", "6", "--workers", "2")
    _kill_after_first_task(process, tmp_path / ".out.jsonl.belle-work", sig=signal.SIGINT)  # Ctrl-C
    assert process.returncode == 130 and not out.exists()

    rerun = _belle("data", "dedup", big_planted, "-o", out, "--threshold", "0.5", "--tasks", "6", "--workers", "2",
                   "--report", tmp_path / "r.json")
    _, stderr = rerun.communicate()
    assert rerun.returncode == 0, stderr
    assert "starting over" in stderr and "resuming" not in stderr
    fresh = dedup_file(big_planted, tmp_path / "fresh.jsonl", threshold=0.5,
                       executor=ExecutorConfig(workers=1, tasks=6))
    assert out.read_bytes() == (tmp_path / "fresh.jsonl").read_bytes()
    assert json.loads((tmp_path / "r.json").read_text())["config"]["threshold"] == 0.5
    assert fresh.rows_kept == json.loads((tmp_path / "r.json").read_text())["rows_kept"]
