"""``belle testing ...``: build the offline fixtures."""

from __future__ import annotations

from pathlib import Path

import typer

testing_app = typer.Typer(help="Offline fixtures: tiny model, tokenizer and sample data.", no_args_is_help=True)


@testing_app.command("tiny-model")
def tiny_model(
    out_dir: Path = typer.Argument(..., help="Folder to write the model and tokenizer to."),
    vocab_size: int = typer.Option(1024, help="Vocabulary size of the BPE tokenizer."),
    layers: int = typer.Option(2, help="Number of transformer layers."),
    hidden_size: int = typer.Option(64, help="Hidden size."),
) -> None:
    """Build a tiny random Llama model and BPE tokenizer (BELLE chat template) in OUT_DIR."""
    from belle_hf.tiny_model import TinyModelConfig, save_tiny_model

    config = TinyModelConfig(vocab_size=vocab_size, num_hidden_layers=layers, hidden_size=hidden_size,
                             intermediate_size=2 * hidden_size)
    path = save_tiny_model(out_dir, config)
    typer.echo(f"tiny model written to {path}")


@testing_app.command("sample-data")
def sample_data(out_dir: Path = typer.Argument(..., help="Folder to copy the bundled sample files to.")) -> None:
    """Write the bundled sample data files (every BELLE schema) to OUT_DIR."""
    from belle_hf.samples import write_sample_files

    for path in write_sample_files(out_dir):
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.add_typer(testing_app, name="testing")
