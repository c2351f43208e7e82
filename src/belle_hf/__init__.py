"""belle-hf: BELLE's Chinese instruction-tuning work on the Hugging Face stack.

The Python API is the product; the ``belle`` command and the YAML recipes are thin
layers over it. Each sub-package is one stage of the pipeline:

- :mod:`belle_hf.data`: BELLE corpora normalized to TRL's conversational ``messages`` format.
- :mod:`belle_hf.train`: TRL ``SFTTrainer`` recipes (full, LoRA, QLoRA).
- :mod:`belle_hf.eval`: GPT-4-as-judge evaluation on BELLE's eval set.
- :mod:`belle_hf.hub`: Hub publishing, model/dataset cards and XOR-diff releases.
- :mod:`belle_hf.quant`: GPTQ and GGUF export.
- :mod:`belle_hf.chat`: streaming terminal chat and OpenAI-compatible serving.
- :mod:`belle_hf.samples` and :mod:`belle_hf.tiny_model`: bundled sample data and the tiny offline
  model (``sample:<key>``, ``model: tiny``) that the quickstart trains with no download.
- :mod:`belle_hf.testing`: loopback Hub and OpenAI servers for tests.
"""

__version__ = "0.1.0"

from belle_hf.io import keep_ordinary_modes_for_safetensors as _keep_modes

_keep_modes()  # weight files get the same mode as every other written file (see the function)
