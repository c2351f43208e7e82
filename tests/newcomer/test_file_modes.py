"""Weight files get the mode every other written file gets (safetensors 0.8 writes them 0o600)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# One fresh process (its own umask): the tiny base model as `model: tiny` builds it, a LoRA
# adapter saved by peft as `belle train` saves it, and `belle merge`'s merged model.
SAVE_ALL = """
import sys

import pytest
from pathlib import Path
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
from belle_hf.testing import TinyModelConfig, save_tiny_model
from belle_hf.train.merge import merge_adapter
out = Path(sys.argv[1])
save_tiny_model(out / "base", TinyModelConfig(num_hidden_layers=1))
model = AutoModelForCausalLM.from_pretrained(out / "base")
get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(out / "lora")
merge_adapter(out / "lora", out / "merged")
"""


@pytest.mark.slow
def test_model_adapter_and_merged_weights_follow_the_umask(tmp_path):
    umask = 0o027  # neither safetensors' 0o600 nor a hard-coded 0o644
    done = subprocess.run([sys.executable, "-c", SAVE_ALL, str(tmp_path)], capture_output=True, text=True,
                          timeout=300, preexec_fn=lambda: os.umask(umask))
    assert done.returncode == 0, done.stderr[-2000:]
    expected = oct(0o666 & ~umask)
    for folder, weights, beside in [("base", "model.safetensors", "config.json"),
                                    ("lora", "adapter_model.safetensors", "adapter_config.json"),
                                    ("merged", "model.safetensors", "config.json")]:
        assert oct((tmp_path / folder / beside).stat().st_mode & 0o777) == expected
        assert oct((tmp_path / folder / weights).stat().st_mode & 0o777) == expected, f"{folder}/{weights}"
