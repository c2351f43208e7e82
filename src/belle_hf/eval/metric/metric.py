"""BELLE's GPT-4-as-judge score as an ``evaluate`` metric.

Load it from its folder or file (no Hub access needed)::

    import evaluate
    from belle_hf.eval import metric_path

    judge = evaluate.load(metric_path())          # .../belle_hf/eval/metric/metric.py
    result = judge.compute(
        predictions=answers, references=std_answers, questions=questions, classes=classes,
        prompts="eval_prompt.json",                # BELLE's eval/eval_prompt.json
        base_url="https://api.openai.com/v1", model="gpt-4", api_key_env="OPENAI_API_KEY",
    )

The endpoint settings are ``compute()`` keyword arguments (evaluate 0.4 forwards every
keyword that is not a feature to ``_compute``). They may also be given once to
``evaluate.load(path, prompts=..., base_url=..., model=...)``, which passes them to the
metric's constructor; ``compute()`` keywords override them.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate

from belle_hf.citation import BELLE_CITATION

_DESCRIPTION = """GPT-4 (or any OpenAI-compatible model) grades each answer from 0 to 1 with
BELLE's per-class prompt, as in the BELLE papers. Returns the mean score overall and per class,
score_wo_others (every class but math and code), the number of replies whose score could not be
read or whose request failed (never counted as 0), token usage and estimated cost."""

_CITATION = BELLE_CITATION  # the one citation of every card and metric

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): the model's answers.
    references (list of str): BELLE's std_answer of each question ("" where there is none).
    questions (list of str): the questions.
    classes (list of str): each question's class (matched to the prompt file case- and
        whitespace-insensitively; a class without a prompt is an error).
    prompts (str): path of the judge prompt file (BELLE's eval/eval_prompt.json). Required.
    base_url (str): OpenAI-compatible endpoint. Required.
    model (str): judge model name, e.g. "gpt-4". Required.
    api_key (str, optional) / api_key_env (str, default "OPENAI_API_KEY"): the key, or the
        environment variable holding it.
    concurrency (int, default 8), max_retries (int, default 5), timeout (float, default 120),
    temperature (float, default 0), seed (int, default 42), max_tokens (int, optional).
    cache_dir (str, optional): response cache folder; a rerun sends no answered request again.
Returns:
    overall, per_class, score_wo_others, others, n, n_scored, n_failed, scores (per answer,
    None where unreadable), usage, judge (settings and prompt-file hash, never the key).
Examples:
    >>> judge = evaluate.load("path/to/belle_hf/eval/metric")
    >>> judge.compute(predictions=["2"], references=["2"], questions=["1+1=?"], classes=["math"],
    ...               prompts="eval_prompt.json", base_url="http://127.0.0.1:8000/v1", model="gpt-4")
"""

ENDPOINT_KEYS = ("prompts", "base_url", "model", "api_key", "api_key_env", "concurrency", "max_retries",
                 "timeout", "temperature", "seed", "max_tokens", "cache_dir_judge", "cache_dir")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class BelleJudge(evaluate.Metric):
    """See the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any):
        # Endpoint settings given to evaluate.load() become defaults for compute(). ``cache_dir``
        # belongs to evaluate itself, so the judge's response cache is ``cache_dir_judge`` here.
        self._judge_defaults = {key: kwargs.pop(key) for key in list(kwargs)
                                if key in ENDPOINT_KEYS and key != "cache_dir"}
        super().__init__(*args, **kwargs)

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Value("string"),
                "references": datasets.Value("string"),
                "questions": datasets.Value("string"),
                "classes": datasets.Value("string"),
            }),
            reference_urls=["https://github.com/LianjiaTech/BELLE/tree/main/eval"],
        )

    def _compute(self, predictions, references, questions, classes, **kwargs) -> dict[str, Any]:
        from belle_hf.errors import BelleError
        from belle_hf.eval.judge import judge_rows
        from belle_hf.llm import EndpointConfig

        settings = {**self._judge_defaults, **kwargs}
        unknown = set(settings) - set(ENDPOINT_KEYS)
        if unknown:
            raise ValueError(f"unknown keyword(s) {sorted(unknown)}; expected some of {list(ENDPOINT_KEYS)}")
        missing = [key for key in ("prompts", "base_url", "model") if not settings.get(key)]
        if missing:
            raise BelleError(f"the belle_judge metric needs {', '.join(missing)} (compute() keywords)")
        endpoint_fields = {key: settings[key] for key in ("api_key", "api_key_env", "concurrency", "max_retries",
                                                          "timeout", "temperature", "seed", "max_tokens")
                           if key in settings}
        endpoint = EndpointConfig(base_url=settings["base_url"], model=settings["model"], **endpoint_fields)
        rows = [{"question": q, "class": c, "std_answer": r or "", "answer": p or ""}
                for p, r, q, c in zip(predictions, references, questions, classes)]
        cache = settings.get("cache_dir_judge") or settings.get("cache_dir")
        judged, summary = judge_rows(rows, settings["prompts"], endpoint, cache_dir=cache)
        return {**summary, "scores": [row["score"] for row in judged]}
