"""``model: tiny``: a tiny random Llama model and a BPE tokenizer trained in seconds, saved as a
normal HF folder.

A product feature (the quickstart trains it with no download) that the tests and benchmarks
also use, since no hub is reachable there. The project makes its own model:
``AutoModelForCausalLM.from_pretrained(folder)`` and ``AutoTokenizer.from_pretrained(folder)``
load it like any checkpoint, with BELLE's chat template set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from belle_hf.templates import BELLE_CHAT_TEMPLATE
from belle_hf.samples import sample_text

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]


@dataclass
class TinyModelConfig:
    """Sizes of the tiny model; the defaults make a ~0.2M-parameter model that trains in seconds on CPU."""

    vocab_size: int = 1024
    """Target vocabulary of the BPE tokenizer (the model's embedding matches the trained size)."""
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 1024
    seed: int = 0


def build_tiny_tokenizer(vocab_size: int = 1024, extra_text: str = ""):
    """Train a byte-level BPE tokenizer on the bundled Chinese+English sample text.

    Returns a ``PreTrainedTokenizerFast`` with ``<s>``/``</s>``/``<pad>``/``<unk>`` and BELLE's
    chat template.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    text = sample_text() + ("\n" + extra_text if extra_text else "")
    tokenizer.train_from_iterator(text.splitlines(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=1024,
    )
    fast.chat_template = BELLE_CHAT_TEMPLATE
    return fast


def build_tiny_model(tokenizer, config: TinyModelConfig | None = None):
    """A randomly initialized ``LlamaForCausalLM`` sized for ``tokenizer``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = config or TinyModelConfig()
    torch.manual_seed(config.seed)
    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(model_config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def save_tiny_model(out_dir: str | os.PathLike, config: TinyModelConfig | None = None) -> Path:
    """Build the tiny tokenizer and model and save both to ``out_dir`` (safetensors)."""
    config = config or TinyModelConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(config.vocab_size)
    model = build_tiny_model(tokenizer, config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
