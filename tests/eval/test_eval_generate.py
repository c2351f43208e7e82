"""``belle eval generate``: batched local generation (tiny model, peft adapter) and an endpoint."""

from __future__ import annotations

import json
from pathlib import Path

from belle_hf.eval.generate import GenerationSettings, LocalGenerator
from belle_hf.testing.openai_server import FakeOpenAIServer

from evalkit import EVAL_SET


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_generate_with_tiny_model_batched_and_resumable(run_belle, tiny_model_dir, eval_set_file, tmp_path):
    out = tmp_path / "answers.jsonl"
    args = ["eval", "generate", "--model", str(tiny_model_dir), "--eval-set", str(eval_set_file), "-o", str(out),
            "--batch-size", "4", "--max-new-tokens", "6", "--device", "cpu"]
    code, stdout, stderr = run_belle(*args)
    assert code == 0, stderr
    rows = read_jsonl(out)
    assert [{k: r[k] for k in ("question", "class", "std_answer")} for r in rows] == EVAL_SET
    assert all(isinstance(r["answer"], str) for r in rows) and any(r["answer"] for r in rows)
    assert "answered 6 questions (0 reused" in stdout
    # Rows already in the output are skipped.
    code, stdout, _ = run_belle(*args)
    assert code == 0 and "(6 reused" in stdout and read_jsonl(out) == rows
    # A killed run: its partial file holds 2 answers; the rerun answers the other 4.
    partial = out.with_name(out.name + ".partial")
    out.unlink()
    partial.write_text("".join(json.dumps({"key": k, "row": r}, ensure_ascii=False) + "\n" for k, r in
                               _keyed(rows, str(tiny_model_dir))[:2]), encoding="utf-8")
    code, stdout, _ = run_belle(*args)
    assert code == 0 and "(2 reused" in stdout and read_jsonl(out) == rows and not partial.exists()


def _keyed(rows, model):
    from belle_hf.eval.resumable import row_key

    source = {"model": model, "adapter": None, "endpoint": None}
    return [(row_key(i, r["question"], source), r) for i, r in enumerate(rows)]


def test_left_padded_batches_match_one_by_one(tiny_model_dir):
    generator = LocalGenerator(str(tiny_model_dir), settings=GenerationSettings(max_new_tokens=5, device="cpu"))
    assert generator.tokenizer.padding_side == "left"
    questions = [r["question"] for r in EVAL_SET[:4]]
    assert len({len(generator.tokenizer(q)["input_ids"]) for q in questions}) > 1  # padding really happens
    batched = generator.answer_batch(questions)
    assert batched == [generator.answer_batch([q])[0] for q in questions]
    assert generator.prompt("你好").endswith("Assistant: \n")  # the chat template's generation prompt


def test_generate_with_peft_adapter(run_belle, tiny_model_dir, eval_set_file, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    lora = get_peft_model(model, LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj", "down_proj"],
                                            init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    common = ["--model", str(tiny_model_dir), "--eval-set", str(eval_set_file), "--max-new-tokens", "8",
              "--device", "cpu", "--limit", "3"]
    assert run_belle("eval", "generate", *common, "-o", str(tmp_path / "base.jsonl"))[0] == 0
    code, _, stderr = run_belle("eval", "generate", *common, "--adapter", str(tmp_path / "adapter"),
                                "-o", str(tmp_path / "lora.jsonl"))
    assert code == 0, stderr
    base, tuned = read_jsonl(tmp_path / "base.jsonl"), read_jsonl(tmp_path / "lora.jsonl")
    assert len(base) == len(tuned) == 3
    assert [r["answer"] for r in base] != [r["answer"] for r in tuned]  # the adapter changes the model
    code, _, stderr = run_belle("eval", "generate", *common, "--adapter", str(tmp_path / "nope"),
                                "-o", str(tmp_path / "x.jsonl"))
    assert code == 1 and "nope" in stderr


def test_generate_against_an_openai_compatible_server(run_belle, eval_set_file, tmp_path):
    out = tmp_path / "answers.jsonl"
    failing = {EVAL_SET[1]["question"]}
    faults = lambda attempt, body: "500" if body["messages"][-1]["content"] in failing else None  # noqa: E731
    with FakeOpenAIServer(faults=faults) as server:
        args = ["eval", "generate", "--model", "served-model", "--base-url", server.base_url, "--eval-set",
                str(eval_set_file), "-o", str(out), "--api-key", "sk-gen-test", "--max-retries", "0"]
        code, _, stderr = run_belle(*args)
        assert code == 1 and "1 of 6 questions got no answer" in stderr and not out.exists()
        failing.clear()
        code, stdout, stderr = run_belle(*args)
        assert code == 0, stderr
        asked = [r.body["messages"][-1]["content"] for r in server.answered_requests()]
    assert sorted(asked) == sorted(r["question"] for r in EVAL_SET)  # each answered question asked once
    rows = read_jsonl(out)
    assert [r["answer"] for r in rows] == [f"echo: {r['question']}" for r in EVAL_SET]
    assert all(r.body["model"] == "served-model" for r in server.completion_requests())
