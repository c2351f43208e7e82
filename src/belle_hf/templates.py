"""BELLE's prompt format as a Hugging Face chat template.

BELLE trained every model on ``Human: \\n{user}\\n\\nAssistant: \\n{assistant}</s>`` and later
turns are appended the same way. As a Jinja chat template with ``{% generation %}`` markers,
TRL's ``assistant_only_loss`` and ``apply_chat_template(return_assistant_tokens_mask=True)``
can tell which tokens carry loss. The assistant header is part of the generation prompt, so
``add_generation_prompt=True`` ends a prompt exactly where BELLE's models start answering.
"""

from __future__ import annotations

from typing import Any

BELLE_USER_PREFIX = "Human: \n"
BELLE_ASSISTANT_PREFIX = "Assistant: \n"
BELLE_TURN_SEPARATOR = "\n\n"

BELLE_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{{ message['content'] + '\\n\\n' }}"
    "{%- elif message['role'] == 'user' -%}"
    "{{ 'Human: \\n' + message['content'] + '\\n\\n' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ 'Assistant: \\n' }}{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'Assistant: \\n' }}{%- endif -%}"
)


def render_belle_prompt(messages: list[dict[str, Any]], eos_token: str = "</s>", add_generation_prompt: bool = True) -> str:
    """Render ``messages`` in BELLE's format without a tokenizer (for API servers and logs).

    Gives the same string as ``tokenizer.apply_chat_template(messages, tokenize=False)``
    with :data:`BELLE_CHAT_TEMPLATE`.
    """
    parts: list[str] = []
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "system":
            parts.append(content + BELLE_TURN_SEPARATOR)
        elif role == "user":
            parts.append(BELLE_USER_PREFIX + content + BELLE_TURN_SEPARATOR)
        elif role == "assistant":
            parts.append(BELLE_ASSISTANT_PREFIX + content + eos_token)
    if add_generation_prompt:
        parts.append(BELLE_ASSISTANT_PREFIX)
    return "".join(parts)
