"""``belle eval report``: Markdown + JSON tables and a PNG bar chart comparing models."""

from __future__ import annotations

import json

import pytest

from evalkit import EVAL_SET, write_jsonl


def judged(scores):
    return [{**row, "answer": "…", "score": score, "judge_output": "得分: x"} for row, score in zip(EVAL_SET, scores)]


def test_report_tables_and_chart(run_belle, tmp_path):
    a = write_jsonl(tmp_path / "belle-7b.jsonl", judged([1.0, 0.5, 0.8, 0.6, 0.0, 0.9]))
    b = write_jsonl(tmp_path / "tiny.jsonl", judged([0.0, None, 0.4, None, 1.0, 0.3]))
    out = tmp_path / "report"
    code, stdout, stderr = run_belle("eval", "report", str(a), str(b), "-o", str(out))
    assert code == 0, stderr
    table = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert table["classes"] == ["closed qa", "code", "generation", "math", "open qa"]
    first, second = table["models"]
    assert first["name"] == "belle-7b" and second["name"] == "tiny"
    assert first["per_class"]["open qa"] == pytest.approx((0.8 + 0.6) / 2)
    assert first["overall"] == pytest.approx(3.8 / 6)
    assert first["score_wo_others"] == pytest.approx((0.8 + 0.6 + 0.0 + 0.9) / 4)
    assert first["others"] == pytest.approx(0.75)
    assert (second["n"], second["n_scored"], second["n_failed"]) == (6, 4, 2)
    assert second["per_class"]["code"] is None and second["overall"] == pytest.approx(1.7 / 4)
    markdown = (out / "report.md").read_text(encoding="utf-8")
    header = markdown.splitlines()[2]
    assert header.startswith("| model | closed qa | code | generation | math | open qa | others | overall | "
                             "score_wo_others | n | failures |")
    assert "| belle-7b | 0.000 | 0.500 | 0.900 | 1.000 | 0.700 | 0.750 | 0.633 | 0.575 | 6 | 0 |" in markdown
    assert "| tiny | 1.000 | – | 0.300 | 0.000 | 0.400 | 0.000 | 0.425 | 0.567 | 6 | 2 |" in markdown

    from PIL import Image

    png = out / "scores.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        width, height = image.size
        colors = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert width >= 600 and height >= 300
    assert len(colors) > 50  # bars, labels, legend: not a blank canvas


def test_report_rejects_files_that_are_not_judged(run_belle, tmp_path):
    answers = write_jsonl(tmp_path / "answers.jsonl", [{**row, "answer": "x"} for row in EVAL_SET])
    code, _, stderr = run_belle("eval", "report", str(answers), "-o", str(tmp_path / "out"))
    assert code == 1 and "answers.jsonl:1: field 'score'" in stderr
    bad = write_jsonl(tmp_path / "bad.jsonl", judged([1.5] * 6))
    code, _, stderr = run_belle("eval", "report", str(bad), "-o", str(tmp_path / "out"))
    assert code == 1 and "bad.jsonl:1: field 'score'" in stderr
    assert not (tmp_path / "out" / "report.md").exists()
