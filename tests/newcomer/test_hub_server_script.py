"""``python -m belle_hf.testing.hub_server PORT``, as its docstring advertises, serves pushes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def test_hub_server_as_a_script_accepts_a_push(tmp_path):
    from huggingface_hub import HfApi

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([sys.executable, "-m", "belle_hf.testing.hub_server", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    try:
        banner = server.stdout.readline()
        assert banner.startswith("loopback hub at http://127.0.0.1:"), banner + server.stderr.read()
        url = banner.split()[3]
        api = HfApi(endpoint=url, token="hf_fake")
        api.create_repo("me/script-push", private=True)
        (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
        api.upload_file(path_or_fileobj=tmp_path / "notes.txt", path_in_repo="notes.txt", repo_id="me/script-push")
        assert api.repo_info("me/script-push").private is True
        assert "notes.txt" in api.list_repo_files("me/script-push")
    finally:
        server.send_signal(signal.SIGINT)
        try:
            _, stderr = server.communicate(timeout=90)
        except subprocess.TimeoutExpired:  # seen once in a fresh-clone CI run: say what the server said
            server.kill()
            _, stderr = server.communicate()
            raise AssertionError(f"the loopback hub did not stop within 90 s of SIGINT; its stderr:\n{stderr[-3000:]}")
    assert server.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
