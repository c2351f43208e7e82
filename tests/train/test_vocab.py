"""``belle vocab extend``: new Chinese pieces, old ids unchanged, embeddings grown with their mean."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_extend_vocab_keeps_old_ids_and_shortens_chinese(run_belle, tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from belle_hf.testing.sample_data import sample_text

    # Chinese-only lines, so the new pieces are Chinese and English must tokenize as before.
    lines = ["".join(c for c in line if not (c.isascii() and c.isalpha())).strip()
             for line in sample_text().splitlines()]
    lines = [line for line in lines if line]
    corpus, heldout = tmp_path / "corpus.txt", tmp_path / "heldout.txt"
    corpus.write_text("\n".join(lines[0::2]), encoding="utf-8")
    heldout.write_text("\n".join(lines[1::2]), encoding="utf-8")
    out = tmp_path / "ext"
    code, stdout, err = run_belle("vocab", "extend", "--base", tiny_model_dir, "--corpus", corpus,
                                  "--vocab-size", "2000", "--heldout", heldout, "-o", out)
    assert code == 0, err
    report = json.loads((out / "vocab_extension.json").read_text())
    assert report["added_tokens"] > 100
    assert report["tokens_per_char_after"] < report["tokens_per_char_before"]
    assert "tokens per character on held-out text" in stdout

    base, extended = AutoTokenizer.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(out)
    assert len(extended) == len(base) + report["added_tokens"]
    base_vocab = base.get_vocab()
    assert all(extended.get_vocab()[token] == index for token, index in base_vocab.items())
    english = "The quick brown fox jumps over the lazy dog"
    assert extended(english)["input_ids"] == base(english)["input_ids"]
    chinese = lines[1]
    assert extended.decode(extended(chinese)["input_ids"]) == chinese

    old_model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(out)
    old_rows = old_model.get_input_embeddings().weight
    rows = model.get_input_embeddings().weight
    assert rows.shape[0] == len(extended)
    assert torch.equal(rows[: len(base)], old_rows)
    assert torch.allclose(rows[len(base):], old_rows.mean(dim=0).expand(len(extended) - len(base), -1))
    assert model.get_output_embeddings().weight.shape[0] == len(extended)


def test_extend_vocab_refuses_missing_corpus(run_belle, tiny_model_dir, tmp_path):
    code, _, err = run_belle("vocab", "extend", "--base", tiny_model_dir, "--corpus", tmp_path / "none.txt",
                             "--vocab-size", "2000", "-o", tmp_path / "ext")
    assert code == 1 and "none.txt" in err
    assert not (tmp_path / "ext").exists()
