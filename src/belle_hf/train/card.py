"""What ``belle train`` leaves beside the weights so that the run can be published truthfully:
a portable adapter config, the lineage record (``belle_lineage.json``) and the model card draft.

The card comes from the card family of :mod:`belle_hf.hub.cards` (the same templates every
push uses), so what ``belle hub push-*`` publishes later is this card with the push's options.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from belle_hf.train.recipe import SAMPLE_PREFIX, TINY_MODEL, Recipe


def _source_file(path: str) -> Path | None:
    """The local file (or folder) behind a data source, if it is one."""
    if path.startswith(SAMPLE_PREFIX):
        from belle_hf.testing.sample_data import SAMPLE_FILES, sample_data_path

        key = path[len(SAMPLE_PREFIX):]
        return sample_data_path(key) if key in SAMPLE_FILES else None
    local = Path(path).expanduser()
    return local if local.exists() else None


def data_provenance(recipe: Recipe) -> list[dict[str, Any]]:
    """Each training source as the card and the lineage record show it: its Hub dataset id, or for
    a local file its name and SHA-256 (a local file is not a Hub id), with weight and cap."""
    from belle_hf.hub.cards import dataset_hub_id
    from belle_hf.hub.lineage import content_hash, file_sha256, output_hashes

    sources = []
    for source in recipe.data:
        entry: dict[str, Any] = {"source": source.path, "hub_id": None, "weight": source.weight,
                                 "max_samples": source.max_samples}
        local = _source_file(source.path)
        if local is not None:
            entry["source"] = source.path if source.path.startswith(SAMPLE_PREFIX) else local.name
            entry["sha256"] = file_sha256(local) if local.is_file() else content_hash(output_hashes(local))
        else:
            entry["hub_id"] = dataset_hub_id(source.path)
        sources.append(entry)
    return sources


def base_model_reference(recipe: Recipe, model_path: str | os.PathLike | None = None) -> str:
    """The parent a run records: the recipe's Hub id, or the local folder it loaded (``tiny`` is built
    into ``OUTPUT_DIR/base-model``)."""
    if recipe.model == TINY_MODEL and model_path is not None:
        return str(model_path)
    return recipe.model


def training_card(recipe: Recipe, metrics: dict[str, Any] | None = None, folder: str | os.PathLike | None = None):
    """The card of a run of ``recipe``: from ``folder``'s records when given (after training), else
    from the recipe alone (a preview of what a run would publish)."""
    from belle_hf.hub.cards import CardConfig, Provenance, build_model_card, card_for_folder
    from belle_hf.models import is_hub_id

    kind = "adapter" if recipe.is_peft else "model"
    name = Path(recipe.output_dir).name
    if folder is not None:
        return build_model_card(card_for_folder(folder, name, kind))
    provenance = Provenance(recipe=recipe.to_dict(), metrics=metrics or {})
    provenance.lineage = {"stage": "train", "parent": {"id": recipe.model} if is_hub_id(recipe.model) else None,
                          "data": data_provenance(recipe), "settings": {"recipe": recipe.to_dict()}}
    return build_model_card(CardConfig(repo_id=name, kind=kind, base_model=provenance.base_model(kind),
                                       datasets=provenance.hub_datasets(), provenance=provenance,
                                       description=recipe.description.strip()))


def record_run(output_dir: str | os.PathLike, recipe: Recipe, model_path: str | os.PathLike | None = None) -> None:
    """After ``belle train`` saved weights, ``recipe.yaml`` and ``metrics.json`` to ``output_dir``:
    make the adapter's base reference portable, write the lineage record and the card draft."""
    import json

    from belle_hf.hub.lineage import portable, write_lineage
    from belle_hf.io import atomic_write_text
    from belle_hf.models import is_adapter_folder, make_adapter_portable

    output_dir = Path(output_dir)
    if is_adapter_folder(output_dir):
        make_adapter_portable(output_dir)
    metrics_file = output_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else {}
    summary = {key: metrics[key] for key in ("train", "eval", "examples") if key in metrics}
    write_lineage(output_dir, stage="train", parent=base_model_reference(recipe, model_path),
                  relation="adapter" if recipe.is_peft else "finetune", data=data_provenance(recipe),
                  settings={"recipe": portable(recipe.to_dict()), "metrics": summary})
    atomic_write_text(output_dir / "README.md", str(training_card(recipe, folder=output_dir)))
