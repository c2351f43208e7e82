"""ChatSession: streamed replies equal transformers' greedy output, history trimmed to the context."""

from __future__ import annotations

import subprocess

import pytest

from belle_hf.chat import ChatSession, ChatSettings, load_chat_model, prepare_model_folder
from belle_hf.errors import BelleError
from tests.chat.conftest import belle_executable, greedy_reply, subprocess_env

GREEDY = ChatSettings(max_new_tokens=12, temperature=0)


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load_chat_model(tiny_model_dir)


def test_stream_reply_is_the_greedy_generation_in_pieces(loaded, tiny_model_dir):
    session = ChatSession.from_model(*loaded, settings=GREEDY)
    pieces = list(session.stream_reply("中国的首都是哪里？"))
    expected = greedy_reply(tiny_model_dir, [{"role": "user", "content": "中国的首都是哪里？"}], 12)
    assert len(pieces) > 1, "the reply came in one piece: nothing was streamed"
    assert "".join(pieces) == expected
    assert session.history == [{"role": "user", "content": "中国的首都是哪里？"},
                               {"role": "assistant", "content": expected.strip()}]


def test_second_turn_sees_the_first(loaded, tiny_model_dir):
    session = ChatSession.from_model(*loaded, settings=GREEDY)
    first = session.reply("你好")
    second = session.reply("请给出“高”的反义词。")
    history = [{"role": "user", "content": "你好"}, {"role": "assistant", "content": first.strip()},
               {"role": "user", "content": "请给出“高”的反义词。"}]
    assert second == greedy_reply(tiny_model_dir, history, 12)
    session.reset()
    assert session.history == []


def test_history_is_trimmed_oldest_first_to_fit_the_context(loaded):
    model, tokenizer = loaded
    session = ChatSession.from_model(model, tokenizer, settings=GREEDY, system="你是助手。", context_length=70)
    budget = 70 - GREEDY.max_new_tokens
    questions = [f"计算 {n} 加 {n} 等于多少？" for n in range(10, 16)]
    for question in questions:
        messages = session.prompt_messages(question)
        assert session.backend.count_tokens(messages) <= budget
        assert messages[0] == {"role": "system", "content": "你是助手。"}
        assert messages[-1] == {"role": "user", "content": question}
        session.reply(question)
    assert session.dropped_turns > 0
    # What is left is the most recent turns, in order.
    kept = [m["content"] for m in session.history if m["role"] == "user"]
    assert kept == questions[-len(kept):]


def test_a_message_longer_than_the_context_is_a_clear_error(loaded):
    session = ChatSession.from_model(*loaded, settings=GREEDY, context_length=40)
    with pytest.raises(BelleError, match="does not fit in the context"):
        session.reply("北京" * 100)


def test_adapter_changes_the_reply_as_peft_does(tiny_model_dir, tiny_adapter_dir):
    model, tokenizer = load_chat_model(tiny_model_dir, adapter=tiny_adapter_dir)
    session = ChatSession.from_model(model, tokenizer, settings=GREEDY)
    messages = [{"role": "user", "content": "你好"}]
    with_adapter = session.reply("你好")
    assert with_adapter == greedy_reply(tiny_model_dir, messages, 12, adapter=tiny_adapter_dir)
    assert with_adapter != greedy_reply(tiny_model_dir, messages, 12)


def test_adapter_folder_as_the_model_means_its_base_plus_it(run_belle, tiny_model_dir, tiny_adapter_dir):
    # belle train's LoRA output is an adapter folder naming its base.
    code, out, err = run_belle("chat", tiny_adapter_dir, "--prompt", "你好", "--max-new-tokens", "12",
                               "--temperature", "0")
    assert code == 0, err
    assert out.endswith(greedy_reply(tiny_model_dir, [{"role": "user", "content": "你好"}], 12,
                                     adapter=tiny_adapter_dir) + "\n")


def test_model_without_chat_template_gets_belles(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    from belle_hf.templates import BELLE_CHAT_TEMPLATE

    bare = tmp_path / "bare"
    bare.mkdir()
    for file in tiny_model_dir.iterdir():
        if file.name != "chat_template.jinja":
            (bare / file.name).write_bytes(file.read_bytes())
    assert not AutoTokenizer.from_pretrained(bare).chat_template
    _, tokenizer = load_chat_model(bare)
    assert tokenizer.chat_template == BELLE_CHAT_TEMPLATE
    # The serving folder links the weights and carries the template for any HF server.
    folder = prepare_model_folder(bare, None, tmp_path / "serve")
    assert folder != bare and (folder / "model.safetensors").is_symlink()
    assert AutoTokenizer.from_pretrained(folder).chat_template == BELLE_CHAT_TEMPLATE
    assert (bare / "model.safetensors").is_file() and not (bare / "chat_template.jinja").exists()


def test_chat_prompt_answers_once(tiny_model_dir, tiny_adapter_dir):
    # A real process: stdout must hold the reply and nothing else (scripts read it).
    result = subprocess.run([belle_executable(), "chat", str(tiny_model_dir), "--prompt", "你好",
                             "--max-new-tokens", "12", "--temperature", "0", "--adapter", str(tiny_adapter_dir)],
                            env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    expected = greedy_reply(tiny_model_dir, [{"role": "user", "content": "你好"}], 12, adapter=tiny_adapter_dir)
    assert result.stdout == expected + "\n"


def test_chat_gguf_without_llama_cpp_is_a_clear_error(run_belle, tiny_model_dir, tmp_path):
    try:
        import llama_cpp  # noqa: F401
        pytest.skip("llama-cpp-python is installed")
    except ImportError:
        pass
    gguf_file = tmp_path / "m.gguf"
    gguf_file.write_bytes(b"GGUF")
    code, _, err = run_belle("chat", tiny_model_dir, "--gguf", gguf_file, "--prompt", "你好")
    assert code == 1
    assert "llama-cpp-python" in err and "Traceback" not in err


def test_chat_missing_model_is_a_clear_error(run_belle, tmp_path):
    code, _, err = run_belle("chat", tmp_path / "nope", "--prompt", "你好")
    assert code == 1
    assert "nope: model not found" in err
