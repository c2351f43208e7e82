"""The real ``belle chat`` driven through a pseudo-terminal: prompt, streamed reply, /reset, /exit."""

from __future__ import annotations

import pexpect

from belle_hf.chat.terminal import HELP, PROMPT
from tests.chat.conftest import belle_executable, greedy_reply, subprocess_env


def test_interactive_chat_in_a_terminal(tiny_model_dir):
    child = pexpect.spawn(belle_executable(), ["chat", str(tiny_model_dir), "--max-new-tokens", "10",
                                               "--temperature", "0"],
                          env=subprocess_env(), encoding="utf-8", timeout=120, dimensions=(40, 200))
    try:
        child.expect_exact(HELP)
        child.expect_exact(PROMPT)

        child.sendline("你好")
        child.expect_exact(PROMPT)
        first = greedy_reply(tiny_model_dir, [{"role": "user", "content": "你好"}], 10)
        # The terminal shows the echoed message, then the reply, then the next prompt.
        shown = child.before.replace("\r\n", "\n")
        assert shown.rstrip("\n").endswith(first.rstrip("\n")), shown

        child.sendline("中国的首都是哪里？")
        child.expect_exact(PROMPT)
        history = [{"role": "user", "content": "你好"}, {"role": "assistant", "content": first.strip()},
                   {"role": "user", "content": "中国的首都是哪里？"}]
        second = greedy_reply(tiny_model_dir, history, 10)
        assert child.before.replace("\r\n", "\n").rstrip("\n").endswith(second.rstrip("\n"))

        child.sendline("/reset")
        child.expect_exact("(history cleared)")
        child.expect_exact(PROMPT)
        # After /reset the same question gets the first-turn answer again.
        child.sendline("中国的首都是哪里？")
        child.expect_exact(PROMPT)
        fresh = greedy_reply(tiny_model_dir, [{"role": "user", "content": "中国的首都是哪里？"}], 10)
        assert child.before.replace("\r\n", "\n").rstrip("\n").endswith(fresh.rstrip("\n"))

        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
