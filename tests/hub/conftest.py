"""Fixtures of the hub tests: a loopback Hub server and the clients pointed at it."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def hub_server():
    """One loopback Hub for the session (``belle_hf.testing.hub_server``)."""
    from belle_hf.testing.hub_server import HubServer

    with HubServer() as server:
        yield server


@pytest.fixture
def hub(hub_server, tmp_path):
    """The loopback Hub, with huggingface_hub/transformers/datasets pointed at it (xet off,
    offline mode off, caches in tmp_path) for the duration of the test."""
    from belle_hf.testing.hub_server import clients_pointed_at

    with clients_pointed_at(hub_server.url, tmp_path / "hf-cache"):
        yield hub_server


def make_finetune(base_dir, out_dir):
    """A 'fine-tune' of the tiny model: some tensors changed, some equal to the base, 8 new
    vocabulary rows (embeddings and lm_head grow), saved in several safetensors shards."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    tokenizer.add_tokens([f"<extra_{i}>" for i in range(8)])
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "layers.0." in name or "embed_tokens" in name:
                param.add_(torch.randn_like(param) * 0.01)
    model.save_pretrained(out_dir, max_shard_size="200KB")
    tokenizer.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def finetuned_dir(tiny_model_dir, tmp_path_factory):
    return make_finetune(tiny_model_dir, tmp_path_factory.mktemp("finetuned"))
