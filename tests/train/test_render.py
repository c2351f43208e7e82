"""Rendering a chat template once per conversation shape gives exactly what Jinja gives, and a
template that looks inside a content is never short-cut.

The templates are real: BELLE's, and the training templates TRL ships (Qwen2.5, Phi-3, Qwen3,
Llama 3...), read from the installed ``trl`` package."""

from __future__ import annotations

import logging
import random
import zlib
from pathlib import Path

import numpy as np
import pytest
from test_template import TEMPLATES, random_conversations, sentencepiece_style_tokenizer, tokenizer  # noqa: F401 (fixtures)

from belle_hf.templates import BELLE_CHAT_TEMPLATE
from belle_hf.train.render import ChatRenderer, why_jinja_is_needed


def trl_template(name: str) -> str:
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja").read_text(encoding="utf-8")


PASTING = ["qwen2_5_training", "qwen2_5", "phi3_training", "qwen3_instruct_2507_training",
           "deepseek_r1_distill_training", "qwen2_5_vl_training", "qwen3_vl_training"]
"""Templates proved to only paste contents (the VL ones through their ``content is string`` branch)."""
LOOKING = ["llama3_training", "qwen3_training", "llama3_1", "gemma_training"]
SPECIALS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}


def awkward_conversations(seed: int) -> list[list[dict]]:
    """Random conversations plus contents that could fool a placeholder scheme: format braces,
    the placeholder characters themselves, the eos text, whitespace-only and empty contents."""
    rng = random.Random(seed)
    odd = ["{0}", "{}", "}{", "{{x}}", "\ue0000\ue001", "\ue000", "</s>", "<|im_end|>", "  ", "\n", "",
           " padded ", "<think>x</think>y", "%s", "\\n"]
    conversations = random_conversations(30, seed)
    for _ in range(30):
        messages = [{"role": "system", "content": rng.choice(odd)}] if rng.random() < 0.5 else []
        for _ in range(rng.randint(1, 3)):
            messages.append({"role": "user", "content": rng.choice(odd) + rng.choice(odd)})
            messages.append({"role": "assistant", "content": "答" + rng.choice(odd)})
        conversations.append(messages)
    return conversations


def jinja_pieces(renderer: ChatRenderer, conversations) -> tuple[list[str], list[int], list[int]]:
    texts, rows, trained = [], [], []
    for row, messages in enumerate(conversations):
        for text, bit in renderer.render_with_jinja(messages):
            texts.append(text)
            rows.append(row)
            trained.append(bit)
    return texts, rows, trained


@pytest.mark.parametrize("name", ["belle", *PASTING, *LOOKING])
def test_pieces_are_exactly_jinjas_on_real_templates(name):
    template = BELLE_CHAT_TEMPLATE if name == "belle" else trl_template(name)
    renderer = ChatRenderer(template, **SPECIALS)
    assert (renderer.why_jinja is None) == (name == "belle" or name in PASTING), renderer.why_jinja
    conversations = awkward_conversations(zlib.crc32(name.encode()))
    if name == "gemma_training":  # Gemma refuses system turns
        conversations = [[m for m in c if m["role"] != "system"] for c in conversations]
    fast = renderer.pieces(conversations)
    assert fast == jinja_pieces(renderer, conversations)
    assert renderer.why_jinja is None or name in LOOKING  # no shape was ever wrong
    if renderer.why_jinja is None:
        assert renderer.shapes  # the short cut was really taken


def test_the_test_templates_all_take_the_short_cut():
    for name, template in TEMPLATES.items():
        assert why_jinja_is_needed(template) is None, name


LOOKING_INSIDE = {
    "strip": "{% for m in messages %}{{ m['content'].strip() }}{% endfor %}",
    "trim": "{% for m in messages %}{{ m.content | trim }}{% endfor %}",
    "startswith": "{% for m in messages %}{% if m.content.startswith('<think>') %}x{% endif %}{{ m.content }}{% endfor %}",
    "in": "{% for m in messages %}{% if '</think>' in m.content %}x{% endif %}{{ m.content }}{% endfor %}",
    "equals": "{% for m in messages %}{% if m.content == 'hi' %}x{% endif %}{{ m.content }}{% endfor %}",
    "index": "{% for m in messages %}{{ m.content[0] }}{% endfor %}",
    "slice": "{% for m in messages %}{{ m.content[:10] }}{% endfor %}",
    "length": "{% for m in messages %}{{ m.content | length }}{{ m.content }}{% endfor %}",
    "split via set": "{% for m in messages %}{% set c = m.content %}{{ c.split('</think>')[-1] }}{% endfor %}",
    "namespace": ("{% set ns = namespace(s='') %}{% for m in messages %}{% set ns.s = ns.s + m.content %}"
                  "{% endfor %}{{ ns.s | trim }}"),
    "set block filter": "{% for m in messages %}{% set c | upper %}{{ m.content }}{% endset %}{{ c }}{% endfor %}",
    "set block then trim": "{% for m in messages %}{% set c %}{{ m.content }}{% endset %}{{ c | trim }}{% endfor %}",
    "macro": "{% macro f(x) %}{{ x | trim }}{% endmacro %}{% for m in messages %}{{ f(m.content) }}{% endfor %}",
    "macro reading messages": "{% macro f() %}{{ messages[0].content }}{% endmacro %}{{ f() | trim }}",
    "whole message": "{% for m in messages %}{{ m }}{% endfor %}",
    "tojson": "{{ messages | tojson }}",
    "message items": "{% for m in messages %}{% for k, v in m.items() %}{{ v }}{% endfor %}{% endfor %}",
    "loop over content": "{% for m in messages %}{% for ch in m.content %}{{ ch }}{% endfor %}{% endfor %}",
    "next item": "{% for m in messages %}{{ loop.nextitem.content | trim if loop.nextitem else '' }}{% endfor %}",
    "percent": "{% for m in messages %}{{ '%-20s' % m.content }}{% endfor %}",
    "replace": "{% for m in messages %}{{ m.content | replace('a', 'b') }}{% endfor %}",
    "map": "{{ messages | map(attribute='content') | join(' ') }}",
    "include": "{% include 'other' %}",
    # Ways around the walk found in review: other names for loop and namespaces, dict methods...
    "loop item": ("{% for m in messages %}{% if loop['previtem'] and loop['previtem'].content == 'x' %}!"
                  "{% endif %}{{ m.content }}{% endfor %}"),
    "loop alias": ("{% for m in messages %}{% set l = loop %}{% if not l.first %}{{ l.previtem.content | trim }}"
                   "{% endif %}{% endfor %}"),
    "loop attr filter": "{% for m in messages %}{{ (loop | attr('nextitem') or {}).get('content', '') }}{% endfor %}",
    "namespace item": ("{% set ns = namespace(c='') %}{% for m in messages %}{% set ns.c = m.content %}{% endfor %}"
                       "{{ ns['c'] | trim }}"),
    "namespace alias": ("{% set ns = namespace(c='') %}{% set o = ns %}{% for m in messages %}{% set ns.c = m.content %}"
                        "{% endfor %}{{ o.c | upper }}"),
    "namespace to macro": ("{% macro f(n) %}{{ n.c | trim }}{% endmacro %}{% set ns = namespace(c='') %}"
                           "{% for m in messages %}{% set ns.c = m.content %}{% endfor %}{{ f(ns) }}"),
    "shadowed namespace": ("{% set m = namespace(content='') %}{% set m.content = '' %}"
                           "{% for m in messages %}{{ m.content | trim }}{% endfor %}"),
    "dict method": "{% for m in messages %}{{ m.copy().content | trim }}{% endfor %}",
    "dict method by item": "{% for m in messages %}{{ m['copy']().content | trim }}{% endfor %}",
    "get kept for later": "{% for m in messages %}{% set g = m.get %}{{ g('content') | trim }}{% endfor %}",
    "selectattr by content": ("{% if messages | selectattr('content', 'equalto', 'hi') | list %}!{% endif %}"
                              "{% for m in messages %}{{ m.content }}{% endfor %}"),
    "selectattr by a character": "{{ messages | selectattr('content.0', 'equalto', '<') | list | length }}",
    "autoescape": "{% autoescape true %}{% for m in messages %}{{ m.content }}{% endfor %}{% endautoescape %}",
    "generation in a set block": ("{% for m in messages %}{% set x %}<{% generation %}{{ m.content }}"
                                  "{% endgeneration %}>{% endset %}{{ x }}{% endfor %}"),
}


@pytest.mark.parametrize("name", sorted(LOOKING_INSIDE))
def test_a_template_that_looks_inside_a_content_is_rendered_by_jinja(name):
    template = LOOKING_INSIDE[name]
    reason = why_jinja_is_needed(template)
    assert reason and reason.startswith("line "), reason
    if name == "include":
        return
    renderer = ChatRenderer(template)
    conversations = [[{"role": "user", "content": " a<think>b</think>c "}, {"role": "assistant", "content": "hi"}],
                     [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  padded  "}]]
    assert renderer.pieces(conversations) == jinja_pieces(renderer, conversations)
    assert not renderer.shapes


PASTING_TEMPLATES = {
    "emptiness test": "{% for m in messages %}{% if m.content %}[{{ m.content }}]{% else %}<empty>{% endif %}{% endfor %}",
    "type test": "{% for m in messages %}{% if m.content is string %}{{ m['content'] + '|' }}{% endif %}{% endfor %}",
    "get": "{% for m in messages %}{{ m.get('content') ~ m.get('name', '-') }}{% endfor %}",
    "set and namespace": ("{% set ns = namespace(sys='') %}{% if messages[0].role == 'system' %}"
                          "{% set ns.sys = messages[0].content + '\\n' %}{% endif %}{{ ns.sys }}"
                          "{% for m in messages[1:] if m.role != 'system' %}{{ m.role }}: {{ m.content }}{% endfor %}"),
    "or default": "{% for m in messages %}{{ m.content or '(nothing)' }}{% endfor %}",
    "literal braces": "{% for m in messages %}{\"{{ m.role }}\": \"{{ m.content }}\"}{% endfor %}",
    "membership": "{% for m in messages %}{% if 'name' in m %}{{ m.name }}{% endif %}{{ m.content }}{% endfor %}",
    "structure filters": "{{ messages | length }}{{ (messages | first).content }}{{ (messages | last).role }}",
}


@pytest.mark.parametrize("name", sorted(PASTING_TEMPLATES))
def test_a_template_that_only_pastes_takes_the_short_cut_and_matches_jinja(name):
    template = PASTING_TEMPLATES[name]
    assert why_jinja_is_needed(template) is None
    renderer = ChatRenderer(template)
    conversations = awkward_conversations(zlib.crc32(name.encode()))
    conversations.append([{"role": "system", "content": ""}, {"role": "user", "content": "x", "name": "bob"}])
    assert renderer.pieces(conversations) == jinja_pieces(renderer, conversations)
    assert renderer.shapes and renderer.why_jinja is None


def test_a_wrong_short_cut_is_caught_on_the_first_conversation_of_its_shape(monkeypatch, caplog):
    """The proof is the guard; the check of each new shape against Jinja is the net under it."""
    import belle_hf.train.render as render

    monkeypatch.setattr(render, "why_jinja_is_needed", lambda template: None)
    renderer = ChatRenderer(LOOKING_INSIDE["trim"])
    conversations = [[{"role": "user", "content": "  spaced  "}], [{"role": "user", "content": " again "}]]
    with caplog.at_level(logging.WARNING, logger="belle_hf.train.render"):
        assert renderer.pieces(conversations) == jinja_pieces(renderer, conversations)
    assert renderer.why_jinja and "did not give Jinja's rendering" in caplog.text


def test_a_template_error_is_jinjas_own():
    import jinja2

    template = ("{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system role') }}"
                "{% endif %}{{ m.content }}{% endfor %}")
    renderer = ChatRenderer(template)
    assert renderer.pieces([[{"role": "user", "content": "fine"}]])[0] == ["fine"]
    with pytest.raises(jinja2.TemplateError, match="no system role"):
        renderer.pieces([[{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]])


# ------------------------------------------------------- one string per conversation == one per piece
@pytest.mark.parametrize("kind", ["byte-level-bpe", "sentencepiece-style"])
def test_joined_encoding_equals_piece_by_piece(kind, request):
    from belle_hf.train.template import _encode_joined, _encode_pieces, _is_clean_separator, chat_renderer

    tokenizer = request.getfixturevalue("tokenizer" if kind == "byte-level-bpe" else "sentencepiece_style_tokenizer")
    anchor, anchor_id = tokenizer.eos_token, tokenizer.eos_token_id
    assert _is_clean_separator(tokenizer, anchor_id)
    conversations = awkward_conversations(zlib.crc32(kind.encode()))  # replies holding "</s>" themselves too
    texts, rows, _ = chat_renderer(tokenizer, BELLE_CHAT_TEMPLATE).pieces(conversations)
    joined = _encode_joined(tokenizer, texts, rows, anchor, anchor_id)
    assert joined is not None
    separate = _encode_pieces(tokenizer, texts, rows, anchor, [anchor_id])
    np.testing.assert_array_equal(joined[0], separate[0])
    np.testing.assert_array_equal(joined[1], separate[1])
    # An anchor that is not what the tokenizer produces is caught by the count, never misused.
    assert _encode_joined(tokenizer, texts, rows, anchor, tokenizer.pad_token_id) is None


# ------------------------------------------------------------------------- what makes a shape
def test_fields_that_print_differently_make_different_shapes():
    renderer = ChatRenderer("{% for m in messages %}{{ m.role }}({{ m.weight }}): {{ m.content }}\n{% endfor %}")
    conversations = [[{"role": "user", "content": c, "weight": w}] for c, w in
                     [("a", 1), ("b", True), ("c", 1.0), ("d", 0), ("e", False), ("f", -0.0), ("g", 0.0)]]
    assert renderer.pieces(conversations) == jinja_pieces(renderer, conversations)
    assert len(renderer.shapes) == 7


@pytest.mark.parametrize("role", ["\ue0005\ue001", "\ue0000\ue001", ["user"], ("user",)])
def test_odd_roles_are_rendered_by_jinja(role):
    renderer = ChatRenderer("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}")
    conversations = [[{"role": role, "content": "hi"}], [{"role": role, "content": "\ue0000\ue001"}]]
    assert renderer.pieces(conversations) == jinja_pieces(renderer, conversations)
    assert not renderer.shapes


def test_a_string_subclass_content_is_rendered_by_jinja():
    import enum

    class Reply(str, enum.Enum):
        HELLO = "hello"

    renderer = ChatRenderer("{% for m in messages %}{{ m.content }}{% endfor %}")
    conversations = [[{"role": "user", "content": "x"}], [{"role": "user", "content": Reply.HELLO}]]
    assert renderer.pieces(conversations) == jinja_pieces(renderer, conversations) == (["x", "hello"], [0, 1], [0, 0])


def test_when_every_conversation_has_its_own_shape_learning_stops():
    renderer = ChatRenderer(BELLE_CHAT_TEMPLATE, eos_token="</s>")
    conversations = [[{"role": "user", "content": f"q{i}", "id": i}, {"role": "assistant", "content": f"a{i}"}]
                     for i in range(600)]
    assert renderer.pieces(conversations) == jinja_pieces(renderer, conversations)
    assert not renderer.learning and 64 < renderer.learned < 200
