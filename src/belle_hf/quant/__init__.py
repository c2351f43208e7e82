"""Quantization: GPTQ 4/8-bit with Chinese calibration data and a quality report, GGUF export.

>>> from belle_hf.quant import GPTQSettings, quantize_gptq, export_gguf
>>> report = quantize_gptq("my-model", "my-model-gptq", GPTQSettings(bits=4, calibration="train_0.5M_CN"))
>>> print(report.summary())
>>> export_gguf("my-model", "my-model.q8_0.gguf", "q8_0")

Heavy libraries (gptqmodel, gguf, torch) load inside the functions that need them.
"""

from belle_hf.quant.calibration import chat_texts, split_calibration_and_heldout
from belle_hf.quant.gguf_export import GGUF_TYPES, export_gguf
from belle_hf.quant.gptq import GPTQSettings, quantize_gptq, validate_group_size
from belle_hf.quant.perplexity import perplexity
from belle_hf.quant.report import QualityReport, weights_size

__all__ = [
    "GGUF_TYPES",
    "GPTQSettings",
    "QualityReport",
    "chat_texts",
    "export_gguf",
    "perplexity",
    "quantize_gptq",
    "split_calibration_and_heldout",
    "validate_group_size",
    "weights_size",
]
