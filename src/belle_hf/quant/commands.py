"""``belle quantize gptq`` and ``belle export gguf``: thin wrappers over :mod:`belle_hf.quant`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

quantize_app = typer.Typer(help="Quantize a model (GPTQ 4/8-bit) and report what it cost in quality.",
                           no_args_is_help=True)
export_app = typer.Typer(help="Export a model to other runtimes (GGUF for llama.cpp).", no_args_is_help=True)


@quantize_app.command("gptq")
def gptq(
    model_dir: Path = typer.Argument(..., help="Full-precision HF model folder."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for the quantized model and quality.json."),
    bits: int = typer.Option(4, "--bits", help="4 or 8."),
    group_size: int = typer.Option(128, "--group-size", help="Columns per quantization group; must divide every "
                                   "linear layer's input size (-1: per row)."),
    desc_act: bool = typer.Option(False, "--desc-act", help="Quantize columns by decreasing activation order."),
    calibration: str = typer.Option(..., "--calibration", help="Chinese calibration data: a BELLE corpus name, Hub "
                                    "dataset id, local file (any BELLE schema; .txt: one text per line) or "
                                    "sample:<key>."),
    n_samples: int = typer.Option(128, "--n-samples", help="Calibration conversations."),
    eval_data: Optional[str] = typer.Option(None, "--eval-data", help="Held-out text for perplexity (default: "
                                            "the records after the calibration ones)."),
    eval_samples: int = typer.Option(32, "--eval-samples", help="Held-out conversations for perplexity."),
    max_length: int = typer.Option(512, "--max-length", help="Token cap per sample."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
) -> None:
    """GPTQ-quantize MODEL_DIR with Chinese calibration data; print and save the quality report."""
    from belle_hf.quant.gptq import GPTQSettings, quantize_gptq

    settings = GPTQSettings(calibration=calibration, bits=bits, group_size=group_size, desc_act=desc_act,
                            n_samples=n_samples, eval_data=eval_data, eval_samples=eval_samples,
                            max_length=max_length)
    report = quantize_gptq(model_dir, output, settings, overwrite=overwrite)
    typer.echo(report.summary())
    typer.echo(f"saved {output} (report: {output / 'quality.json'})")


@export_app.command("gguf")
def gguf(
    model_dir: Path = typer.Argument(..., help="Full-precision HF Llama model folder (safetensors)."),
    output: Path = typer.Option(..., "-o", "--output", help="The .gguf file to write."),
    type: str = typer.Option("f16", "--type", help="f16|q8_0|q4_0 (K-quants: run llama.cpp's llama-quantize "
                             "on the f16 file)."),
) -> None:
    """Write MODEL_DIR as a GGUF file for llama.cpp, with tokenizer and chat template."""
    from belle_hf.quant.gguf_export import export_gguf

    path = export_gguf(model_dir, output, type)
    typer.echo(f"wrote {path} ({type}, {path.stat().st_size / 1024 / 1024:.2f} MiB)")


def register(app: typer.Typer) -> None:
    app.add_typer(quantize_app, name="quantize")
    app.add_typer(export_app, name="export")
