"""Self-instruct generation of Chinese instruction data, the way BELLE built its corpora.

Sample 3 seed tasks, ask an OpenAI-compatible model to write 10 more, parse the numbered
reply, drop what BELLE's filters drop, deduplicate with character ROUGE-L against the seeds
and everything kept (within a batch too), and append the survivors to a resumable JSON Lines
file ready for :func:`belle_hf.data.load`.

>>> from belle_hf.data.generate import GenerateConfig, generate
>>> from belle_hf.llm import EndpointConfig
>>> generate(GenerateConfig(seed_tasks="zh_seed_tasks.json", output="gen.jsonl", target=1000),
...          EndpointConfig("https://api.openai.com/v1", "gpt-4o-mini", temperature=1.0))
"""

from belle_hf.data.generate.filters import FILTER_NAMES, apply_filters, strip_gpt_phrases
from belle_hf.data.generate.parsing import Item, ParsedReply, parse_reply
from belle_hf.data.generate.prompt import DEFAULT_PROMPT, encode_prompt, load_prompt_template, prompt_hash
from belle_hf.data.generate.runner import GenerateConfig, GenerateResult, generate, read_kept_rows, report_path_for
from belle_hf.data.generate.seeds import DEFAULT_SEED_TASKS, SeedTask, load_seed_tasks
from belle_hf.data.generate.similarity import MinHashIndex, RougeLIndex, make_index, rouge_l

__all__ = [
    "DEFAULT_PROMPT",
    "DEFAULT_SEED_TASKS",
    "FILTER_NAMES",
    "GenerateConfig",
    "GenerateResult",
    "Item",
    "MinHashIndex",
    "ParsedReply",
    "RougeLIndex",
    "SeedTask",
    "apply_filters",
    "encode_prompt",
    "generate",
    "load_prompt_template",
    "load_seed_tasks",
    "make_index",
    "parse_reply",
    "prompt_hash",
    "read_kept_rows",
    "report_path_for",
    "rouge_l",
    "strip_gpt_phrases",
]
