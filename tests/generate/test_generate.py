"""End to end through ``belle data generate`` against a loopback OpenAI-compatible server."""

import json
import os
import signal
import subprocess
import sys
import time
from itertools import combinations

import pytest
from fake_self_instruct import good_instruction, near_copy, responder

from belle_hf.data.generate import DEFAULT_SEED_TASKS, apply_filters, load_seed_tasks, rouge_l
from belle_hf.data.generate.filters import BLACKLIST
from belle_hf.testing.openai_server import FakeOpenAIServer

SECRET = "sk-generate-SECRET-42"


def cli(server, out, n, *extra, seed_tasks=DEFAULT_SEED_TASKS):
    return ("data", "generate", "--seed-tasks", seed_tasks, "--base-url", server.base_url, "--model", "gpt-4o-mini",
            "--api-key-env", "BELLE_TEST_KEY", "-n", n, "-o", out, "--no-progress", "--max-retries", "1", *extra)


def rows_of(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def report_of(out):
    return json.loads(out.with_name(out.stem + ".report.json").read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("BELLE_TEST_KEY", SECRET)


def test_one_reply_goes_through_every_filter(run_belle, tmp_path):
    out = tmp_path / "gen.jsonl"
    with FakeOpenAIServer(responder=responder) as server:
        code, stdout, err = run_belle(*cli(server, out, 5, "--concurrency", "1"))
    assert code == 0, err
    assert len(server.completion_requests()) == 1  # 5 rows fit in one reply
    body = server.completion_requests()[0].body
    assert body["seed"] == 42 and body["temperature"] == 1.0 and body["max_tokens"] == 3072
    rows = rows_of(out)
    # Kept: the four unique tasks (one with "请GPT模型" stripped) and a near copy of a task the
    # model wrote for another request. Dropped: the translation (a near copy of a seed task), the
    # picture task, two GPT self-references, the English answer, "写诗", an exact copy of a seed,
    # a near copy of a task earlier in the same reply, a piece without 输出, the truncated last one.
    assert [r["instruction"] for r in rows] == [good_instruction(42, j) for j in range(4)] + [
        near_copy(good_instruction(41, 0))]
    counts = report_of(out)["last_run"]["counts"]
    assert {k: v for k, v in counts.items() if v} == {
        "replies": 1, "items_parsed": 13, "truncated": 1, "unparseable": 1, "blacklist": 1, "gpt_reference": 2,
        "language_mismatch": 1, "length": 1, "exact_duplicate": 1, "near_duplicate": 2, "kept": 5,
        "gpt_phrases_stripped": 1}
    assert rows[1]["input"] and rows[0]["input"] == ""  # <无输入> is an empty input
    assert all(r["model"] == "gpt-4o-mini" and len(r["prompt_hash"]) == 16 and r["request"] == 0 for r in rows)
    assert rows[0]["most_similar_instruction"] in [t.instruction for t in load_seed_tasks(DEFAULT_SEED_TASKS)]
    assert rows[1]["most_similar_instruction"] == rows[0]["instruction"]  # compared with kept rows too
    assert "5 rows (5 new)" in stdout and "estimated cost: $" in stdout


def test_rows_are_clean_unique_and_loadable(run_belle, tmp_path):
    out = tmp_path / "gen.jsonl"
    with FakeOpenAIServer(responder=responder) as server:
        code, _, err = run_belle(*cli(server, out, 40, "--concurrency", "4"))
    assert code == 0, err
    rows = rows_of(out)
    assert len(rows) == 40
    seeds = [t.instruction for t in load_seed_tasks(DEFAULT_SEED_TASKS)]
    instructions = [r["instruction"] for r in rows]
    assert all(apply_filters_ok(r) for r in rows)
    texts = [f"{r['instruction']}\n{r['input']}\n{r['output']}".lower() for r in rows]
    assert not any(word in text for text in texts for word in BLACKLIST) and "gpt" not in "".join(texts)
    assert max(rouge_l(a, b) for a, b in combinations(instructions, 2)) < 0.7
    assert max(rouge_l(a, s) for a in instructions for s in seeds) < 0.7
    for row in rows:  # the recorded neighbour and score are the true best among seeds + earlier rows
        earlier = seeds + instructions[: instructions.index(row["instruction"])]
        assert row["similarity"] == round(max(rouge_l(row["instruction"], e) for e in earlier), 4)
    report = report_of(out)
    assert report["complete"] and report["kept_total"] == 40
    assert report["last_run"]["usage"]["requests_sent"] == len(server.completion_requests())
    assert report["last_run"]["usage"]["estimated_cost_usd"] > 0
    # Requests are numbered: each has its own seed, so identical prompts still differ.
    seeds_sent = [r.body["seed"] for r in server.completion_requests()]
    assert len(set(seeds_sent)) == len(seeds_sent)
    # Secrets stay out of every file written.
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(encoding="utf-8", errors="replace")
    assert all(r.authorization == f"Bearer {SECRET}" for r in server.requests)

    from belle_hf.data import load

    dataset = load(str(out), schema="alpaca")
    assert len(dataset) == 40
    assert dataset[1]["messages"] == [{"role": "user", "content": f"{rows[1]['instruction']}\n{rows[1]['input']}"},
                                      {"role": "assistant", "content": rows[1]["output"]}]


def apply_filters_ok(row):
    from belle_hf.data.generate import Item

    return apply_filters(Item(row["instruction"], row["input"], row["output"]))[1] is None


def test_429s_are_retried_and_garbage_is_counted(run_belle, tmp_path):
    out = tmp_path / "gen.jsonl"

    def faults(attempt, body):
        if body["seed"] == 43:
            return "garbage"  # a 200 that is not JSON, every time
        return "429" if attempt == 1 and body["seed"] % 2 == 0 else None

    with FakeOpenAIServer(responder=responder, faults=faults) as server:
        code, _, err = run_belle(*cli(server, out, 20, "--concurrency", "4"))
    assert code == 0, err
    rows = rows_of(out)
    assert len(rows) == 20 and 1 not in {r["request"] for r in rows}  # request 1 (seed 43) never answered
    counts = report_of(out)["last_run"]["counts"]
    assert counts["failed_requests"] == 1
    by_seed = {}
    for request in server.completion_requests():
        by_seed.setdefault(request.body["seed"], []).append(request.fault)
    assert by_seed[42] == ["429", None]  # retried after the 429, answered once


def test_rerun_with_larger_n_continues_after_a_torn_line(run_belle, tmp_path):
    out = tmp_path / "gen.jsonl"
    with FakeOpenAIServer(responder=responder) as server:
        assert run_belle(*cli(server, out, 12, "--concurrency", "2"))[0] == 0
        first = out.read_bytes()
        with open(out, "ab") as handle:
            handle.write('{"instruction": "写到一半被'.encode("utf-8"))  # a kill during a write
        sent_before = len(server.completion_requests())
        code, _, err = run_belle(*cli(server, out, 30, "--concurrency", "2"))
        assert code == 0, err
        sent_seeds = [r.body["seed"] for r in server.completion_requests()]
        # The request cut at the target is read back from the cache, never sent twice.
        assert len(sent_seeds) == len(set(sent_seeds)) and len(sent_seeds) > sent_before
        code, stdout, _ = run_belle(*cli(server, out, 30))  # already done: nothing sent
        assert code == 0 and "30 rows (0 new)" in stdout
        assert len(server.completion_requests()) == len(sent_seeds)
    assert out.read_bytes().startswith(first)  # nothing kept is lost or rewritten
    rows = rows_of(out)
    instructions = [r["instruction"] for r in rows]
    assert len(rows) == 30 and len(set(instructions)) == 30
    assert max(rouge_l(a, b) for a, b in combinations(instructions, 2)) < 0.7
    report = report_of(out)
    assert [run["kept_new"] for run in report["runs"]] == [12, 18, 0]
    assert report["runs"][1]["usage"]["cache_hits"] >= 1
    assert report["usage_all_runs"]["requests_sent"] == len(sent_seeds)
    assert report["usage_all_runs"]["estimated_cost_usd"] == pytest.approx(
        sum(run["usage"]["estimated_cost_usd"] for run in report["runs"]))
    # The same command from scratch gives the same rows: the output depends on the replies only.
    fresh = tmp_path / "fresh.jsonl"
    with FakeOpenAIServer(responder=responder) as server:
        assert run_belle(*cli(server, fresh, 30, "--concurrency", "3"))[0] == 0
    assert [r["instruction"] for r in rows_of(fresh)] == instructions


def test_killed_run_resumes_without_losing_or_repeating_rows(run_belle, tmp_path):
    out = tmp_path / "gen.jsonl"
    with FakeOpenAIServer(responder=responder, latency=0.3) as server:
        env = {**os.environ, "BELLE_TEST_KEY": SECRET}
        command = [sys.executable, "-m", "belle_hf.cli", *map(str, cli(server, out, 60, "--concurrency", "2"))]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while time.time() < deadline and (not out.exists() or out.read_text(encoding="utf-8").count("\n") < 8):
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_with = len(rows_of(out)) if out.read_text(encoding="utf-8").endswith("\n") else None
        assert killed_with is None or 8 <= killed_with < 60
        server.latency = 0
        code, _, err = run_belle(*cli(server, out, 60, "--concurrency", "4"))
        assert code == 0, err
    instructions = [r["instruction"] for r in rows_of(out)]
    assert len(instructions) == 60 and len(set(instructions)) == 60
    assert max(rouge_l(a, b) for a, b in combinations(instructions, 2)) < 0.7


def test_minhash_dedup_keeps_the_same_rows(run_belle, tmp_path):
    with FakeOpenAIServer(responder=responder) as server:
        for method in ("rouge", "minhash"):
            code, _, err = run_belle(*cli(server, tmp_path / f"{method}.jsonl", 25, "--dedup", method, "--no-cache"))
            assert code == 0, err
    rouge_rows, minhash_rows = rows_of(tmp_path / "rouge.jsonl"), rows_of(tmp_path / "minhash.jsonl")
    assert [r["instruction"] for r in rouge_rows] == [r["instruction"] for r in minhash_rows]
    assert report_of(tmp_path / "minhash.jsonl")["dedup"]["method"] == "minhash-lsh"
    # No candidate from the LSH is recorded as "" (never null, which would break JSON loading).
    assert all(isinstance(r["most_similar_instruction"], str) for r in minhash_rows)
    assert "" in {r["most_similar_instruction"] for r in minhash_rows}


def test_failing_endpoint_stops_with_a_clear_error_and_keeps_rows(run_belle, tmp_path):
    out = tmp_path / "gen.jsonl"
    healthy = {"on": True}
    with FakeOpenAIServer(responder=responder, faults=lambda attempt, body: None if healthy["on"] else "500") as server:
        assert run_belle(*cli(server, out, 6, "--concurrency", "1"))[0] == 0
        first = out.read_bytes()
        healthy["on"] = False
        code, _, err = run_belle(*cli(server, out, 20, "--max-retries", "0"))
        assert code == 1 and "every request of the last round failed (HTTP 500" in err and "rerun" in err
        # Rows from replies already cached are still added; nothing kept is lost.
        assert out.read_bytes().startswith(first) and 6 <= len(rows_of(out)) < 20
        assert report_of(out)["last_run"]["status"] == "endpoint failed"
        healthy["on"] = True
        assert run_belle(*cli(server, out, 20))[0] == 0
    assert len({r["instruction"] for r in rows_of(out)}) == 20


def test_useless_replies_give_up_after_patience(run_belle, tmp_path):
    out = tmp_path / "gen.jsonl"
    with FakeOpenAIServer(responder=lambda body: "对不起，我无法完成这个请求。") as server:
        code, _, err = run_belle(*cli(server, out, 10, "--patience", "3", "--concurrency", "2"))
    assert code == 1 and "added no new instruction" in err
    assert report_of(out)["last_run"]["counts"]["unparseable"] >= 3


def test_bad_arguments_are_user_errors(run_belle, tmp_path):
    with FakeOpenAIServer(responder=responder) as server:
        code, _, err = run_belle(*cli(server, tmp_path / "gen.jsonl", 5, seed_tasks=tmp_path / "missing.json"))
        assert code == 1 and "missing.json: no such file" in err
        code, _, err = run_belle(*cli(server, tmp_path / "gen.txt", 5))
        assert code == 1 and "must be a .jsonl" in err
        code, _, err = run_belle(*cli(server, tmp_path / "gen.jsonl", 5, "--num-prompt-tasks", "50"))
        assert code == 1 and "more than the 12 seed tasks" in err
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"instruction": "写诗"}\nnot json\n', encoding="utf-8")
        code, _, err = run_belle(*cli(server, bad, 5))
        assert code == 1 and "bad.jsonl:2" in err
        assert server.completion_requests() == []


@pytest.mark.shared
def test_belle_seed_tasks_and_prompt_end_to_end(run_belle, tmp_path, shared_data):
    out = tmp_path / "gen.jsonl"
    seed_dir = shared_data / "belle_seed"
    with FakeOpenAIServer(responder=responder) as server:
        code, _, err = run_belle(*cli(server, out, 10, "--prompt", seed_dir / "prompt_cn.txt",
                                      seed_tasks=seed_dir / "zh_seed_tasks.json"))
    assert code == 0, err
    prompt = server.completion_requests()[0].body["messages"][0]["content"]
    assert prompt.startswith("你被要求提供10个多样化的任务指令") and prompt.endswith("###\n4. 指令:")
    seeds = [t.instruction for t in load_seed_tasks(seed_dir / "zh_seed_tasks.json")]
    rows = rows_of(out)
    assert len(rows) == 10 and not {r["instruction"] for r in rows} & set(seeds)
    assert report_of(out)["last_run"]["counts"]["exact_duplicate"] >= 1


def test_two_runs_cannot_append_to_one_output(run_belle, tmp_path):
    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "gen.jsonl"
    with FakeOpenAIServer(responder=responder) as server, open(out, "ab") as other_run:
        fcntl.flock(other_run.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, _, err = run_belle(*cli(server, out, 5))
        assert code == 1 and "being written by another" in err
        assert server.completion_requests() == []


def test_sigterm_stops_sending_and_the_rerun_continues(run_belle, tmp_path):
    signum = signal.SIGTERM  # (SIGINT takes the same path: tests/hostile/test_interrupts.py)
    out = tmp_path / "gen.jsonl"
    with FakeOpenAIServer(responder=responder, latency=0.3) as server:
        env = {**os.environ, "BELLE_TEST_KEY": SECRET}
        command = [sys.executable, "-m", "belle_hf.cli", *map(str, cli(server, out, 200, "--concurrency", "2"))]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while not out.exists() or out.read_text(encoding="utf-8").count("\n") < 5:
            assert process.poll() is None and time.time() < deadline, process.communicate()
            time.sleep(0.05)
        sent_at_stop = len(server.completion_requests())
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
        sent_after_exit = len(server.completion_requests())
        time.sleep(0.6)
        assert process.returncode == 128 + signum, stderr
        last = stderr.strip().splitlines()[-1]
        assert last.startswith(f"interrupted by {signal.Signals(signum).name}; ") and "of 200 rows kept" in last
        assert len(server.completion_requests()) == sent_after_exit <= sent_at_stop + 2
        kept = rows_of(out)  # whole lines only
        report = report_of(out)
        assert report["last_run"]["status"] == "interrupted" and report["kept_total"] == len(kept)
        assert SECRET not in stderr and SECRET.encode() not in out.with_name("gen.report.json").read_bytes()
        server.latency = 0
        code, _, err = run_belle(*cli(server, out, len(kept) + 10, "--concurrency", "4"))
        assert code == 0, err
    assert rows_of(out)[: len(kept)] == kept and len(rows_of(out)) == len(kept) + 10
