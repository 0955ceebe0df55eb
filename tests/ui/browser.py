"""Helpers for the real-browser test: Debian's Chromium through playwright, the app as a subprocess.

Never downloads a browser (no ``playwright install``): Chromium comes from ``apt-get install chromium``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_or_skip() -> str:
    """The Chromium executable; skips the test when it is missing, except in CI (``CI=true``), where it fails."""
    path = os.environ.get("STUDIO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright Python package is not installed (pip install -e .[dev])"
    if missing is None and not Path(path).exists():
        missing = "Chromium is not installed (apt-get install -y --no-install-recommends chromium)"
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser test needs a browser in CI: {missing}")
        pytest.skip(missing)
    return path


class AppProcess:
    """``python launch.py [--demo] --port P --runs-dir DIR`` with its output in ``log_path``; ``url`` once serving.
    Without ``demo`` the app opens as a user's first launch does (the real SmolLM2 where it is at hand)."""

    def __init__(self, runs_dir: Path, log_path: Path, env: dict[str, str], demo: bool = True):
        self.demo = demo
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_path
        self.runs_dir = runs_dir
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.startup_s: float | None = None

    def start(self, timeout: float = 60.0) -> "AppProcess":
        t0 = time.perf_counter()
        self._log = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "launch.py", *(["--demo"] if self.demo else []), "--port",
                                      str(self.port), "--runs-dir", str(self.runs_dir)], cwd=ROOT, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    if response.status == 200:
                        self.startup_s = time.perf_counter() - t0
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the app did not answer within {timeout:.0f}s:\n{self.output()[-3000:]}")

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if getattr(self, "_log", None):
            self._log.close()


def launch_chromium(playwright: Any, executable: str) -> Any:
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)


def tracebacks(text: str) -> list[str]:
    """Server tracebacks in the app's output (each with a few lines of context)."""
    lines = text.splitlines()
    return ["\n".join(lines[i:i + 12]) for i, line in enumerate(lines) if line.startswith("Traceback")]
