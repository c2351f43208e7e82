"""Answering the eval set: a local transformers model (optionally with a peft adapter), generating
in batches, or any OpenAI-compatible server.

Local generation pads on the left (decoder-only models continue from the right end), prompts
with the tokenizer's chat template or BELLE's ``Human: \\n...\\n\\nAssistant: \\n`` format, and
sorts questions by length so that a batch wastes little on padding. Both ways are resumable:
answered rows are appended to ``OUTPUT.partial`` at once, rows already in ``OUTPUT`` are
reused, and ``OUTPUT`` is written atomically at the end.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from belle_hf.errors import BelleError
from belle_hf.eval.eval_set import EvalQuestion, load_eval_set
from belle_hf.eval.resumable import ResumableJsonl, row_key
from belle_hf.hub.lineage import attach_evaluation
from belle_hf.interrupts import resume_hint
from belle_hf.io import check_output_is_not_input
from belle_hf.models import resolve_adapter
from belle_hf.redact import redact_url
from belle_hf.templates import render_belle_prompt

logger = logging.getLogger(__name__)


@dataclass
class GenerationSettings:
    """How answers are generated."""

    batch_size: int = 8
    """Questions per ``generate`` call (local model)."""
    max_new_tokens: int = 512
    temperature: float = 0.0
    """0 means greedy decoding (reproducible); above 0 samples."""
    top_p: float = 0.85
    """Nucleus sampling when ``temperature > 0`` (BELLE's own generation setting)."""
    device: str | None = None
    """``cpu``, ``cuda``, ...; default: CUDA when available."""
    belle_format: bool = False
    """Prompt with BELLE's format even when the tokenizer has its own chat template."""
    limit: int | None = None
    """Answer only the first ``limit`` questions."""


def answer_row(question: EvalQuestion, answer: str) -> dict[str, Any]:
    return {**question.as_row(), "answer": answer}


class LocalGenerator:
    """A causal LM (and optional peft adapter) answering questions in left-padded batches."""

    def __init__(self, model: str, adapter: str | os.PathLike | None = None,
                 settings: GenerationSettings | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model, adapter = resolve_adapter(model, adapter)  # a LoRA folder as MODEL means its base plus it
        self.settings = settings or GenerationSettings()
        device = self.settings.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype="auto").to(device)
        if adapter is not None:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, str(adapter))
        self.model.eval()
        self.device = device

    def prompt(self, question: str) -> str:
        messages = [{"role": "user", "content": question}]
        if self.tokenizer.chat_template and not self.settings.belle_format:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return render_belle_prompt(messages)

    def answer_batch(self, questions: list[str]) -> list[str]:
        import torch

        use_template = bool(self.tokenizer.chat_template) and not self.settings.belle_format
        # A chat template writes its own special tokens (bos and all); BELLE's plain format does not.
        inputs = self.tokenizer([self.prompt(q) for q in questions], return_tensors="pt", padding=True,
                                add_special_tokens=not use_template).to(self.device)
        sampling: dict[str, Any] = {"do_sample": False}
        if self.settings.temperature > 0:
            sampling = {"do_sample": True, "temperature": self.settings.temperature, "top_p": self.settings.top_p}
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=self.settings.max_new_tokens,
                                         pad_token_id=self.tokenizer.pad_token_id, **sampling)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        return [text.strip() for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    def answer_all(self, questions: list[str], on_answer: Callable[[int, str], None]) -> None:
        """Answer every question (longest first), calling ``on_answer(index, text)`` as each batch ends."""
        from tqdm.auto import tqdm

        order = sorted(range(len(questions)), key=lambda i: -len(questions[i]))
        size = self.settings.batch_size
        with tqdm(total=len(order), desc="generating", unit="q") as bar:
            for start in range(0, len(order), size):
                batch = order[start:start + size]
                for index, text in zip(batch, self.answer_batch([questions[i] for i in batch])):
                    on_answer(index, text)
                bar.update(len(batch))


def generate_answers(
    eval_set: str | os.PathLike,
    output: str | os.PathLike,
    model: str,
    adapter: str | os.PathLike | None = None,
    endpoint=None,
    settings: GenerationSettings | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> str:
    """Answer every question of ``eval_set`` into ``output`` (JSON Lines: the eval rows plus
    ``answer``); returns a one-line report.

    With ``endpoint`` (an :class:`belle_hf.llm.EndpointConfig`) the questions go to that server
    (``model`` is then the served name); otherwise ``model`` is a local folder or Hub id.
    """
    settings = settings or GenerationSettings()
    output = Path(output)
    check_output_is_not_input(output, [eval_set, adapter])
    questions = load_eval_set(eval_set)
    if settings.limit is not None:
        questions = questions[: settings.limit]
    source = {"model": model, "adapter": str(adapter) if adapter else None,
              "endpoint": redact_url(endpoint.base_url) if endpoint else None}
    keys = [row_key(i, q.question, source) for i, q in enumerate(questions)]
    store = ResumableJsonl(output)
    store.seed_from_output(keys, lambda i, row: row.get("question") == questions[i].question
                           and isinstance(row.get("answer"), str))
    todo = [i for i, key in enumerate(keys) if store.get(key) is None]
    resumed = len(questions) - len(todo)
    if resumed:
        logger.info("resuming: %d of %d questions already answered", resumed, len(questions))

    def keep(position: int, text: str) -> None:
        index = todo[position]
        store.add(keys[index], answer_row(questions[index], text))

    failures = 0
    with resume_hint(lambda: f"{sum(store.get(key) is not None for key in keys)} of {len(questions)} questions "
                             f"answered and kept in {store.partial}; rerun the same command to answer the rest"):
        if todo and endpoint is not None:
            from belle_hf.llm import ChatClient

            cache = cache_dir if cache_dir is not None else output.with_name(output.name + ".cache")
            client = ChatClient(endpoint, cache_dir=cache)

            def on_result(position, result) -> None:
                nonlocal failures
                if result.ok:
                    keep(position, result.text.strip())
                else:
                    failures += 1
                    logger.warning("question %d: %s", todo[position] + 1, result.error)

            client.complete_many([[{"role": "user", "content": questions[i].question}] for i in todo],
                                 on_result=on_result, progress="generating")
        elif todo:
            if adapter is not None and not Path(adapter).exists():
                raise BelleError(f"{adapter}: no such adapter folder")
            generator = LocalGenerator(model, adapter=adapter, settings=settings)
            generator.answer_all([questions[i].question for i in todo], keep)
    if failures:
        raise BelleError(f"{failures} of {len(todo)} questions got no answer from {redact_url(endpoint.base_url)}; "
                         f"{len(todo) - failures} answers are kept in {store.partial}, rerun to retry the rest")
    store.finish(store.get(key) for key in keys)
    if endpoint is None:  # answers of a local model folder are attached to its lineage record
        attach_evaluation(adapter or model, answers=output, settings=asdict(settings))
    return f"answered {len(questions)} questions ({resumed} reused from an earlier run) -> {output}"
