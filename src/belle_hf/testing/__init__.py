"""Offline fixtures: a tiny random Llama model, a tokenizer trained in seconds, and sample data.

Used by the tests, the quickstart and the benchmarks, since no hub is reachable there.
"""

from belle_hf.testing.sample_data import SAMPLE_FILES, sample_data_dir, sample_data_path
from belle_hf.testing.tiny import TinyModelConfig, build_tiny_model, build_tiny_tokenizer, save_tiny_model

__all__ = [
    "SAMPLE_FILES",
    "TinyModelConfig",
    "build_tiny_model",
    "build_tiny_tokenizer",
    "sample_data_dir",
    "sample_data_path",
    "save_tiny_model",
]
