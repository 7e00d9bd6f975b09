#!/usr/bin/env python3
"""Benchmark: `autorun show ID… -o json` of 200 IDs, concurrent vs one at a time.

Starts the test server (tests/apiserver.py) with 20 ms added latency per request,
then runs the real CLI as a subprocess twice: with its default concurrency and with
AUTORUN_CONCURRENCY=1. Prints both wall times and the speed-up (goal: >= 10x).
Not a test: it prints figures.

    python benchmarks/bulk_show.py [--provider sendrealm] [--ids 200] [--latency-ms 20] [--repeat 3] [--concurrency N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _common import autorun_cmd, start_server  # noqa: E402
from apiserver import DEFAULT_TOKEN, GENERIC_AUTOMATION, gen_id  # noqa: E402

ID_KEY = {"plannr": "id", "sendrealm": "id", "tenant": "id", "generic": "id"}


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, done


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--provider", default="sendrealm", choices=["plannr", "sendrealm", "tenant", "generic"])
    ap.add_argument("--ids", type=int, default=200)
    ap.add_argument("--latency-ms", type=float, default=20)
    ap.add_argument("--repeat", type=int, default=3, help="runs per mode; the best time counts")
    ap.add_argument("--concurrency", type=int, default=None,
                    help="AUTORUN_CONCURRENCY for the concurrent run (default: the CLI's own default)")
    args = ap.parse_args()

    server, url = start_server(args.ids, args.latency_ms)
    home = tempfile.mkdtemp(prefix="autorun-bench-")
    try:
        env = {**os.environ, "AUTORUN_PROVIDER": args.provider, "AUTORUN_BASE_URL": url,
               "AUTORUN_TOKEN": DEFAULT_TOKEN, "AUTORUN_CONFIG": os.path.join(home, "config.toml"),
               "AUTORUN_HOME": home, "NO_COLOR": "1"}
        env.pop("AUTORUN_PROFILE", None)
        env.pop("AUTORUN_CONCURRENCY", None)
        # Start from bytecode as an installed autorun does (see benchmarks/startup.py).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "autorun_cli")], env=env, check=True)
        if args.provider == "generic":
            env["AUTORUN_AUTOMATION_ID"] = GENERIC_AUTOMATION
        ids = [gen_id(args.provider, i) for i in range(args.ids)]
        cmd = [*autorun_cmd(), "show", *ids, "-o", "json"]

        results: dict[str, float] = {}
        concurrent = ("concurrent (default)", {}) if args.concurrency is None else (
            f"concurrent (AUTORUN_CONCURRENCY={args.concurrency})", {"AUTORUN_CONCURRENCY": str(args.concurrency)})
        for label, extra in (concurrent, ("one at a time (AUTORUN_CONCURRENCY=1)", {"AUTORUN_CONCURRENCY": "1"})):
            best = float("inf")
            for _ in range(args.repeat):
                seconds, done = timed(cmd, {**env, **extra})
                if done.returncode != 0:
                    sys.stderr.write(done.stderr[-2000:])
                    raise SystemExit(f"{label}: autorun exited {done.returncode}")
                runs = json.loads(done.stdout)
                got = [r[ID_KEY[args.provider]] for r in runs]
                if got != ids:  # the figures only count if every run came back, in order
                    raise SystemExit(f"{label}: expected {len(ids)} runs in order, got {len(got)}")
                best = min(best, seconds)
            results[label] = best

        startup = min(timed([*autorun_cmd(), "--version"], env)[0] for _ in range(args.repeat))
        conc, seq = results.values()
        print(f"bulk_show: autorun show of {args.ids} {args.provider} IDs -o json, server latency "
              f"{args.latency_ms:g} ms/request, best of {args.repeat}")
        for label, seconds in results.items():
            print(f"  {label:<40} {seconds:7.2f} s")
        print(f"  {'start-up (autorun --version)':<40} {startup:7.2f} s")
        print(f"  speed-up: {seq / conc:.1f}x (goal >= 10x); net of start-up: "
              f"{(seq - startup) / max(conc - startup, 1e-3):.1f}x")
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
