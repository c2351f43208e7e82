"""``--calibration`` takes a .txt file (one text per line) and a bundled sample, besides BELLE files."""

from __future__ import annotations

import json

import pytest

from belle_hf.errors import BelleError
from belle_hf.quant.calibration import chat_texts, split_calibration_and_heldout
from belle_hf.testing import sample_data_path

LINES = ["中国的首都是北京。", "", "1 加 1 等于 2。", "天空是蓝色的。  ", "猫是一种动物。", "水在零度结冰。", "最后一行"]


def test_txt_file_gives_one_plain_text_per_non_empty_line(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    path = tmp_path / "calib.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    calibration, heldout = split_calibration_and_heldout(str(path), 3, 2)
    assert calibration == ["中国的首都是北京。", "1 加 1 等于 2。", "天空是蓝色的。  "]
    assert heldout == ["猫是一种动物。", "水在零度结冰。"]
    # Plain texts are calibrated as written, not wrapped in the chat template.
    assert chat_texts(calibration, AutoTokenizer.from_pretrained(tiny_model_dir)) == calibration


def test_sample_name_as_recipes_write_it(tiny_model_dir):
    calibration, heldout = split_calibration_and_heldout("sample:alpaca", 4, 2)
    same_file, _ = split_calibration_and_heldout(str(sample_data_path("alpaca")), 6, 1)
    assert calibration + heldout == same_file
    assert all(isinstance(messages, list) and messages[0]["role"] == "user" for messages in calibration)


def test_txt_file_with_a_bad_encoding_names_file_and_line(tmp_path):
    path = tmp_path / "calib.txt"
    path.write_bytes("第一行\n".encode("utf-8") + "第二行\n".encode("gbk"))
    with pytest.raises(BelleError, match=r"calib\.txt: line 2: not UTF-8"):
        split_calibration_and_heldout(str(path), 4, 1)


def test_unknown_sample_lists_the_samples():
    with pytest.raises(BelleError, match="unknown sample 'sample:nope'; samples are sample:alpaca"):
        split_calibration_and_heldout("sample:nope", 4, 1)


@pytest.mark.slow
def test_quantize_gptq_cli_calibrates_on_a_txt_file(run_belle, tiny_model_dir, tmp_path):
    rows = [json.loads(line) for line in sample_data_path("alpaca").read_text(encoding="utf-8").splitlines()]
    path = tmp_path / "calib.txt"
    path.write_text("".join(f"{row['instruction']}{row['output']}\n" for row in rows[:12]), encoding="utf-8")
    code, stdout, err = run_belle("quantize", "gptq", tiny_model_dir, "-o", tmp_path / "q", "--bits", "4",
                                  "--group-size", "32", "--calibration", path, "--n-samples", "8",
                                  "--eval-samples", "4")
    assert code == 0, err
    report = json.loads((tmp_path / "q" / "quality.json").read_text(encoding="utf-8"))
    assert (report["calibration_samples"], report["heldout_samples"]) == (8, 4)
