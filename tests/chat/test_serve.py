"""``belle serve`` (transformers serve underneath) exercised with the real ``openai`` client."""

from __future__ import annotations

import signal
import subprocess

import pytest

from tests.chat.conftest import belle_executable, free_port, greedy_reply, subprocess_env, wait_for_http


@pytest.fixture(scope="module")
def adapter_server(tiny_model_dir, tiny_adapter_dir):
    """``belle serve MODEL --adapter ADAPTER`` on a free loopback port."""
    port = free_port()
    process = subprocess.Popen(
        [belle_executable(), "serve", str(tiny_model_dir), "--adapter", str(tiny_adapter_dir), "--port", str(port)],
        env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v1/models", process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_openai_client_chat_completions_streaming_and_not(adapter_server, tiny_model_dir, tiny_adapter_dir):
    from openai import OpenAI

    client = OpenAI(base_url=adapter_server, api_key="unused")
    models = [model.id for model in client.models.list().data]
    assert len(models) == 1
    model_id = models[0]

    messages = [{"role": "user", "content": "中国的首都是哪里？"}]
    expected = greedy_reply(tiny_model_dir, messages, 12, adapter=tiny_adapter_dir)
    assert expected != greedy_reply(tiny_model_dir, messages, 12), "the adapter should change the reply"
    # (The tiny adapter's reply is mostly whole characters; transformers serve's streaming decoder
    # never flushes a reply made only of byte fragments, which a random model can produce.)

    response = client.chat.completions.create(model=model_id, messages=messages, max_tokens=12, temperature=0)
    assert response.choices[0].message.role == "assistant"
    assert response.choices[0].message.content == expected
    assert response.usage.completion_tokens == 12

    stream = client.chat.completions.create(model=model_id, messages=messages, max_tokens=12, temperature=0,
                                            stream=True)
    deltas = [chunk.choices[0].delta.content for chunk in stream if chunk.choices and chunk.choices[0].delta.content]
    assert len(deltas) > 1
    assert "".join(deltas) == expected


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stopped_server_exits_nonzero_with_one_line(tiny_model_dir, signum):
    """Interrupted means a non-zero exit: uvicorn catches the signal and shuts down cleanly, and
    ``belle serve`` must still exit 130/143 with ``belle``'s one interrupt line."""
    port = free_port()
    process = subprocess.Popen(
        [belle_executable(), "serve", str(tiny_model_dir), "--port", str(port)],
        env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v1/models", process)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signum, stderr
    assert f"interrupted by {signal.Signals(signum).name}" in stderr
    assert "Traceback" not in stderr, stderr
