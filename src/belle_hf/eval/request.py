"""The judge request for one answer, in the layout of BELLE's own examples.

BELLE's prompt file shows the judge input as the class prompt followed by ``问题:``,
``标准回答:`` and ``模型回答:``. The reference is included only when the row has one: the
generation, brainstorming and most rewrite questions have an empty ``std_answer`` and their
prompts grade against criteria instead.
"""

from __future__ import annotations

from belle_hf.eval.eval_set import JudgePrompt

Messages = list[dict[str, str]]


def build_judge_prompt(prompt: JudgePrompt, question: str, std_answer: str, answer: str) -> str:
    """The text the judge reads: instruction, question, reference (if any), the model's answer."""
    parts = [prompt.prompt.strip(), f"问题:\n{question.strip()}"]
    if std_answer and std_answer.strip():
        parts.append(f"标准回答:\n{std_answer.strip()}")
    parts.append(f"模型回答:\n{answer.strip()}")
    return "\n\n".join(parts)


def build_judge_messages(prompt: JudgePrompt, question: str, std_answer: str, answer: str) -> Messages:
    """The chat messages sent to the judge: one user turn, as BELLE sent it."""
    return [{"role": "user", "content": build_judge_prompt(prompt, question, std_answer, answer)}]
