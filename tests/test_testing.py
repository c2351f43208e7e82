from belle_hf.templates import render_belle_prompt
from belle_hf.samples import SAMPLE_FILES, build_sample_records, render_sample_files, sample_data_dir


def test_tiny_model_loads_with_transformers_and_generates(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "llama"
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert (tiny_model_dir / "model.safetensors").is_file()
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": "你好"}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]


def test_tiny_tokenizer_round_trips_chinese_and_uses_belle_template(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "中国的首都是北京。The capital of China is Beijing."
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    messages = [{"role": "user", "content": "问"}, {"role": "assistant", "content": "答"},
                {"role": "user", "content": "再问"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == "Human: \n问\n\nAssistant: \n答</s>Human: \n再问\n\nAssistant: \n"
    assert rendered == render_belle_prompt(messages)
    mask = tokenizer.apply_chat_template(messages[:2], return_dict=True, return_assistant_tokens_mask=True)
    kept = [t for t, m in zip(mask["input_ids"], mask["assistant_masks"]) if m]
    assert tokenizer.decode(kept) == "答</s>"


def test_cli_builds_tiny_model(tmp_path, run_belle):
    code, stdout, _ = run_belle("testing", "tiny-model", tmp_path / "m", "--layers", "1")
    assert code == 0
    assert (tmp_path / "m" / "config.json").is_file() and (tmp_path / "m" / "tokenizer.json").is_file()


def test_bundled_sample_files_are_current():
    expected = render_sample_files(build_sample_records())
    assert set(expected) == set(SAMPLE_FILES.values())
    for name, text in expected.items():
        assert (sample_data_dir() / name).read_text(encoding="utf-8") == text, f"rerun python -m belle_hf.samples ({name})"


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os

    from belle_hf.io import atomic_path, atomic_write_text

    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"y")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o644


def test_shipped_files_are_found_through_the_package():
    from belle_hf.shipped import shipped_path

    assert (shipped_path("model_cards") / "model.md").is_file()
    assert (shipped_path("recipes") / "quickstart.yaml").is_file()
    assert {p.name for p in shipped_path("recipes", "deepspeed").iterdir()} >= {"zero2.json", "zero3_offload.json"}
    assert (shipped_path("datasets_scripts") / "train_0.5M_CN" / "README.md").is_file()


def test_atomic_dir_replaces_whole_or_not_at_all(tmp_path):
    import pytest

    from belle_hf.io import atomic_dir

    target = tmp_path / "model"
    with atomic_dir(target) as staging:
        (staging / "a.txt").write_text("first")
    assert (target / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as staging:
            (staging / "a.txt").write_text("half")
            raise RuntimeError("killed mid-write")
    assert (target / "a.txt").read_text() == "first"
    with atomic_dir(target) as staging:
        (staging / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging or old folder left
