"""Publishing on the Hub (any ``HF_ENDPOINT``).

- :mod:`belle_hf.hub.push`: ``push_model``, ``push_adapter``, ``push_quantized``, ``push_xor``,
  ``push_dataset``; secrets, caches and training state never uploaded.
- :mod:`belle_hf.hub.cards`: the card family (one template per kind in ``model_cards/``), built from
  a folder's records and validated offline (license, widget, dataset ids, YAML).
- :mod:`belle_hf.hub.lineage`: ``belle_lineage.json``, written by every stage that makes a model folder.
- :mod:`belle_hf.hub.ignore`: which files of a folder are never published.
- :mod:`belle_hf.hub.xor`: lossless tensor-wise XOR diffs for fine-tunes of license-restricted
  bases, and BELLE's legacy ``.enc`` files.

Submodules are imported on use, so ``import belle_hf.hub`` stays light.
"""
