"""Shared by the benchmark scripts that drive the real CLI against the test server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def autorun_cmd() -> list[str]:
    """The installed console script next to this Python, else ``python -m autorun_cli``."""
    script = Path(sys.executable).parent / "autorun"
    if script.exists():
        return [str(script)]
    found = shutil.which("autorun")
    return [found] if found else [sys.executable, "-m", "autorun_cli"]


def start_server(runs: int, latency_ms: float) -> tuple[subprocess.Popen, str]:
    """tests/apiserver.py in its own process; returns it and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "apiserver.py"), "--port", "0", "--runs", str(runs),
         "--latency-ms", str(latency_ms), "--no-seeds"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://"):
        proc.kill()
        raise SystemExit(f"test server did not start (got {url!r})")
    return proc, url
