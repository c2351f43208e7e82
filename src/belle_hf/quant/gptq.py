"""GPTQ 4/8-bit quantization with GPTQModel, calibrated on Chinese conversations.

GPTQModel is the maintained successor of AutoGPTQ (abandoned, and removed from transformers,
optimum and peft). Its output is a standard GPTQ checkpoint (``quantization_config`` in
``config.json``) that ``AutoModelForCausalLM.from_pretrained`` loads through optimum+gptqmodel.
Without CUDA it quantizes and runs with its pure-torch kernels (``BACKEND.TORCH``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from belle_hf.errors import BelleError
from belle_hf.extras import require_extra
from belle_hf.hub.lineage import write_lineage
from belle_hf.io import atomic_dir
from belle_hf.quant.calibration import chat_texts, split_calibration_and_heldout, tokenize_calibration
from belle_hf.quant.perplexity import perplexity
from belle_hf.quant.report import QualityReport, weights_size

logger = logging.getLogger(__name__)

SUPPORTED_BITS = (4, 8)


@dataclass
class GPTQSettings:
    """How to quantize and how to measure the result."""

    calibration: str
    """BELLE corpus name, Hub dataset id or local file/folder (anything ``belle_hf.data.load`` reads)."""
    bits: int = 4
    """4 or 8."""
    group_size: int = 128
    """Columns sharing one scale; must divide every linear layer's input size (-1: one group per row)."""
    desc_act: bool = False
    """Quantize columns in order of decreasing activation (better quality, slower kernels)."""
    n_samples: int = 128
    """Calibration conversations (BELLE's GPTQ used 128 wikitext samples)."""
    eval_data: str | None = None
    """Held-out text for perplexity; default: the records after the calibration ones."""
    eval_samples: int = 32
    """Held-out conversations for perplexity."""
    max_length: int = 512
    """Token cap of each calibration / held-out sample."""
    damp_percent: float | None = None
    """GPTQ's Hessian dampening (GPTQModel's default when None)."""


def linear_in_features(model_dir: str | os.PathLike) -> dict[str, int]:
    """Input size of every quantizable linear layer (lm_head excluded), from the config alone.

    The model is built on the meta device, so no weights are read.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {
        name: module.in_features
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head")
    }


def validate_group_size(group_size: int, in_features: dict[str, int]) -> None:
    """Raise :class:`BelleError` unless ``group_size`` is -1 or divides every layer's input size."""
    if group_size == -1:
        return
    if group_size < 1:
        raise BelleError(f"--group-size must be -1 or a positive number, not {group_size}")
    bad = sorted({size for size in in_features.values() if size % group_size})
    if bad:
        valid = sorted(g for g in (16, 32, 64, 128, 256) if all(size % g == 0 for size in in_features.values()))
        raise BelleError(
            f"--group-size {group_size} does not divide the input size of every linear layer "
            f"(sizes {bad} are not multiples of it); choose one of {valid or 'none'} or -1"
        )


QUANT_LOG_DIR = "quant_logs"
"""GPTQModel's per-module quantization logs (loss, damping, time), kept in the output folder."""


@contextlib.contextmanager
def _gptqmodel_logs_in(path: Path):
    """Point GPTQModel's per-module logs at ``path``.

    GPTQModel 7.6 writes them to ``./logs`` of the current directory, from a module constant with
    no setting; without this every run litters the user's working directory.
    """
    from gptqmodel.looper import loop_processor

    previous = loop_processor._PROJECT_LOG_DIR
    loop_processor._PROJECT_LOG_DIR = Path(path)
    try:
        yield
    finally:
        loop_processor._PROJECT_LOG_DIR = previous


def _quantize_with_gptqmodel(model_dir: Path, out_dir: Path, settings: GPTQSettings, samples, tokenizer) -> str:
    """Run GPTQModel and save the checkpoint to ``out_dir``; returns the quantizer's name and version."""
    import torch

    # GPTQModel sizes its CPU thread pool from this; leaving it unset oversubscribes small machines.
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(os.cpu_count() or 1))
    # GPTQModel logs its banner and progress on stdout; stdout is kept for the report.
    with contextlib.redirect_stdout(sys.stderr):
        import gptqmodel
        from gptqmodel import BACKEND, GPTQModel, QuantizeConfig

        extra = {} if settings.damp_percent is None else {"damp_percent": settings.damp_percent}
        # act_group_aware is GPTQModel's default ordering; desc_act replaces it.
        config = QuantizeConfig(bits=settings.bits, group_size=settings.group_size, desc_act=settings.desc_act,
                                act_group_aware=not settings.desc_act, **extra)
        backend = BACKEND.AUTO if torch.cuda.is_available() else BACKEND.TORCH
        model = GPTQModel.load(str(model_dir), config)
        # calibration_data_min_length=1: GPTQModel drops samples of 10 tokens or fewer by default,
        # which would discard short Chinese Q&A turns.
        with _gptqmodel_logs_in(out_dir / QUANT_LOG_DIR):
            model.quantize(samples, tokenizer=tokenizer, backend=backend, calibration_data_min_length=1)
        model.save(str(out_dir))
    return f"gptqmodel {gptqmodel.__version__}"


def quantize_gptq(
    model_dir: str | os.PathLike, out_dir: str | os.PathLike, settings: GPTQSettings, overwrite: bool = False
) -> QualityReport:
    """Quantize ``model_dir`` with GPTQ into ``out_dir`` and write ``quality.json`` there.

    The checkpoint is built in a temporary folder beside ``out_dir`` and renamed into place
    only once it has loaded again with ``AutoModelForCausalLM`` and been measured, so a
    failure never leaves a half-written model behind.
    """
    require_extra("quant", "GPTQ quantization", "gptqmodel", "optimum")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if not (model_dir / "config.json").is_file():
        raise BelleError(f"{model_dir}: not a model folder (no config.json)")
    if settings.bits not in SUPPORTED_BITS:
        raise BelleError(f"--bits must be 4 or 8, not {settings.bits}")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise BelleError(f"{out_dir} exists and is not empty; remove it or pass --overwrite")
    validate_group_size(settings.group_size, linear_in_features(model_dir))

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    calibration_rows, heldout_rows = split_calibration_and_heldout(
        settings.calibration, settings.n_samples, settings.eval_samples, settings.eval_data
    )
    samples = tokenize_calibration(chat_texts(calibration_rows, tokenizer), tokenizer, settings.max_length)
    heldout_texts = chat_texts(heldout_rows, tokenizer)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    fp_model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto", device_map=device)
    ppl_fp, heldout_tokens = perplexity(fp_model, tokenizer, heldout_texts, settings.max_length)
    del fp_model

    with atomic_dir(out_dir) as work_dir:
        quantizer = _quantize_with_gptqmodel(model_dir, work_dir, settings, samples, tokenizer)
        tokenizer.save_pretrained(work_dir)
        # GPTQModel rewrites generation_config.json (it turns sampling on); keep the model's own.
        if (model_dir / "generation_config.json").is_file():
            shutil.copyfile(model_dir / "generation_config.json", work_dir / "generation_config.json")
        # Proves the checkpoint loads the standard way before it is published.
        with contextlib.redirect_stdout(sys.stderr):
            quantized = AutoModelForCausalLM.from_pretrained(work_dir, device_map=device)
        ppl_quantized, _ = perplexity(quantized, tokenizer, heldout_texts, settings.max_length)
        del quantized
        report = QualityReport(
            method="gptq",
            bits=settings.bits,
            group_size=settings.group_size,
            desc_act=settings.desc_act,
            calibration_source=str(settings.calibration),
            calibration_samples=len(samples),
            heldout_source=str(settings.eval_data or settings.calibration),
            heldout_samples=len(heldout_texts),
            heldout_tokens=heldout_tokens,
            ppl_fp=ppl_fp,
            ppl_quantized=ppl_quantized,
            size_before_bytes=weights_size(model_dir),
            size_after_bytes=weights_size(work_dir),
            base_model=str(model_dir),
            quantizer=quantizer,
            seconds=round(time.perf_counter() - started, 2),
        )
        report.save(work_dir)
        write_lineage(work_dir, stage="quantize", parent=model_dir, settings={"method": "gptq", **vars(settings)})
    return report
