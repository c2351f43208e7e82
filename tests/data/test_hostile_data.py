"""Hostile data files through ``load()``, ``belle data head`` and ``belle data convert``.

Each case ends in one line that names the file (and line), or in ids kept exactly as written.
"""

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from belle_hf.data import convert_file, load
from belle_hf.errors import BelleError, DataFormatError

BIG_ID = "123456789012345678901234"  # past 64 bits: orjson and pyarrow read it as a float
ID_2_53 = "9007199254740993"  # 2**53 + 1: a float cannot hold it


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


RECORDS = {
    "alpaca": '{{"id": {id}, "instruction": "问", "input": "", "output": "答"}}',
    "belle-multiturn": '{{"id": {id}, "instruction": "Human:问\\nAssistant:", "input": "", "output": "答"}}',
    "conversations": '{{"id": {id}, "conversations": [{{"from": "human", "value": "问"}}, {{"from": "gpt", "value": "答"}}]}}',
    "messages": '{{"id": {id}, "messages": [{{"role": "user", "content": "问"}}, {{"role": "assistant", "content": "答"}}]}}',
}


@pytest.mark.parametrize("schema", sorted(RECORDS))
def test_big_integer_ids_stay_exact_strings(schema, tmp_path):
    path = write_lines(tmp_path / f"{schema}.jsonl", [RECORDS[schema].format(id=i) for i in (ID_2_53, BIG_ID, "1.50")])
    expected = [ID_2_53, BIG_ID, "1.50"]
    assert [row["id"] for row in load(path)] == expected
    assert [row["id"] for row in load(path, streaming=True)] == expected
    out = tmp_path / "out.jsonl"
    convert_file(path, out)
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == expected


def test_big_integer_ids_in_a_json_array(tmp_path):
    path = tmp_path / "array.json"
    path.write_text("[" + ",".join(RECORDS["alpaca"].format(id=i) for i in (ID_2_53, BIG_ID)) + "]")
    out = tmp_path / "out.jsonl"
    convert_file(path, out)
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [ID_2_53, BIG_ID]


EMPTY_ANSWERS = {
    "conversations": ('{"conversations": [{"from": "human", "value": "问"}, {"from": "gpt", "value": " \\u3000 "}]}',
                      r"conversations\[1\]\.value'?: empty assistant answer"),
    "messages": ('{"messages": [{"role": "user", "content": "问"}, {"role": "assistant", "content": ""}]}',
                 r"messages\[1\]\.content'?: empty assistant answer"),
    "belle-multiturn": ('{"instruction": "Human:一\\nAssistant:\\nHuman:二\\nAssistant:", "output": "答"}',
                        r"instruction'?: turn 2 is an empty assistant answer"),
}


@pytest.mark.parametrize("schema", sorted(EMPTY_ANSWERS))
def test_empty_assistant_answer_is_a_data_error_at_load_and_convert(schema, tmp_path, run_belle):
    bad, message = EMPTY_ANSWERS[schema]
    good = RECORDS[schema].format(id=1)
    path = write_lines(tmp_path / "data.jsonl", [good, bad, good])
    for streaming in (False, True):
        with pytest.raises(DataFormatError, match=rf"data.jsonl:2: field '{message}"):
            list(load(path, streaming=streaming))
    code, _, err = run_belle("data", "convert", path, "-o", tmp_path / "out.jsonl")
    assert code == 1 and f"{path}:2" in err and "empty assistant answer" in err
    assert not (tmp_path / "out.jsonl").exists()
    code, out, err = run_belle("data", "convert", path, "-o", tmp_path / "out.jsonl", "--on-error", "skip")
    assert code == 0 and "2 rows written" in out and "1 skipped" in out and f"{path}:2" in err


def test_every_answer_empty_trains_nothing_so_load_refuses(tmp_path):
    bad = EMPTY_ANSWERS["messages"][0]
    path = write_lines(tmp_path / "all_empty.jsonl", [bad] * 5)
    with pytest.raises(DataFormatError, match="all_empty.jsonl:1: .*empty assistant answer"):
        load(path)


def _head(path, *extra):
    """``belle data head`` in a real process: exit code and stderr lines."""
    env = {**os.environ, "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    done = subprocess.run([sys.executable, "-m", "belle_hf.cli", "data", "head", str(path), "-n", "1", *extra],
                          capture_output=True, text=True, env=env, timeout=300)
    return done.returncode, done.stdout, [line for line in done.stderr.splitlines() if line.strip()]


BROKEN_FILES = {
    # name: (content, what the one line says after the path)
    "gbk.jsonl": ('{"instruction": "你好", "output": "世界"}\n'.encode("gbk"), ":1: not UTF-8"),
    "cut.jsonl": ('{"instruction": "问", "output": "答"}\n{"instruction": "问", "outp'.encode(), ":2: invalid JSON"),
    "empty.jsonl": (b"\n  \n", ": the file is empty"),
}


@pytest.mark.parametrize("name", sorted(BROKEN_FILES))
def test_head_and_load_on_broken_files_print_one_line(name, tmp_path):
    content, message = BROKEN_FILES[name]
    path = tmp_path / name
    path.write_bytes(content)
    code, _, err = _head(path, "-n", "5")
    assert code == 1 and len(err) == 1 and f"{path}{message}" in err[0], err
    with pytest.raises(BelleError, match=re.escape(f"{path}{message}")):
        load(path)


def test_mixed_schema_row_names_file_line_and_field(tmp_path):
    path = write_lines(tmp_path / "mixed.jsonl", [RECORDS["alpaca"].format(id=1), RECORDS["conversations"].format(id=2)])
    for streaming in (False, True):
        with pytest.raises(DataFormatError, match=r"mixed.jsonl:2: field 'instruction': missing"):
            list(load(path, streaming=streaming))
    code, out, err = _head(path, "-n", "5")
    assert code == 1 and len(err) == 1 and f"{path}:2" in err[0], err


def test_mixed_value_types_name_the_row(tmp_path):
    # pyarrow cannot put a number and a string in one column; the error must still name the line.
    path = write_lines(tmp_path / "types.jsonl", [RECORDS["conversations"].format(id=1),
                                                  '{"conversations": [{"from": "human", "value": "问"}, '
                                                  '{"from": "gpt", "value": 5}]}'])
    with pytest.raises(DataFormatError, match=r"types.jsonl:2: field 'conversations\[1\]\.value'"):
        load(path)


def test_offline_hub_is_one_line(tmp_path):
    with socket.socket() as sock:  # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {key: value for key, value in os.environ.items() if key not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf"), HF_HUB_ETAG_TIMEOUT="2",
               HF_HUB_DOWNLOAD_TIMEOUT="2")
    done = subprocess.run([sys.executable, "-m", "belle_hf.cli", "data", "head", "train_0.5M_CN", "-n", "1"],
                          capture_output=True, text=True, env=env, timeout=300)
    err = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(err) == 1, done.stderr[-2000:]
    assert f"cannot reach the Hub at http://127.0.0.1:{port}" in err[0] and "HF_ENDPOINT" in err[0]
