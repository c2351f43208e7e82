"""``belle quantize gptq`` on the tiny model: a loadable GPTQ checkpoint and a true quality report."""

from __future__ import annotations

import json
import math

import pytest

from belle_hf.errors import BelleError
from belle_hf.quant import validate_group_size
from belle_hf.quant.gptq import linear_in_features
from belle_hf.testing import sample_data_path

CALIBRATION = sample_data_path("messages")


def _fp_perplexity_by_hand(model_dir, texts) -> float:
    """Perplexity straight from the model's token log-probabilities, without the library."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    nll, count = 0.0, 0
    with torch.inference_mode():
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
            logprobs = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
            nll -= logprobs.gather(1, ids[0, 1:, None]).sum().item()
            count += ids.shape[1] - 1
    return math.exp(nll / count)


@pytest.mark.slow
def test_quantize_gptq_4bit_cli(run_belle, tiny_model_dir, tmp_path, tmp_path_factory, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "tiny-gptq"
    workdir = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(workdir)
    code, stdout, err = run_belle("quantize", "gptq", tiny_model_dir, "-o", out, "--bits", "4", "--group-size", "32",
                                  "--calibration", CALIBRATION, "--n-samples", "16", "--eval-samples", "8")
    assert code == 0, err
    # GPTQModel's per-module logs land in the output folder, not in the working directory.
    assert list(workdir.iterdir()) == []
    assert any((out / "quant_logs").iterdir())

    report = json.loads((out / "quality.json").read_text(encoding="utf-8"))
    assert (report["method"], report["bits"], report["group_size"], report["desc_act"]) == ("gptq", 4, 32, False)
    assert report["calibration_source"] == str(CALIBRATION) and report["calibration_samples"] == 16
    assert report["heldout_samples"] == 8
    assert report["quantizer"].startswith("gptqmodel ")
    # Held-out = the 8 conversations after the 16 calibration ones, rendered with the chat template.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = [json.loads(line)["messages"] for line in CALIBRATION.read_text(encoding="utf-8").splitlines()[16:24]]
    heldout = [tokenizer.apply_chat_template(messages, tokenize=False) for messages in rows]
    assert report["heldout_tokens"] == sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) - 1
                                           for t in heldout)
    assert report["ppl_fp"] == pytest.approx(_fp_perplexity_by_hand(tiny_model_dir, heldout), rel=1e-4)
    # 4-bit with group size 32 stays close to the full-precision model, but is not identical to it.
    assert report["ppl_quantized"] != report["ppl_fp"]
    assert abs(math.log(report["ppl_quantized"] / report["ppl_fp"])) < 0.2
    assert report["size_after_bytes"] < report["size_before_bytes"]
    assert report["size_before_bytes"] == (tiny_model_dir / "model.safetensors").stat().st_size
    # stdout carries only the report (GPTQModel's logs go to stderr), and it is the same report.
    assert stdout.startswith("gptq 4-bit, group size 32, desc_act=False")
    assert f"fp {report['ppl_fp']:.3f} -> quantized {report['ppl_quantized']:.3f}" in stdout
    assert "16 samples" in stdout

    # The folder loads the standard way, with GPTQ layers, and generates.
    config = json.loads((out / "config.json").read_text())
    assert config["quantization_config"]["bits"] == 4 and config["quantization_config"]["group_size"] == 32
    # belle chat answers with it (stdout holds the reply only) ...
    code, chat_out, err = run_belle("chat", out, "--prompt", "你好", "--max-new-tokens", "6", "--temperature", "0")
    assert code == 0, err
    # ... the same as transformers' greedy generation.
    model = AutoModelForCausalLM.from_pretrained(out, device_map="cpu")
    assert not isinstance(model.model.layers[0].self_attn.q_proj, torch.nn.Linear)
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": "你好"}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    generated = model.generate(**inputs, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert generated.shape[1] > inputs["input_ids"].shape[1]
    reply = tokenizer.decode(generated[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert chat_out == reply + "\n"
    assert AutoTokenizer.from_pretrained(out).chat_template == tokenizer.chat_template
    assert (out / "generation_config.json").read_text() == (tiny_model_dir / "generation_config.json").read_text()
    # Nothing but the output folder is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-gptq"]

    # An existing output is not overwritten without --overwrite.
    code, _, err = run_belle("quantize", "gptq", tiny_model_dir, "-o", out, "--group-size", "32",
                             "--calibration", CALIBRATION)
    assert code == 1 and "--overwrite" in err


@pytest.mark.slow
def test_quantize_gptq_8bit_desc_act_api(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from belle_hf.quant import GPTQSettings, QualityReport, quantize_gptq

    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text(sample_data_path("conversations").read_text(encoding="utf-8"), encoding="utf-8")
    settings = GPTQSettings(calibration=str(sample_data_path("alpaca")), bits=8, group_size=64, desc_act=True,
                            n_samples=8, eval_data=str(heldout), eval_samples=4)
    report = quantize_gptq(tiny_model_dir, tmp_path / "q8", settings)
    assert QualityReport.load(tmp_path / "q8") == report
    assert (report.bits, report.group_size, report.desc_act, report.calibration_samples) == (8, 64, True, 8)
    assert report.heldout_source == str(heldout) and report.heldout_samples == 4
    # 8-bit is nearly lossless, and bigger on disk than 4-bit would be but smaller than float32.
    assert abs(math.log(report.ppl_quantized / report.ppl_fp)) < 0.02
    assert report.size_after_bytes < report.size_before_bytes
    quantization = json.loads((tmp_path / "q8" / "config.json").read_text())["quantization_config"]
    assert (quantization["bits"], quantization["group_size"], quantization["desc_act"]) == (8, 64, True)
    AutoModelForCausalLM.from_pretrained(tmp_path / "q8", device_map="cpu")


def test_group_size_is_checked_against_the_model(run_belle, tiny_model_dir, tmp_path):
    sizes = linear_in_features(tiny_model_dir)
    assert set(sizes.values()) == {64, 128}  # hidden size, intermediate size
    validate_group_size(64, sizes)
    validate_group_size(-1, sizes)
    with pytest.raises(BelleError, match=r"choose one of \[16, 32, 64\]"):
        validate_group_size(128, sizes)
    code, _, err = run_belle("quantize", "gptq", tiny_model_dir, "-o", tmp_path / "out", "--calibration",
                             CALIBRATION)  # default group size 128
    assert code == 1
    assert "--group-size 128 does not divide" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_bad_bits_and_missing_model_are_clear_errors(run_belle, tiny_model_dir, tmp_path):
    code, _, err = run_belle("quantize", "gptq", tiny_model_dir, "-o", tmp_path / "o", "--bits", "3",
                             "--group-size", "32", "--calibration", CALIBRATION)
    assert code == 1 and "--bits must be 4 or 8" in err
    code, _, err = run_belle("quantize", "gptq", tmp_path / "nope", "-o", tmp_path / "o", "--calibration", CALIBRATION)
    assert code == 1 and "not a model folder" in err


def test_calibration_source_too_small_for_heldout(tiny_model_dir, tmp_path):
    from belle_hf.quant import split_calibration_and_heldout

    calibration, heldout = split_calibration_and_heldout(str(CALIBRATION), 30, 5)
    assert (len(calibration), len(heldout)) == (30, 5)
    with pytest.raises(BelleError, match="none left for held-out"):
        split_calibration_and_heldout(str(CALIBRATION), 40, 5)  # the file has 40 conversations


@pytest.mark.gpu
@pytest.mark.slow
def test_gptq_cuda_kernels_match_the_torch_kernel(tiny_model_dir, tmp_path):
    """On a CUDA machine: the quantized model runs on the GPU kernels and agrees with the torch one."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (GPTQModel's Marlin/Exllama kernels)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from belle_hf.quant import GPTQSettings, quantize_gptq

    out = tmp_path / "q"
    quantize_gptq(tiny_model_dir, out, GPTQSettings(calibration=str(CALIBRATION), bits=4, group_size=32,
                                                    n_samples=16, eval_samples=8))
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer("中国的首都是北京。", return_tensors="pt")["input_ids"]
    gpu = AutoModelForCausalLM.from_pretrained(out, device_map="cuda")
    cpu = AutoModelForCausalLM.from_pretrained(out, device_map="cpu")
    with torch.inference_mode():
        gpu_logits = gpu(ids.cuda()).logits.float().cpu()
        cpu_logits = cpu(ids).logits.float()
    assert torch.allclose(gpu_logits, cpu_logits, atol=5e-2, rtol=5e-2)


def test_cli_mounts_without_importing_gptqmodel():
    """``belle --help`` stays fast and quiet: GPTQModel (and its banner) load only when quantizing."""
    import subprocess
    import sys

    code = ("import sys, belle_hf.cli; heavy = [m for m in ('gptqmodel', 'gguf', 'peft', 'fastapi') if m in "
            "sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
