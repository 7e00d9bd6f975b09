#!/usr/bin/env python3
"""Benchmark: how long a TAB on `autorun show <TAB>` keeps the shell waiting.

Runs the real completion protocol (`_AUTORUN_COMPLETE=complete_bash`, a new process
each time, as bash does) against the test server (tests/apiserver.py) in four cases:

* fast server, cold cache — the IDs are fetched within the budget;
* fast server, warm cache — answered from the cache (no request);
* slow server (--slow-ms, default 5000), cold cache — the budget runs out: the
  answer is `@latest` alone, and a detached process refreshes the cache;
* the local engine — read from SQLite.

Each figure is the median wall time of the whole process (Python start-up, building
the app, the answer), from bytecode. The goal: ≤ 300 ms of waiting for the API on top
of start-up, i.e. the slow-server figure stays near the fast ones, never near
--slow-ms. Also prints `autorun --version` as the start-up floor. Not a test.

    python benchmarks/completion.py [--runs 10] [--slow-ms 5000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _common import autorun_cmd, start_server  # noqa: E402
from apiserver import DEFAULT_TOKEN  # noqa: E402


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout


def tab(env: dict[str, str], line: str = "autorun show ") -> dict[str, str]:
    return {**env, "_AUTORUN_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(line.split(" ")) - 1)}


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:7.1f} ms (min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--slow-ms", type=float, default=5000)
    args = ap.parse_args()

    fast, fast_url = start_server(50, 0)
    slow, slow_url = start_server(50, args.slow_ms)
    home = tempfile.mkdtemp(prefix="autorun-bench-completion-")
    cmd = autorun_cmd()
    try:
        base = {**os.environ, "AUTORUN_CONFIG": os.path.join(home, "config.toml"), "AUTORUN_HOME": os.path.join(home, "home"),
                "XDG_CACHE_HOME": os.path.join(home, "cache"), "AUTORUN_TOKEN": DEFAULT_TOKEN, "NO_COLOR": "1"}
        for var in ("AUTORUN_PROFILE", "AUTORUN_PROVIDER", "AUTORUN_BASE_URL", "PYTHONDONTWRITEBYTECODE"):
            base.pop(var, None)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "autorun_cli")], env=base, check=True)
        cache = Path(home, "cache", "autorun", "completion.json")
        subprocess.run([*cmd, "demo"], env=base, capture_output=True, check=True)

        floor = [timed([*cmd, "--version"], base)[0] for _ in range(args.runs)]
        fast_env = {**base, "AUTORUN_PROVIDER": "tenant", "AUTORUN_BASE_URL": fast_url}
        slow_env = {**base, "AUTORUN_PROVIDER": "tenant", "AUTORUN_BASE_URL": slow_url}
        cold, warm, slow_cold, local = [], [], [], []
        answers: dict[str, int] = {}
        for _ in range(args.runs):
            cache.unlink(missing_ok=True)
            t, out = timed(cmd, tab(fast_env))
            cold.append(t)
            answers["fast, cold"] = len(out.split())
            t, out = timed(cmd, tab(fast_env))
            warm.append(t)
            answers["fast, warm"] = len(out.split())
            cache.unlink(missing_ok=True)
            t, out = timed(cmd, tab(slow_env))
            slow_cold.append(t)
            answers["slow, cold"] = len(out.split())
            t, out = timed(cmd, tab({**base, "AUTORUN_PROVIDER": "local"}))
            local.append(t)
            answers["local"] = len(out.split())
        print(f"median of {args.runs} completion processes each (python {sys.version.split()[0]}; whole process, from bytecode)")
        print(f"start-up floor (autorun --version)      {median_ms(floor)}")
        print(f"fast server, cold cache                  {median_ms(cold)}   {answers['fast, cold']} candidates")
        print(f"fast server, warm cache (no request)     {median_ms(warm)}   {answers['fast, warm']} candidates")
        print(f"slow server ({args.slow_ms:.0f} ms), cold cache        {median_ms(slow_cold)}   {answers['slow, cold']} candidate(s)")
        print(f"local engine                             {median_ms(local)}   {answers['local']} candidates")
        worst = statistics.median(slow_cold) - statistics.median(floor)
        print(f"slow server minus start-up floor: {worst * 1000:.0f} ms (goal ≤ 300 ms)")
    finally:
        fast.kill()
        slow.kill()
        time.sleep(0.2)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
