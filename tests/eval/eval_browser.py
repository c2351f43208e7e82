"""A minimal headless-Chromium driver over the Chrome DevTools Protocol, for end-to-end page tests.

Selenium would need the separate ``chromium-driver`` package; CDP needs only the browser and a
websocket client, and ``aiohttp`` (already installed with ``datasets``) has one. The driver
evaluates JavaScript in the page, which is all a test needs to click and read.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server", "--disable-dev-shm-usage", "--remote-debugging-port=0",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


class Browser:
    """``async with Browser(url, profile_dir) as page: await page.eval("document.title")``."""

    def __init__(self, url: str, profile_dir: Path, timeout: float = 30.0):
        self.url = url
        self.profile_dir = Path(profile_dir)
        self.timeout = timeout
        self._ids = itertools.count(1)

    async def __aenter__(self) -> "Browser":
        import aiohttp

        binary = find_chromium()
        assert binary, "chromium not found"
        self.process = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile_dir}", self.url],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = self.profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        self.session = aiohttp.ClientSession()
        page_ws = None
        while page_ws is None:
            async with self.session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json(content_type=None)
            page_ws = next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)
            if page_ws is None:
                if time.monotonic() > deadline:
                    raise RuntimeError("chromium opened no page")
                await asyncio.sleep(0.1)
        self.ws = await self.session.ws_connect(page_ws, max_msg_size=0)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()
        await self.session.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        request_id = next(self._ids)
        await self.ws.send_str(json.dumps({"id": request_id, "method": method, "params": params}))
        while True:
            message = json.loads((await self.ws.receive(timeout=self.timeout)).data)
            if message.get("id") == request_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def eval(self, expression: str) -> Any:
        """Evaluate JavaScript in the page (awaiting promises) and return its JSON value."""
        result = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page error: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float | None = None) -> Any:
        """Poll ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                value = await self.eval(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {expression}")
            await asyncio.sleep(0.1)
