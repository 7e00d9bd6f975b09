#!/usr/bin/env python3
"""Benchmark: `autorun list --all -o ndjson` of 10k, 50k and 100k runs — time and peak memory.

For each N, starts the test server (tests/apiserver.py) with N generated runs and no
seeds, runs the real CLI as a subprocess, counts the NDJSON lines as they stream in
(each must be a run; the count must equal N) and records the autorun process's peak
RSS (VmHWM from /proc while it runs, and ru_maxrss from wait4 when it ends).
Goal: peak RSS <= 100 MB and flat as N grows. Not a test: it prints figures.

    python benchmarks/list_stream.py [--provider plannr] [--sizes 10000 50000 100000] [--latency-ms 0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _common import autorun_cmd, start_server  # noqa: E402
from apiserver import DEFAULT_TOKEN, GENERIC_AUTOMATION, SENDREALM_AUTOMATION  # noqa: E402

# Lists per automation on these; the others list everything (the server has no seeds here).
AUTOMATION = {"sendrealm": SENDREALM_AUTOMATION, "generic": GENERIC_AUTOMATION}
PAGES = {"plannr": "Laravel pages of 500", "sendrealm": "cursor pages of 100", "tenant": "pages of 100",
         "generic": "offset pages of 100"}


def vm_hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def measure(n: int, provider: str, latency_ms: float, home: str) -> tuple[float, int, float, str]:
    """(wall seconds, lines, peak RSS MB, stderr tail) of one `list --all -o ndjson`."""
    server, url = start_server(n, latency_ms)
    try:
        env = {**os.environ, "AUTORUN_PROVIDER": provider, "AUTORUN_BASE_URL": url, "AUTORUN_TOKEN": DEFAULT_TOKEN,
               "AUTORUN_CONFIG": os.path.join(home, "config.toml"), "AUTORUN_HOME": home, "NO_COLOR": "1"}
        env.pop("AUTORUN_PROFILE", None)
        if provider in AUTOMATION:
            env["AUTORUN_AUTOMATION_ID"] = AUTOMATION[provider]
        errfile = tempfile.TemporaryFile(mode="w+")
        start = time.perf_counter()
        proc = subprocess.Popen([*autorun_cmd(), "list", "--all", "-o", "ndjson"], env=env,
                                stdout=subprocess.PIPE, stderr=errfile, text=True, bufsize=1 << 16)
        peak = [0]
        running = threading.Event()
        running.set()

        def poll() -> None:  # VmHWM is the high-water mark; polling keeps the last value before exit
            while running.is_set():
                kb = vm_hwm_kb(proc.pid)
                if kb:
                    peak[0] = max(peak[0], kb)
                time.sleep(0.02)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        lines, ids = 0, set()
        assert proc.stdout is not None
        for line in proc.stdout:
            run = json.loads(line)
            ids.add(run["id"])
            lines += 1
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        running.clear()
        poller.join()
        errfile.seek(0)
        err = errfile.read()[-2000:]
        if proc.returncode != 0:
            raise SystemExit(f"N={n}: autorun exited {proc.returncode}\n{err}")
        if lines != n or len(ids) != n:
            raise SystemExit(f"N={n}: expected {n} distinct runs, got {lines} lines / {len(ids)} IDs")
        peak_kb = max(peak[0], usage.ru_maxrss)  # ru_maxrss is in KiB on Linux
        return wall, lines, peak_kb / 1024, err
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--provider", default="plannr", choices=sorted(PAGES))
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    ap.add_argument("--latency-ms", type=float, default=0)
    args = ap.parse_args()

    home = tempfile.mkdtemp(prefix="autorun-bench-")
    print(f"list_stream: autorun list --all -o ndjson, provider {args.provider} ({PAGES[args.provider]}), "
          f"server latency {args.latency_ms:g} ms/request")
    print(f"  {'N':>8} {'lines':>8} {'wall s':>8} {'runs/s':>8} {'peak RSS MB':>12}")
    peaks = []
    try:
        for n in args.sizes:
            wall, lines, peak_mb, _ = measure(n, args.provider, args.latency_ms, home)
            peaks.append(peak_mb)
            print(f"  {n:>8} {lines:>8} {wall:>8.2f} {lines / wall:>8.0f} {peak_mb:>12.1f}", flush=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"  peak RSS max {max(peaks):.1f} MB (goal <= 100 MB); growth from N={args.sizes[0]} to "
          f"N={args.sizes[-1]}: {peaks[-1] - peaks[0]:+.1f} MB (goal: flat)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
