"""The token scan before a push reads every file that would be uploaded, whatever its size and
text encoding, and skips only tensor payloads; a refusal names the file and the line."""

from __future__ import annotations

import shutil

import pytest

TOKEN = "hf_" + "Zq7" * 11 + "x"  # the shape of a real Hugging Face token (37 characters)


def _refusal(folder, name) -> str:
    from belle_hf.errors import BelleError
    from belle_hf.hub.secrets import scan_for_secrets

    with pytest.raises(BelleError) as caught:
        scan_for_secrets(folder, [name])
    message = str(caught.value)
    assert TOKEN not in message and "\n" not in message  # one line, and never the secret itself
    return message


def test_token_at_the_end_of_a_3_mb_log_stops_a_real_push(tiny_model_dir, tmp_path, run_belle):
    from belle_hf.testing.hub_server import HubServer, clients_pointed_at

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    line = "step 10 loss 1.234 lr 2e-05 训练日志 https://huggingface.co/BelleGroup?revision=main\n"
    lines = 3 * 1024 * 1024 // len(line.encode()) + 1
    (folder / "train.log").write_text(line * lines + f"HF_TOKEN={TOKEN}\n", encoding="utf-8")
    assert (folder / "train.log").stat().st_size > 3 * 1024 * 1024
    with HubServer() as hub, clients_pointed_at(hub.url, tmp_path / "hf-cache"):
        code, _out, err = run_belle("hub", "push-model", folder, "belle-test/leaky-log")
        assert code == 1, err
        assert f"train.log: line {lines + 1}:" in err and "Hugging Face token" in err and TOKEN not in err
        assert ("model", "belle-test/leaky-log") not in hub.state.repos  # nothing was sent


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_token_in_utf16_and_utf32_text(encoding, tmp_path):
    text = "第一行 first line\n第二行\n密钥 key: " + TOKEN + " 结束\n"
    (tmp_path / "notes.txt").write_bytes(text.encode(encoding))  # "utf-16"/"utf-32" write a BOM
    assert "notes.txt: line 3:" in _refusal(tmp_path, "notes.txt")


def test_token_split_across_a_read_chunk(tmp_path):
    from belle_hf.hub.secrets import CHUNK_BYTES

    start = CHUNK_BYTES - len(TOKEN) // 2
    data = bytearray(b"x" * (start - 1) + b" " + TOKEN.encode() + b"\n")
    data[100:101] = b"\n"
    (tmp_path / "big.txt").write_bytes(bytes(data))
    assert "big.txt: line 2:" in _refusal(tmp_path, "big.txt")


def test_token_in_safetensors_metadata(tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"weight": np.zeros((64, 64), dtype=np.float32)}, tmp_path / "model.safetensors",
              metadata={"format": "pt", "note": f"pushed by {TOKEN}"})
    assert "__metadata__ 'note'" in _refusal(tmp_path, "model.safetensors")


def test_token_in_gguf_metadata(tmp_path):
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(tmp_path / "model.gguf"), "llama")
    writer.add_string("general.description", f"converted with {TOKEN}")
    writer.add_tensor("weight", np.zeros((32, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert "GGUF metadata key general.description" in _refusal(tmp_path, "model.gguf")


@pytest.mark.parametrize("secret, what", [
    ("https://alice:s3cr3t-pa55@api.example.com/v1", "credentials in a URL"),
    ("https://api.example.com/v1/chat?api_key=AbCdEf123456", "a secret in a URL's query"),
    ("OPENAI_API_KEY=sk-proj-" + "Ab1" * 10, "OpenAI-style API key"),
])
def test_credentials_in_urls_and_openai_keys(secret, what, tmp_path):
    (tmp_path / "run.sh").write_text(f"#!/bin/sh\n# endpoint\ncall {secret}\n", encoding="utf-8")
    message = _refusal(tmp_path, "run.sh")
    assert "run.sh: line 3:" in message and what in message


def test_the_token_this_machine_holds(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "plainvalue-42")  # not token-shaped: found because it is ours
    (tmp_path / "config.txt").write_bytes("token = plainvalue-42\n".encode("utf-16"))
    assert "config.txt: line 1:" in _refusal(tmp_path, "config.txt")


def test_no_false_alarm_on_a_real_model_folder(tiny_model_dir, tmp_path):
    """A tiny model (safetensors, tokenizer, config), a clean log with URLs and a random binary pass."""
    import os

    from belle_hf.hub.secrets import scan_for_secrets

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "train.log").write_text(
        "see https://huggingface.co/docs/hub?tokenizer=fast#usage and $TOKEN, hf_short, sk-short\n" * 1000)
    (folder / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (folder / "notes-utf16.txt").write_bytes("没有密钥 no secrets here\n".encode("utf-16"))
    scan_for_secrets(folder, sorted(p.name for p in folder.iterdir() if p.is_file()))



def test_token_in_a_binary_string_table(tmp_path):
    """NUL-separated strings (a pickle, a string table): the token after a NUL still counts."""
    (tmp_path / "state.bin").write_bytes(b"\x80\x04name\x00" + TOKEN.encode() + b"\x00\x01\x02" * 1000)
    assert "state.bin: line 1:" in _refusal(tmp_path, "state.bin")
