"""BELLE's data: corpora registry, schema normalization to TRL's ``messages`` format, loading.

>>> from belle_hf.data import load
>>> dataset = load("train_0.5M_CN", streaming=True)          # from the Hub or HF_ENDPOINT
>>> dataset = load("my_data.jsonl")                          # any BELLE schema, auto-detected
>>> next(iter(dataset))["messages"]
[{'role': 'user', 'content': ...}, {'role': 'assistant', 'content': ...}]
"""

from belle_hf.data.convert import ConvertReport, convert_file
from belle_hf.data.files import iter_records
from belle_hf.data.loading import load
from belle_hf.data.registry import CORPORA, Corpus, resolve_corpus
from belle_hf.data.schemas import SCHEMAS, detect_schema, normalize

__all__ = [
    "CORPORA",
    "SCHEMAS",
    "ConvertReport",
    "Corpus",
    "convert_file",
    "detect_schema",
    "iter_records",
    "load",
    "normalize",
    "resolve_corpus",
]
