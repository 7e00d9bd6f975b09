#!/usr/bin/env python3
"""Benchmark: `autorun retry - --yes -o json` of 500 failed runs, concurrent vs one at a time,
and through a 429 storm.

The test server (tests/apiserver.py, run in this process on 127.0.0.1, 20 ms added
latency per request) serves the tenant API; the 500 failed executions' IDs go to the
real CLI (a subprocess, started from bytecode as an installed autorun is) on stdin.
Each retry is three requests: the run read before acting, the POST to its retry
endpoint, the run read again. Every mode starts from a fresh server (a retried run is
pending, not failed). Three modes:

* concurrent: the CLI's default AUTORUN_CONCURRENCY;
* one at a time: AUTORUN_CONCURRENCY=1 (goal: the concurrent run >= 10x faster);
* 429 storm: concurrent, and every 10th request the server receives is answered 429
  with Retry-After (1 s by default). Goal: 500 retried, 0 failed.

Each mode is checked, not just timed: the JSON array has one entry per run with no
error, the server received exactly one successful POST per run, and none of the 500
is still failed. Not a test: it prints figures.

    python benchmarks/bulk_retry.py [--runs 500] [--latency-ms 20] [--repeat 3] [--every 10] [--retry-after 1]
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

from _common import autorun_cmd  # noqa: E402
from apiserver import ApiServer, _status, gen_id  # noqa: E402

RETRY_PATH = "/api/v1/automation/executions/{}/retry"


def failed_ids(count: int) -> tuple[list[str], int]:
    """The first ``count`` generated tenant runs that failed, and how many to generate."""
    ids, i = [], 0
    while len(ids) < count:
        if _status("tenant", i) == "failed":
            ids.append(gen_id("tenant", i))
        i += 1
    return ids, i


def run_mode(label: str, ids: list[str], generated: int, args: argparse.Namespace, env: dict[str, str],
             extra: dict[str, str], storm: bool) -> dict:
    server = ApiServer(seeds=False, runs=0, latency_ms=args.latency_ms, log_limit=100_000)
    server.state.generate("tenant", generated)
    if storm:
        server.faults.rate_limit(times=None, retry_after=args.retry_after, every=args.every)
    server.start()
    try:
        full = {**env, **server.env("tenant"), **extra}
        start = time.perf_counter()
        done = subprocess.run([*autorun_cmd(), "retry", "-", "--yes", "-o", "json"], input="\n".join(ids) + "\n",
                              env=full, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        log = server.requests
        still_failed = [rid for rid in ids if server.state.get("tenant", rid)["status"] == "failed"]
    finally:
        server.stop()
    try:
        entries = json.loads(done.stdout)
    except json.JSONDecodeError:
        sys.stderr.write(done.stderr[-2000:])
        raise SystemExit(f"{label}: autorun exited {done.returncode} without the JSON array") from None
    retried = [e for e in entries if e["error"] is None and e["new_id"] == e["id"]]
    errors = [e for e in entries if e["error"] is not None]
    posts_ok = sorted(r["path"] for r in log if r["method"] == "POST" and r["status"] == 200)
    exactly_once = posts_ok == sorted(RETRY_PATH.format(rid) for rid in ids)
    return {
        "label": label, "seconds": seconds, "exit": done.returncode, "retried": len(retried), "failed": len(errors),
        "requests": len(log), "rate_limited": sum(1 for r in log if r["status"] == 429),
        "exactly_once": exactly_once, "still_failed": len(still_failed),
        "first_error": errors[0]["error"] if errors else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--latency-ms", type=float, default=20)
    ap.add_argument("--repeat", type=int, default=3, help="concurrent runs; the best time counts (one at a time runs once)")
    ap.add_argument("--every", type=int, default=10, help="the storm answers every Nth request 429")
    ap.add_argument("--retry-after", default="1", help="the storm's Retry-After (seconds)")
    ap.add_argument("--concurrency", type=int, default=None, help="AUTORUN_CONCURRENCY of the concurrent modes (default: the CLI's)")
    args = ap.parse_args()

    ids, generated = failed_ids(args.runs)
    home = tempfile.mkdtemp(prefix="autorun-bench-")
    try:
        env = {**os.environ, "AUTORUN_CONFIG": os.path.join(home, "config.toml"), "AUTORUN_HOME": home, "NO_COLOR": "1"}
        for name in ("AUTORUN_PROFILE", "AUTORUN_CONCURRENCY", "AUTORUN_OUTPUT", "AUTORUN_AUTOMATION_ID"):
            env.pop(name, None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "autorun_cli")], env=env, check=True)
        conc = {} if args.concurrency is None else {"AUTORUN_CONCURRENCY": str(args.concurrency)}
        conc_label = "concurrent (default)" if args.concurrency is None else f"concurrent (AUTORUN_CONCURRENCY={args.concurrency})"

        best = min((run_mode(conc_label, ids, generated, args, env, conc, False) for _ in range(args.repeat)),
                   key=lambda r: r["seconds"])
        serial = run_mode("one at a time (AUTORUN_CONCURRENCY=1)", ids, generated, args, env,
                          {"AUTORUN_CONCURRENCY": "1"}, False)
        storm = run_mode(f"429 storm, every {args.every}th request (Retry-After {args.retry_after} s)", ids,
                         generated, args, env, conc, True)

        print(f"bulk_retry: autorun retry - --yes -o json of {args.runs} failed tenant executions (IDs on stdin), "
              f"test server in-process with {args.latency_ms:g} ms latency/request; 3 requests per run "
              f"(read, POST retry, read back); cold CLI start from bytecode included; concurrent: best of {args.repeat}")
        for r in (best, serial, storm):
            check = "ok" if (r["exit"] == 0 and r["retried"] == args.runs and r["failed"] == 0 and r["exactly_once"]
                             and r["still_failed"] == 0) else "FAILED"
            print(f"  {r['label']:<52} {r['seconds']:7.2f} s  exit {r['exit']}  retried {r['retried']}, "
                  f"failed {r['failed']}; {r['requests']} requests, {r['rate_limited']} answered 429; "
                  f"one POST per run: {'yes' if r['exactly_once'] else 'NO'}; still failed on the server: "
                  f"{r['still_failed']}  [{check}]")
            if r["first_error"]:
                print(f"    first error: {r['first_error']}")
        print(f"  speed-up: {serial['seconds'] / best['seconds']:.1f}x (goal >= 10x)")
        print(f"  storm: {storm['retried']} retried, {storm['failed']} failed (goal: {args.runs} retried, 0 failed)")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
