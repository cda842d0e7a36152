"""A few lines of the W3C WebDriver protocol, spoken to Debian's chromedriver,
to look at the status page in real headless Chromium as a person would."""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from tests.helpers import free_port, wait_until

CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-quic", "--window-size=1280,900"]


def available() -> bool:
    return bool(shutil.which("chromedriver") and (shutil.which("chromium") or Path("/usr/bin/chromium").exists()))


class Browser:
    def __init__(self) -> None:
        self.port = free_port()
        self.profile = tempfile.TemporaryDirectory(prefix="edge-agent-chromium-")
        self.proc = subprocess.Popen(["chromedriver", f"--port={self.port}", "--allowed-ips=127.0.0.1"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_until(self._ready, 20, what="chromedriver")
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": shutil.which("chromium") or "/usr/bin/chromium",
            "args": CHROME_ARGS + [f"--user-data-dir={self.profile.name}"]}}}}
        r = requests.post(f"{self.base}/session", json=caps, timeout=60)
        r.raise_for_status()
        self.session = f"{self.base}/session/{r.json()['value']['sessionId']}"

    def _ready(self) -> bool:
        try:
            return requests.get(f"{self.base}/status", timeout=1).json()["value"]["ready"]
        except (requests.RequestException, ValueError, KeyError):
            return False

    def get(self, url: str) -> None:
        requests.post(f"{self.session}/url", json={"url": url}, timeout=60).raise_for_status()

    def js(self, script: str, *args: Any) -> Any:
        r = requests.post(f"{self.session}/execute/sync", json={"script": script, "args": list(args)}, timeout=30)
        if r.status_code != 200:
            raise AssertionError(f"script failed in the browser: {r.json()['value'].get('message', r.text)[:500]}")
        return r.json()["value"]

    def wait_js(self, script: str, timeout: float, what: str) -> Any:
        return wait_until(lambda: self.js(script), timeout, interval=0.25, what=what)

    def screenshot(self, path: Path) -> Path:
        r = requests.get(f"{self.session}/screenshot", timeout=30)
        r.raise_for_status()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(r.json()["value"]))
        return path

    def close(self) -> None:
        try:
            requests.delete(self.session, timeout=10)
        except requests.RequestException:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        time.sleep(0.1)
        self.profile.cleanup()
