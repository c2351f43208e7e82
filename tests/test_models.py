"""belle_hf.models.load_tokenizer: the one loader training and data stats share."""

from __future__ import annotations

from pathlib import Path

import pytest

from belle_hf.errors import BelleError


def test_one_loader_pads_with_eos_and_passes_objects_through(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    from belle_hf.data.pipeline import steps
    from belle_hf.models import load_tokenizer
    from belle_hf.train import trainer

    # No second copy: training and the stats step use this function.
    assert trainer.load_tokenizer is load_tokenizer
    assert "load_tokenizer" not in vars(__import__("belle_hf.data.stats", fromlist=["x"]))
    assert "from belle_hf.models import load_tokenizer" in Path(steps.__file__).read_text(encoding="utf-8")

    no_pad = AutoTokenizer.from_pretrained(tiny_model_dir)
    no_pad.pad_token = None
    no_pad.save_pretrained(tmp_path / "no-pad")
    loaded = load_tokenizer(tmp_path / "no-pad")
    assert loaded.eos_token is not None and loaded.pad_token == loaded.eos_token
    assert load_tokenizer(no_pad) is no_pad  # an object is used as given, not changed
    assert no_pad.pad_token is None

    with pytest.raises(BelleError, match="cannot load the tokenizer of") as caught:
        load_tokenizer(tmp_path / "missing")
    assert str(tmp_path / "missing") in str(caught.value) and "\n" not in str(caught.value)
