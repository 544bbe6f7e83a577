"""Headless Chromium, driven over the DevTools protocol (a websocket on loopback), to judge a page
as a reader's browser renders it: what its DOM says, whether anything overflows, a screenshot."""

from __future__ import annotations

import asyncio
import base64
import itertools
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium process for a test session."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="replaybench-chromium-")
        binary = chromium_path()
        if binary is None:
            raise RuntimeError("chromium is not installed (.ci/run installs it: apt-get install chromium)")
        self.process = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={self.profile}",
                                         "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port within 60 s")
            time.sleep(0.05)  # waiting for Chromium to write the file, bounded above
        self.port = int(port_file.read_text().split()[0])

    def render(self, url: str, width: int, height: int, expressions: dict[str, str],
               screenshot: Path | None = None) -> dict[str, Any]:
        """Load `url` at a viewport size, evaluate JS expressions, optionally save a screenshot."""
        return asyncio.run(self._render(url, width, height, expressions, screenshot))

    async def _render(self, url, width, height, expressions, screenshot):
        async with aiohttp.ClientSession() as http:
            async with http.put(f"http://127.0.0.1:{self.port}/json/new?about:blank") as resp:
                target = await resp.json(content_type=None)
            async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                ids = itertools.count(1)

                async def call(method: str, **params: Any) -> dict[str, Any]:
                    msg_id = next(ids)
                    await ws.send_json({"id": msg_id, "method": method, "params": params})
                    while True:
                        reply = await asyncio.wait_for(ws.receive_json(), 30)
                        if reply.get("id") == msg_id:
                            return reply.get("result", {})

                await call("Page.enable")
                await call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                           deviceScaleFactor=1, mobile=width < 600)
                await ws.send_json({"id": 0, "method": "Page.navigate", "params": {"url": url}})
                while True:  # until the page has loaded
                    event = await asyncio.wait_for(ws.receive_json(), 30)
                    if event.get("method") == "Page.loadEventFired":
                        break
                results = {}
                for name, expression in expressions.items():
                    out = await call("Runtime.evaluate", expression=expression,
                                     returnByValue=True)
                    results[name] = out.get("result", {}).get("value")
                if screenshot is not None:
                    shot = await call("Page.captureScreenshot", format="png",
                                      captureBeyondViewport=True)
                    screenshot.parent.mkdir(parents=True, exist_ok=True)
                    screenshot.write_bytes(base64.b64decode(shot["data"]))
            async with http.get(f"http://127.0.0.1:{self.port}/json/close/{target['id']}"):
                pass
        return results

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)
