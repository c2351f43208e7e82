"""notebooks/: the one notebook runs end to end on CPU (its install cell skipped: belle-hf is installed)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "belle_hf_quickstart.ipynb"


def test_there_is_one_notebook_with_a_skippable_install_cell():
    import nbformat

    assert sorted(p.name for p in NOTEBOOK.parent.glob("*.ipynb")) == [NOTEBOOK.name]
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    install = [cell for cell in notebook.cells if "install" in cell.metadata.get("tags", [])]
    assert len(install) == 1 and "BELLE_NOTEBOOK_SKIP_INSTALL" in install[0].source
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "commit it unexecuted"


@pytest.mark.slow
def test_notebook_runs_end_to_end_on_cpu(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("BELLE_NOTEBOOK_SKIP_INSTALL", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # it must download nothing
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                     for output in cell.outputs)
    assert "belle-hf ready" in text and "eval loss:" in text
    assert "中国的首都是哪里？ ->" in text
    assert "no GPU here" in text
    assert (tmp_path / "runs" / "notebook" / "adapter_model.safetensors").is_file()
