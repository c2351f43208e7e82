"""Files that ship with belle-hf: model card templates, recipes, Hub dataset cards, sample data.

In a checkout they live at the top of the repository (``model_cards/``, ``recipes/``,
``datasets_scripts/``) and ``src/belle_hf/resources/`` links to them; a built wheel carries
copies under ``belle_hf/resources/``. Either way this module finds them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def shipped_path(*parts: str) -> Path:
    """Path of a shipped file or folder, e.g. ``shipped_path("recipes", "deepspeed", "zero2.json")``."""
    return Path(str(resources.files("belle_hf"))).joinpath("resources", *parts)
