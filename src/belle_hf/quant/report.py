"""The quality report written beside a quantized model (``quality.json``) and printed."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from belle_hf.io import atomic_write_text

REPORT_FILE = "quality.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")

# Published anchor for readers of the report (not reproduced here): GPTQ paper / GPTQ-for-LLaMa,
# LLaMA-7B on wikitext2, fp16 5.68 vs GPTQ 4-bit group size 128: 5.85.
ANCHOR = "LLaMA-7B wikitext2 perplexity: fp16 5.68, GPTQ 4-bit g128 5.85 (+3%)"


def weights_size(folder: str | os.PathLike) -> int:
    """Bytes of the weight files in a model folder (safetensors/bin shards), tokenizer excluded."""
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))


@dataclass
class QualityReport:
    """What quantizing cost: held-out perplexity before and after, and the size on disk."""

    method: str
    bits: int
    group_size: int
    desc_act: bool
    calibration_source: str
    calibration_samples: int
    heldout_source: str
    heldout_samples: int
    heldout_tokens: int
    ppl_fp: float
    ppl_quantized: float
    size_before_bytes: int
    size_after_bytes: int
    base_model: str
    quantizer: str
    seconds: float
    anchor: str = field(default=ANCHOR)

    @property
    def ppl_increase(self) -> float:
        """Relative perplexity increase (0.03 = +3%)."""
        return self.ppl_quantized / self.ppl_fp - 1.0

    @property
    def size_ratio(self) -> float:
        return self.size_after_bytes / self.size_before_bytes if self.size_before_bytes else float("nan")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ppl_increase"] = round(self.ppl_increase, 6)
        data["size_ratio"] = round(self.size_ratio, 6)
        return data

    def save(self, folder: str | os.PathLike) -> Path:
        path = Path(folder) / REPORT_FILE
        atomic_write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "QualityReport":
        data = json.loads((Path(folder) / REPORT_FILE).read_text(encoding="utf-8"))
        names = cls.__dataclass_fields__.keys()
        return cls(**{key: value for key, value in data.items() if key in names})

    def summary(self) -> str:
        mib = 1024 * 1024
        return "\n".join([
            f"{self.method} {self.bits}-bit, group size {self.group_size}, desc_act={self.desc_act} ({self.quantizer})",
            f"calibration: {self.calibration_samples} samples from {self.calibration_source}",
            f"held-out perplexity ({self.heldout_samples} samples, {self.heldout_tokens} tokens from "
            f"{self.heldout_source}): fp {self.ppl_fp:.3f} -> quantized {self.ppl_quantized:.3f} "
            f"({self.ppl_increase:+.2%})",
            f"weights on disk: {self.size_before_bytes / mib:.2f} MiB -> {self.size_after_bytes / mib:.2f} MiB "
            f"({self.size_ratio:.2f}x)",
            f"reference: {self.anchor}",
        ])
