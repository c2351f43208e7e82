"""Test helpers: loopback Hub and OpenAI servers, and the offline fixtures tests build from.

The tiny model and the sample data are product features (``model: tiny``, ``sample:<key>``) and
live in :mod:`belle_hf.tiny_model` and :mod:`belle_hf.samples`; they are re-exported here
because the tests and benchmarks use them as fixtures.
"""

from belle_hf.samples import SAMPLE_FILES, sample_data_dir, sample_data_path
from belle_hf.tiny_model import TinyModelConfig, build_tiny_model, build_tiny_tokenizer, save_tiny_model

__all__ = [
    "SAMPLE_FILES",
    "TinyModelConfig",
    "build_tiny_model",
    "build_tiny_tokenizer",
    "sample_data_dir",
    "sample_data_path",
    "save_tiny_model",
]
