"""Comparing judged models the way the BELLE papers do: one row per model, one column per
class, then others (math, code), overall and score_wo_others, as Markdown, JSON and a bar chart.

The JSON (``report.json``) holds plain numbers per model, ready to feed a model card's eval
results.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from belle_hf.data.files import iter_records
from belle_hf.errors import DataFormatError
from belle_hf.eval.judge import summarize
from belle_hf.io import atomic_path, atomic_write_text

SUMMARY_COLUMNS = ("others", "overall", "score_wo_others")


def load_judged(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a judged file; each must have ``class`` and ``score`` (a number or null)."""
    rows = []
    for location, record in iter_records(path):
        if not isinstance(record, dict) or not isinstance(record.get("class"), str):
            raise DataFormatError("missing or not a string", location=location, field="class")
        if "score" not in record:
            raise DataFormatError("missing (is this a judged file?)", location=location, field="score")
        score = record["score"]
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1):
            raise DataFormatError(f"must be a number in [0, 1] or null, not {score!r}", location=location, field="score")
        rows.append(record)
    if not rows:
        raise DataFormatError("no judged rows", location=str(path))
    return rows


def build_table(judged: Sequence[str | os.PathLike], names: Sequence[str] | None = None) -> dict[str, Any]:
    """``{"classes": [...], "models": [{"name", "per_class", "others", "overall", "score_wo_others",
    "n", "n_scored", "n_failed"}, ...]}`` for the judged files (names default to file stems)."""
    names = list(names) if names else [Path(p).stem for p in judged]
    models = []
    for name, path in zip(names, judged):
        summary = summarize(load_judged(path))
        models.append({"name": name, "file": str(path), "per_class": summary["per_class"],
                       **{key: summary[key] for key in SUMMARY_COLUMNS},
                       "n": summary["n"], "n_scored": summary["n_scored"], "n_failed": summary["n_failed"]})
    classes = sorted({c for model in models for c in model["per_class"]})
    return {"classes": classes, "models": models}


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def to_markdown(table: dict[str, Any]) -> str:
    """The table in Markdown (scores to three decimals, – where nothing was scored)."""
    header = ["model", *table["classes"], *SUMMARY_COLUMNS, "n", "failures"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for model in table["models"]:
        cells = [model["name"].replace("|", "\\|")]
        cells += [_cell(model["per_class"].get(c)) for c in table["classes"]]
        cells += [_cell(model[key]) for key in SUMMARY_COLUMNS]
        cells += [str(model["n"]), str(model["n_failed"])]
        lines.append("| " + " | ".join(cells) + " |")
    note = ("\nScores are GPT-4-as-judge means in [0, 1] over the scored answers; others = math and code; "
            "score_wo_others = every class but math and code; failures = answers without a score "
            "(request failed or reply unreadable), left out of the means.\n")
    return "\n".join(lines) + "\n" + note


def plot_table(table: dict[str, Any], path: str | os.PathLike) -> None:
    """A grouped bar chart: one group per class (plus overall and score_wo_others), one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = [*table["classes"], "overall", "score_wo_others"]
    models = table["models"]
    x = np.arange(len(groups))
    width = 0.8 / max(1, len(models))
    figure, axes = plt.subplots(figsize=(max(8.0, 0.9 * len(groups) + 2), 4.8), dpi=100)
    for i, model in enumerate(models):
        values = [model["per_class"].get(g) if g in model["per_class"] else model.get(g) for g in groups]
        heights = [np.nan if v is None else v for v in values]
        axes.bar(x - 0.4 + width * (i + 0.5), heights, width, label=model["name"])
    axes.set_xticks(x, groups, rotation=35, ha="right")
    axes.set_ylim(0, 1)
    axes.set_ylabel("judge score (0-1)")
    axes.set_title("BELLE eval: GPT-4-as-judge scores per class")
    axes.legend(fontsize="small")
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)


def write_report(judged: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                 names: Sequence[str] | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and ``scores.png`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = build_table(judged, names)
    paths = {"markdown": out_dir / "report.md", "json": out_dir / "report.json", "chart": out_dir / "scores.png"}
    atomic_write_text(paths["markdown"], "# BELLE eval\n\n" + to_markdown(table))
    atomic_write_text(paths["json"], json.dumps(table, ensure_ascii=False, indent=2) + "\n")
    plot_table(table, paths["chart"])
    return paths
