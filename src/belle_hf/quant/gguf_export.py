"""Export a Llama-architecture HF model to a GGUF file for llama.cpp / ChatBELLE-style apps.

Written with the ``gguf`` package (llama.cpp's own Python writer): the llama architecture keys,
the tokenizer (tokens, merges, special ids) and the chat template as metadata, and the weights
as f16, q8_0 or q4_0 (``gguf.quants.quantize``). K-quants such as Q4_K_M have no Python
quantizer; write f16 here and run llama.cpp's ``llama-quantize model.f16.gguf out.gguf Q4_K_M``.

Only the parts llama.cpp's ``convert_hf_to_gguf.py`` would do for a plain Llama are hand-written
here (metadata keys, the q/k row permutation): that script is not an installable library.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from belle_hf.errors import BelleError
from belle_hf.extras import require_extra
from belle_hf.hub.lineage import write_lineage
from belle_hf.io import atomic_path

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

GGUF_TYPES = ("f16", "q8_0", "q4_0")
_GENERATION_TAGS = re.compile(r"\{%-?\s*(end)?generation\s*-?%\}")


def _quant_types():
    import gguf

    return {
        "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
        "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
        "q4_0": (gguf.GGMLQuantizationType.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0),
    }


def llama_cpp_chat_template(template: str | None) -> str | None:
    """The chat template without transformers' ``{% generation %}`` markers, which llama.cpp's
    Jinja engine does not know (they only mark assistant tokens for training)."""
    return _GENERATION_TAGS.sub("", template) if template else template


def permute_for_rope(weights, n_head: int, n_head_kv: int | None = None):
    """Reorder q/k projection rows from HF's rotate-half RoPE layout to llama.cpp's interleaved one
    (the same permutation as llama.cpp's converter)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    shape = weights.shape
    return weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def _iter_tensors(model_dir: Path) -> Iterator[tuple[str, "np.ndarray"]]:
    """``(name, float32 array)`` for every tensor of the safetensors shards, one at a time, so
    only one tensor is ever held in float32."""
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise BelleError(f"{model_dir}: no .safetensors weights (save the model with safe_serialization=True)")
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():
                yield name, handle.get_tensor(name).float().numpy()


def _load_vocab(model_dir: Path):
    """The tokenizer as llama.cpp expects it: GPT-2 byte-level BPE, or SentencePiece (Llama)."""
    from gguf.vocab import BpeVocab, LlamaHfVocab, SentencePieceVocab

    errors = []
    for vocab_class in (BpeVocab, LlamaHfVocab, SentencePieceVocab):
        try:
            return vocab_class(model_dir)
        except (FileNotFoundError, ImportError, TypeError, ValueError) as error:
            errors.append(f"{vocab_class.__name__}: {error}")
    raise BelleError(f"{model_dir}: no tokenizer llama.cpp can read ({'; '.join(errors)})")


def _add_metadata(writer, config, file_type, name: str) -> None:
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    rope_theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads or config.num_attention_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_freq_base(float(rope_theta))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(file_type)
    if rope_type == "linear":
        import gguf

        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    elif rope_type not in ("default", None):
        raise BelleError(f"RoPE type {rope_type!r} is not supported here; use llama.cpp's convert_hf_to_gguf.py")


def _add_tokenizer(writer, model_dir: Path, config) -> None:
    import gguf
    from transformers import AutoTokenizer

    vocab = _load_vocab(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    special_ids = set(tokenizer.all_special_ids)
    tokens, scores, types = [], [], []
    for index, (text, score, token_type) in enumerate(vocab.all_tokens()):
        tokens.append(text)
        scores.append(score)
        types.append(gguf.TokenType.CONTROL if index in special_ids and token_type == gguf.TokenType.NORMAL
                     else token_type)
    # Pad to the embedding size, as llama.cpp's converter does, so ids and rows agree.
    for index in range(len(tokens), config.vocab_size):
        tokens.append(f"[PAD{index}]")
        scores.append(-1000.0)
        types.append(gguf.TokenType.UNUSED)
    writer.add_tokenizer_model(vocab.tokenizer_model)
    if vocab.tokenizer_model == "gpt2":
        writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=vocab.tokenizer_model == "gpt2", n_vocab=len(tokens))
    special.chat_template = llama_cpp_chat_template(tokenizer.chat_template)
    special.add_to_gguf(writer, quiet=True)


def export_gguf(model_dir: str | os.PathLike, out_file: str | os.PathLike, type: str = "f16") -> Path:
    """Write ``model_dir`` (a Llama-architecture HF folder with safetensors) to ``out_file``.

    ``type``: ``f16`` (all matrices half precision), ``q8_0`` or ``q4_0`` (matrices whose rows
    are a multiple of 32 quantized in blocks of 32; norms stay float32). The file is written to
    a temporary name and renamed when complete.
    """
    require_extra("quant", "GGUF export", "gguf")
    import gguf
    import numpy as np
    from transformers import AutoConfig

    model_dir, out_file = Path(model_dir), Path(out_file)
    if type not in GGUF_TYPES:
        raise BelleError(f"--type must be one of {'|'.join(GGUF_TYPES)}, not {type!r}")
    if not (model_dir / "config.json").is_file():
        raise BelleError(f"{model_dir}: not a model folder (no config.json)")
    config = AutoConfig.from_pretrained(model_dir)
    if config.model_type != "llama":
        raise BelleError(f"{model_dir}: GGUF export supports the llama architecture, not {config.model_type!r}; "
                         "use llama.cpp's convert_hf_to_gguf.py")
    if getattr(config, "quantization_config", None):
        raise BelleError(f"{model_dir}: already quantized; export the full-precision model instead")
    tensor_type, file_type = _quant_types()[type]
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    n_head, n_head_kv = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads

    with atomic_path(out_file) as tmp:
        writer = gguf.GGUFWriter(str(tmp), arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
        _add_metadata(writer, config, file_type, model_dir.name)
        _add_tokenizer(writer, model_dir, config)
        for hf_name, data in _iter_tensors(model_dir):
            if hf_name.endswith("rotary_emb.inv_freq"):
                continue
            gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if gguf_name is None:
                raise BelleError(f"{model_dir}: tensor {hf_name} has no llama.cpp name")
            if hf_name.endswith("q_proj.weight"):
                data = permute_for_rope(data, n_head, n_head)
            elif hf_name.endswith("k_proj.weight"):
                data = permute_for_rope(data, n_head, n_head_kv)
            if data.ndim == 1:  # norms: llama.cpp keeps them in float32
                writer.add_tensor(gguf_name, data.astype(np.float32))
            elif type == "f16" or data.shape[-1] % 32:
                writer.add_tensor(gguf_name, data.astype(np.float16))
            else:
                writer.add_tensor(gguf_name, gguf.quants.quantize(data, tensor_type), raw_dtype=tensor_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    write_lineage(out_file, stage="gguf-export", parent=model_dir, settings={"type": type})
    logger.info("wrote %s (%s)", out_file, type)
    return out_file
