"""The loss mask covers exactly every assistant reply + eos, whatever the template's header ends with."""

from __future__ import annotations

import zlib

import pytest

from belle_hf.errors import BelleError
from belle_hf.templates import BELLE_CHAT_TEMPLATE
from belle_hf.train.template import decode_example, resolve_chat_template, tokenize_conversation

CONVERSATION = [
    {"role": "system", "content": "你是一个乐于助人的助手。"},
    {"role": "user", "content": "你好，请介绍一下北京。"},
    {"role": "assistant", "content": "北京是中国的首都，历史悠久。"},
    {"role": "user", "content": "计算 36 加 25 等于多少？"},
    {"role": "assistant", "content": "36 加 25 等于 61。"},
    {"role": "user", "content": "Say hello in English."},
    {"role": "assistant", "content": "Hello! 你好！"},
]


def belle_like_template(header: str) -> str:
    """BELLE's template with another assistant header (BELLE's v1 prompts ended in ``"Assistant: "``)."""
    return (
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'system' -%}{{ message['content'] + '\\n\\n' }}"
        "{%- elif message['role'] == 'user' -%}{{ 'Human: ' + message['content'] + '\\n\\n' }}"
        "{%- elif message['role'] == 'assistant' -%}"
        "{{ '" + header + "' }}{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
        "{%- endif -%}{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ '" + header + "' }}{%- endif -%}"
    )


TEMPLATES = {
    "belle": BELLE_CHAT_TEMPLATE,                     # header "Assistant: \n"
    "space": belle_like_template("Assistant: "),      # header ends in a space
    "newline": belle_like_template("Assistant:\\n"),  # header ends in a newline
    "nothing": belle_like_template("Assistant:"),
}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _runs(tokenizer, encoded) -> list[str]:
    runs, current = [], []
    for token, bit in zip(encoded["input_ids"], encoded["assistant_masks"]):
        if bit:
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    if current:
        runs.append(tokenizer.decode(current))
    return runs


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_mask_is_exactly_each_reply_and_eos(tokenizer, name):
    template = TEMPLATES[name]
    encoded = tokenize_conversation(tokenizer, CONVERSATION, template)
    assert len(encoded["input_ids"]) == len(encoded["assistant_masks"])
    replies = [m["content"] + tokenizer.eos_token for m in CONVERSATION if m["role"] == "assistant"]
    assert _runs(tokenizer, encoded) == replies
    # Every turn ends with a trained eos token.
    eos_positions = [i for i, t in enumerate(encoded["input_ids"]) if t == tokenizer.eos_token_id]
    assert len(eos_positions) == 3 and all(encoded["assistant_masks"][i] == 1 for i in eos_positions)
    # The whole text is still there, in order.
    rendered = tokenizer.apply_chat_template(CONVERSATION, chat_template=template, tokenize=False)
    assert tokenizer.decode(encoded["input_ids"]) == rendered


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_prompt_tokens_match_inference(tokenizer, name):
    """Before each reply, the tokens are exactly those of the prompt tokenized alone with
    add_generation_prompt=True, i.e. what the model sees when it answers at inference.

    With a header ending in a space, a history re-tokenized in one string merges that space into
    the earlier replies (the very straddling this avoids), so there only the first turn compares.
    """
    template = TEMPLATES[name]
    encoded = tokenize_conversation(tokenizer, CONVERSATION, template)
    mask = encoded["assistant_masks"]
    starts = [i for i in range(len(mask)) if mask[i] == 1 and (i == 0 or mask[i - 1] == 0)]
    turns = [i for i, m in enumerate(CONVERSATION) if m["role"] == "assistant"]
    if name == "space":
        starts, turns = starts[:1], turns[:1]
    for start, turn in zip(starts, turns, strict=True):
        prompt = tokenizer.apply_chat_template(CONVERSATION[:turn], chat_template=template, tokenize=False,
                                               add_generation_prompt=True)
        assert encoded["input_ids"][:start] == tokenizer(prompt, add_special_tokens=False)["input_ids"]


def test_whole_string_masking_shifts_at_a_trailing_space(tokenizer):
    """The bug this module avoids: with a header ending in a space, tokenizing the conversation in
    one go (transformers' return_assistant_tokens_mask) trains a token holding the header's space."""
    template = TEMPLATES["space"]
    whole = tokenizer.apply_chat_template(CONVERSATION, chat_template=template, tokenize=True, return_dict=True,
                                          return_assistant_tokens_mask=True)
    naive_runs = _runs(tokenizer, {"input_ids": whole["input_ids"], "assistant_masks": whole["assistant_masks"]})
    replies = [m["content"] + tokenizer.eos_token for m in CONVERSATION if m["role"] == "assistant"]
    assert naive_runs != replies
    assert any(run.startswith(" ") for run in naive_runs)
    exact = tokenize_conversation(tokenizer, CONVERSATION, template)
    assert _runs(tokenizer, exact) == replies


def test_resolve_chat_template(tokenizer):
    from transformers import AutoTokenizer

    assert resolve_chat_template(tokenizer, "belle") == BELLE_CHAT_TEMPLATE
    assert resolve_chat_template(tokenizer, "auto") == tokenizer.chat_template  # the model's own
    bare = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    bare.chat_template = None
    assert resolve_chat_template(bare, "auto") == BELLE_CHAT_TEMPLATE
    with pytest.raises(BelleError, match="no chat template"):
        resolve_chat_template(bare, "model")
    bare.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    with pytest.raises(BelleError, match="generation"):
        resolve_chat_template(bare, "model")
    with pytest.raises(BelleError, match="not auto, belle, model"):
        resolve_chat_template(bare, "missing.jinja")


def test_template_file(tmp_path, tokenizer):
    path = tmp_path / "chat.jinja"
    path.write_text(TEMPLATES["space"], encoding="utf-8")
    assert resolve_chat_template(tokenizer, str(path)) == TEMPLATES["space"]


def test_decode_example_shows_only_trained_tokens(tokenizer):
    encoded = tokenize_conversation(tokenizer, CONVERSATION[1:3], BELLE_CHAT_TEMPLATE)
    full, trained = decode_example(tokenizer, encoded["input_ids"], encoded["assistant_masks"])
    assert full == "Human: \n你好，请介绍一下北京。\n\nAssistant: \n北京是中国的首都，历史悠久。</s>"
    assert trained == "北京是中国的首都，历史悠久。</s>"


@pytest.fixture(scope="module")
def sentencepiece_style_tokenizer():
    """A Llama/Mistral-style tokenizer: BPE with byte fallback behind a Metaspace pre-tokenizer that
    prepends "▁" to the start of every encoded string (prepend_scheme="first")."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from belle_hf.testing.sample_data import sample_text

    backend = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    specials = ["<unk>", "<s>", "</s>", "<pad>"] + [f"<0x{i:02X}>" for i in range(256)]
    backend.train_from_iterator(sample_text().splitlines(),
                                trainers.BpeTrainer(vocab_size=900, special_tokens=specials, show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>", pad_token="<pad>")
    tokenizer.chat_template = BELLE_CHAT_TEMPLATE
    return tokenizer


def test_sentencepiece_style_tokenizer_gets_no_spurious_space(sentencepiece_style_tokenizer):
    tokenizer = sentencepiece_style_tokenizer
    encoded = tokenize_conversation(tokenizer, CONVERSATION, BELLE_CHAT_TEMPLATE)
    replies = [m["content"] + tokenizer.eos_token for m in CONVERSATION if m["role"] == "assistant"]
    assert _runs(tokenizer, encoded) == replies
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    mask = encoded["assistant_masks"]
    first_trained = [tokens[i] for i in range(len(mask)) if mask[i] and not mask[i - 1]]
    assert all(not token.startswith("▁") for token in first_trained)
    # Each prompt is tokenized exactly as at inference (one string, add_generation_prompt=True).
    starts = [i for i in range(len(mask)) if mask[i] and not mask[i - 1]]
    turns = [i for i, m in enumerate(CONVERSATION) if m["role"] == "assistant"]
    for start, turn in zip(starts, turns, strict=True):
        prompt = tokenizer.apply_chat_template(CONVERSATION[:turn], tokenize=False, add_generation_prompt=True)
        assert encoded["input_ids"][:start] == tokenizer(prompt, add_special_tokens=False)["input_ids"]


# --------------------------------------------------------------------- batched == one by one
def random_conversations(count: int, seed: int) -> list[list[dict]]:
    """Conversations built to hit the boundaries: system turns or not, one to five turns, replies
    starting with spaces, newlines or punctuation, empty-looking and very long replies."""
    import random

    from belle_hf.testing.sample_data import sample_text

    rng = random.Random(seed)
    lines = [line for line in sample_text().splitlines() if line.strip()]
    starts = ["", " ", "  ", "\n", "，", "。", "!", "?", " -", "：", "\t", "...", "'", "\""]

    def text(long: bool = False) -> str:
        parts = rng.sample(lines, rng.randint(20, 40) if long else rng.randint(1, 3))
        return rng.choice(starts) + rng.choice(["", " ", "\n"]).join(parts) + rng.choice(["", " ", "\n", "。"])

    conversations = []
    for _ in range(count):
        messages = [{"role": "system", "content": text()}] if rng.random() < 0.3 else []
        for _ in range(rng.randint(1, 5)):
            messages.append({"role": "user", "content": text()})
            messages.append({"role": "assistant", "content": text(long=rng.random() < 0.1)})
        conversations.append(messages)
    return conversations


def piece_by_piece(tokenizer, messages, template):
    """The reference: every piece encoded in its own tokenizer call (the pre-batching algorithm)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, spans = render_jinja_template(conversations=[messages], chat_template=template,
                                            return_assistant_tokens_mask=True, **tokenizer.special_tokens_map)
    text, position, ids, mask = rendered[0], 0, [], []
    pieces = []
    for start, end in sorted(spans[0]):
        pieces += [(text[position:start], 0), (text[start:end], 1)]
        position = max(position, end)
    pieces.append((text[position:], 0))
    anchor = tokenizer.eos_token
    for piece, trained in pieces:
        if not piece:
            continue
        if ids:
            encoded = tokenizer(anchor + piece, add_special_tokens=False)["input_ids"]
            assert encoded[0] == tokenizer.eos_token_id
            encoded = encoded[1:]
        else:
            encoded = tokenizer(piece, add_special_tokens=False)["input_ids"]
        ids += encoded
        mask += [trained] * len(encoded)
    return {"input_ids": ids, "assistant_masks": mask}


@pytest.mark.parametrize("kind", ["byte-level-bpe", "sentencepiece-style"])
@pytest.mark.parametrize("name", ["belle", "space", "nothing"])
def test_batched_equals_one_by_one_on_random_conversations(kind, name, request):
    from belle_hf.train.template import tokenize_conversations

    tokenizer = request.getfixturevalue("tokenizer" if kind == "byte-level-bpe" else "sentencepiece_style_tokenizer")
    template = TEMPLATES[name]
    conversations = random_conversations(60, seed=zlib.crc32(f"{kind}-{name}".encode()))
    batched = tokenize_conversations(tokenizer, conversations, template)
    assert len(batched["input_ids"]) == len(conversations)
    for i, messages in enumerate(conversations):
        alone = tokenize_conversation(tokenizer, messages, template)
        assert batched["input_ids"][i] == alone["input_ids"], i
        assert batched["assistant_masks"][i] == alone["assistant_masks"], i
        assert alone == piece_by_piece(tokenizer, messages, template), i
        replies = [m["content"] + tokenizer.eos_token for m in messages if m["role"] == "assistant"]
        assert _runs(tokenizer, alone) == replies, i
