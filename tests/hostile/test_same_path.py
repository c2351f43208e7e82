"""An output that is one of the command's inputs (however it is spelled) is refused before
anything is written: the input is never replaced."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from belle_hf.errors import BelleError
from belle_hf.testing.openai_server import FakeOpenAIServer

RECORDS = [{"instruction": f"第{i}个问题", "input": "", "output": f"第{i}个回答。"} for i in range(3)]


@pytest.fixture
def src(tmp_path) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS), encoding="utf-8")
    return path


def spellings(src: Path) -> dict[str, Path]:
    """Other names of ``src``: ./ and .. spellings, a symlink, a hard link."""
    symlink = src.with_name("link.jsonl")
    symlink.symlink_to(src.name)
    hardlink = src.with_name("hard.jsonl")
    os.link(src, hardlink)
    return {"same": src, "dot": src.parent / "." / src.name, "dotdot": src.parent / "sub" / ".." / src.name,
            "symlink": symlink, "hardlink": hardlink}


@pytest.mark.parametrize("command", ["convert", "clean", "dedup"])
@pytest.mark.parametrize("spelling", ["same", "dot", "dotdot", "symlink", "hardlink"])
def test_data_commands_refuse_to_write_over_their_input(run_belle, src, command, spelling):
    before = src.read_bytes()
    output = spellings(src)[spelling]
    code, _, err = run_belle("data", command, src, "-o", output)
    assert code == 1 and "is the input" in err and "Traceback" not in err
    assert src.read_bytes() == before


def test_a_report_over_the_input_is_refused(run_belle, src, tmp_path):
    before = src.read_bytes()
    code, _, err = run_belle("data", "dedup", src, "-o", tmp_path / "out.jsonl", "--report", src)
    assert code == 1 and "is the input" in err
    assert src.read_bytes() == before and not (tmp_path / "out.jsonl").exists()


def test_eval_and_generate_commands_refuse_to_write_over_their_inputs(run_belle, src, tmp_path):
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"question": "q", "class": "math", "std_answer": "", "answer": "a"},
                                  ensure_ascii=False) + "\n", encoding="utf-8")
    prompts = tmp_path / "eval_prompt.json"
    prompts.write_text(json.dumps({"class": "math", "prompt": "打分"}, ensure_ascii=False) + "\n", encoding="utf-8")
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_bytes(src.read_bytes())
    inputs = {path: path.read_bytes() for path in (answers, prompts, seeds)}
    with FakeOpenAIServer(responder=lambda body: "得分: 1") as server:
        judge = ["eval", "judge", "--answers", answers, "--prompts", prompts, "--base-url", server.base_url,
                 "--model", "gpt-4"]
        for outputs in (["-o", answers, "--summary", tmp_path / "s.json"],
                        ["-o", tmp_path / "j.jsonl", "--summary", prompts],
                        ["-o", tmp_path / "j.jsonl", "--summary", tmp_path / "j.jsonl"]):
            code, _, err = run_belle(*judge, *outputs)
            assert code == 1 and "is the input" in err, err
        code, _, err = run_belle("eval", "generate", "--eval-set", answers, "--base-url", server.base_url,
                                 "--model", "m", "-o", tmp_path / "." / answers.name)
        assert code == 1 and "is the input" in err, err
        code, _, err = run_belle("data", "generate", "--seed-tasks", seeds, "--base-url", server.base_url,
                                 "--model", "m", "-n", "5", "-o", seeds)
        assert code == 1 and "is the input" in err, err
        assert server.completion_requests() == []
    assert {path: path.read_bytes() for path in inputs} == inputs
    assert not (tmp_path / "j.jsonl").exists() and not (tmp_path / "s.json").exists()


def test_the_helper_compares_files_not_spellings(src, tmp_path):
    from belle_hf.io import check_output_is_not_input

    for output in spellings(src).values():
        with pytest.raises(BelleError, match="is the input"):
            check_output_is_not_input(output, [src])
    check_output_is_not_input(tmp_path / "other.jsonl", [src, None, "sample:alpaca", "BelleGroup/train_0.5M_CN"])
    # A folder that is swapped whole may not hold an input.
    with pytest.raises(BelleError, match="holds the input"):
        check_output_is_not_input(tmp_path, [src], replaces_folder=True)
    check_output_is_not_input(tmp_path, [src])  # written into, not replaced: fine


def _library_calls():
    """Each data library function that takes inputs and outputs, with the output (or report)
    given by the test: the Python API refuses it itself, not only the ``belle`` command."""
    from belle_hf.data.clean import clean_file
    from belle_hf.data.convert import convert_file
    from belle_hf.data.dedup import dedup_file
    from belle_hf.data.mix import mix

    return {
        "convert_file": lambda src, out, tmp: convert_file(src, out),
        "clean_file": lambda src, out, tmp: clean_file(src, out),
        "dedup_file": lambda src, out, tmp: dedup_file(src, out),
        "clean_file report": lambda src, out, tmp: clean_file(src, tmp / "kept.jsonl", report_path=out),
        "dedup_file report": lambda src, out, tmp: dedup_file(src, tmp / "kept.jsonl", report_path=out),
        "mix report": lambda src, out, tmp: mix([src], tmp / "mixed", report_path=out),
    }


@pytest.mark.parametrize("call", list(_library_calls()))
@pytest.mark.parametrize("spelling", ["same", "dot", "symlink", "hardlink"])
def test_library_functions_refuse_to_write_over_their_input(src, tmp_path, call, spelling):
    before = src.read_bytes()
    output = spellings(src)[spelling]
    with pytest.raises(BelleError, match="is the input") as caught:
        _library_calls()[call](src, output, tmp_path)
    assert "\n" not in str(caught.value)
    assert src.read_bytes() == before
    # nothing was written: no kept rows, no mixed folder, no work folder of the pipeline
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl", "hard.jsonl", "link.jsonl"]


def test_a_report_over_the_output_is_refused_by_the_library(src, tmp_path):
    from belle_hf.data.dedup import dedup_file

    with pytest.raises(BelleError, match="is the input"):
        dedup_file(src, tmp_path / "kept.jsonl", report_path=tmp_path / "." / "kept.jsonl")
    assert not (tmp_path / "kept.jsonl").exists()
