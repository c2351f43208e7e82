"""``belle export gguf``: read the file back with gguf's reader; weights round-trip within tolerance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from belle_hf.quant.gguf_export import permute_for_rope
from belle_hf.templates import render_belle_prompt

# Worst relative error (Frobenius norm) of a dequantized matrix, by type.
TOLERANCE = {"f16": 1e-3, "q8_0": 1e-2, "q4_0": 0.15}


def _field(reader, key):
    return reader.fields[key].contents()


def _hf_weights(model_dir):
    from safetensors.numpy import load_file

    return load_file(str(model_dir / "model.safetensors"))


@pytest.mark.parametrize("gguf_type", ["f16", "q8_0", "q4_0"])
def test_export_gguf_reads_back(run_belle, tiny_model_dir, tmp_path, gguf_type):
    import gguf
    from transformers import AutoTokenizer

    out = tmp_path / f"tiny.{gguf_type}.gguf"
    code, stdout, err = run_belle("export", "gguf", tiny_model_dir, "-o", out, "--type", gguf_type)
    assert code == 0, err
    assert str(out) in stdout
    # No temporary file left; the lineage record (belle_hf.hub.lineage) sits beside the export.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, "belle_lineage.json"])

    config = json.loads((tiny_model_dir / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    reader = gguf.GGUFReader(str(out))

    assert _field(reader, "general.architecture") == "llama"
    assert _field(reader, "llama.block_count") == config["num_hidden_layers"]
    assert _field(reader, "llama.embedding_length") == config["hidden_size"]
    assert _field(reader, "llama.feed_forward_length") == config["intermediate_size"]
    assert _field(reader, "llama.context_length") == config["max_position_embeddings"]
    assert _field(reader, "llama.attention.head_count") == config["num_attention_heads"]
    assert _field(reader, "llama.attention.head_count_kv") == config["num_key_value_heads"]
    assert _field(reader, "llama.rope.dimension_count") == config["hidden_size"] // config["num_attention_heads"]
    file_types = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                  "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}
    assert _field(reader, "general.file_type") == file_types[gguf_type]

    # Tokenizer metadata: the same vocabulary, merges, special ids and chat template (minus the
    # training-only {% generation %} markers llama.cpp's Jinja does not know).
    tokens = _field(reader, "tokenizer.ggml.tokens")
    assert _field(reader, "tokenizer.ggml.model") == "gpt2"
    assert tokens == tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    assert len(_field(reader, "tokenizer.ggml.merges")) > 100
    assert _field(reader, "tokenizer.ggml.bos_token_id") == tokenizer.bos_token_id
    assert _field(reader, "tokenizer.ggml.eos_token_id") == tokenizer.eos_token_id
    assert _field(reader, "tokenizer.ggml.padding_token_id") == tokenizer.pad_token_id
    types = _field(reader, "tokenizer.ggml.token_type")
    assert types[tokenizer.eos_token_id] == gguf.TokenType.CONTROL and types[100] == gguf.TokenType.NORMAL
    template = _field(reader, "tokenizer.chat_template")
    assert "endgeneration" not in template
    # Plain Jinja (no transformers extension) renders it exactly as BELLE's format.
    import jinja2

    messages = [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"},
                {"role": "user", "content": "再见"}]
    rendered = jinja2.Environment().from_string(template).render(messages=messages, eos_token="</s>",
                                                                 add_generation_prompt=True)
    assert rendered == render_belle_prompt(messages)

    # Every weight is there with its shape and type, and dequantizes back to the original.
    weights = _hf_weights(tiny_model_dir)
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    by_name = {tensor.name: tensor for tensor in reader.tensors}
    assert len(by_name) == len(weights)
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    for hf_name, original in weights.items():
        tensor = by_name[name_map.get_name(hf_name, try_suffixes=(".weight",))]
        assert tuple(int(d) for d in tensor.shape) == tuple(reversed(original.shape))
        expected_type = gguf.GGMLQuantizationType.F32 if original.ndim == 1 else {
            "f16": gguf.GGMLQuantizationType.F16, "q8_0": gguf.GGMLQuantizationType.Q8_0,
            "q4_0": gguf.GGMLQuantizationType.Q4_0}[gguf_type]
        assert tensor.tensor_type == expected_type, hf_name
        restored = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(original.shape)
        if hf_name.endswith("q_proj.weight"):
            original = permute_for_rope(original, heads, heads)
        elif hf_name.endswith("k_proj.weight"):
            original = permute_for_rope(original, heads, kv_heads)
        error = np.linalg.norm(restored - original) / np.linalg.norm(original)
        assert error < (0 if original.ndim == 1 else TOLERANCE[gguf_type]) + 1e-7, (hf_name, error)


def test_gguf_sizes_shrink_with_the_type(run_belle, tiny_model_dir, tmp_path):
    sizes = {}
    for gguf_type in ("f16", "q8_0", "q4_0"):
        out = tmp_path / f"m.{gguf_type}.gguf"
        assert run_belle("export", "gguf", tiny_model_dir, "-o", out, "--type", gguf_type)[0] == 0
        sizes[gguf_type] = out.stat().st_size
    assert sizes["f16"] > sizes["q8_0"] > sizes["q4_0"]


def test_permutation_is_llama_cpp_rope_layout():
    # Rows of one head: HF puts the two rotated halves apart, llama.cpp interleaves them.
    weights = np.arange(8, dtype=np.float32)[:, None]  # 1 head of dim 8
    assert permute_for_rope(weights, 1)[:, 0].tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def test_export_errors(run_belle, tiny_model_dir, tmp_path):
    code, _, err = run_belle("export", "gguf", tiny_model_dir, "-o", tmp_path / "m.gguf", "--type", "q4_k_m")
    assert code == 1 and "--type must be one of f16|q8_0|q4_0" in err
    code, _, err = run_belle("export", "gguf", tmp_path, "-o", tmp_path / "m.gguf")
    assert code == 1 and "not a model folder" in err
    assert not (tmp_path / "m.gguf").exists()


def test_gguf_runs_in_llama_cpp(run_belle, tiny_model_dir, tmp_path):
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (it compiles llama.cpp)")
    out = tmp_path / "m.gguf"
    assert run_belle("export", "gguf", tiny_model_dir, "-o", out, "--type", "q8_0")[0] == 0
    llm = llama_cpp.Llama(model_path=str(out), n_ctx=256, verbose=False)
    result = llm.create_completion("Human: \n你好\n\nAssistant: \n", max_tokens=8, temperature=0)
    assert result["usage"]["completion_tokens"] >= 1
