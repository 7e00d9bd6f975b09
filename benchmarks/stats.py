#!/usr/bin/env python3
"""Benchmark: `autorun stats --all -o json`, on the local engine and on a remote API.

local  — builds a local store of N runs (default 100,000) in-process on a virtual
         clock (two automations: email → wait 30m, 60% answered, 40% timed out; and
         email → a step that fails), then runs the real CLI as a subprocess over it.
         Prints the wall time, runs/s and the CLI's peak RSS (ru_maxrss from wait4).
         Goals: >= 5,000 runs/s and peak RSS <= 150 MB.
remote — starts the test server (tests/apiserver.py) with M runs (default 1,000) and
         20 ms latency per request, then runs `stats --all -o json` with the default
         concurrency and with AUTORUN_CONCURRENCY=1. Goal: >= 10x faster.

Not a test: it prints figures.

    python benchmarks/stats.py [--part local|remote|both] [--runs 100000] [--remote-runs 1000]
        [--latency-ms 20] [--provider sendrealm] [--keep DIR]
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from _common import autorun_cmd, start_server  # noqa: E402

RECEIPT = """
id = "bench_receipt"
name = "Benchmark receipt"
trigger = "order.completed"
identity = { type = "email", from = "customer.email" }

[[steps]]
key = "send_receipt"
type = "send_email_template"
template = "receipt"
subject = "Your receipt for {{ payload.order_id }}"

[[steps]]
key = "wait_for_open"
type = "wait_for_event"
event = "email.opened"
match = { field = "email" }
timeout = "30m"

[[steps]]
key = "send_thanks"
type = "send_push_template"
template = "thanks"
title = "Thanks"
"""

DOOMED = """
id = "bench_doomed"
name = "Benchmark doomed"
trigger = "invoice.paid"
identity = { type = "email", from = "email" }

[[steps]]
key = "send_hello"
type = "send_email_template"
template = "hello"
subject = "Hello"

[[steps]]
key = "give_up"
type = "fail"
message = "the accounting webhook is gone"
"""


def build_local(home: Path, n: int) -> dict[str, int]:
    """N terminal runs in ``home``/engine.db: nothing due when the CLI opens it."""
    from autorun_cli.engine import Engine, SQLiteStore, VirtualClock, parse_toml

    home.mkdir(parents=True, exist_ok=True)
    # Two days ago, so every run was created in the past of the real clock.
    start = time.time() - 2 * 86400
    engine = Engine(SQLiteStore(home / "engine.db"), VirtualClock(start))
    engine.load(parse_toml(RECEIPT, "receipt.toml"))
    engine.load(parse_toml(DOOMED, "doomed.toml"))
    batch = 1000
    for lo in range(0, n, batch):
        with engine.batch():
            for i in range(lo, min(n, lo + batch)):
                if i % 10 == 9:
                    engine.trigger("invoice.paid", {"email": f"d{i}@example.com"}, event_id=f"t{i}")
                else:
                    engine.trigger("order.completed", {"order_id": f"o{i}", "customer": {"email": f"c{i}@example.com"}},
                                   event_id=f"t{i}")
        engine.advance(0.01)
        with engine.batch():
            for i in range(lo, min(n, lo + batch)):
                if i % 10 < 5:  # 5 of the 9 receipt runs per ten are answered
                    engine.send_event("email.opened", {"email": f"c{i}@example.com"}, event_id=f"e{i}")
    engine.advance(31 * 60)  # the rest time out
    counts = engine.count_runs()
    engine.close()
    return counts


def peak_run(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str, str, float]:
    """(seconds, exit code, stdout, stderr, peak RSS MB) of one subprocess."""
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    return seconds, proc.returncode, out.read().decode(), err.read().decode(), usage.ru_maxrss / 1024


def base_env(home: str) -> dict[str, str]:
    env = {**os.environ, "AUTORUN_CONFIG": os.path.join(home, "config.toml"), "AUTORUN_HOME": home, "NO_COLOR": "1"}
    for var in ("AUTORUN_PROFILE", "AUTORUN_PROVIDER", "AUTORUN_BASE_URL", "AUTORUN_CONCURRENCY", "AUTORUN_AUTOMATION_ID"):
        env.pop(var, None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # start from bytecode as an installed autorun does
    return env


def local_part(n: int, keep: str | None) -> None:
    home = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="autorun-stats-"))
    try:
        if not (home / "engine.db").exists():
            t = time.perf_counter()
            counts = build_local(home, n)
            print(f"local: built {sum(counts.values()):,} runs {counts} in {time.perf_counter() - t:.1f} s")
        env = base_env(str(home))
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "autorun_cli")], env=env, check=True)
        seconds, code, stdout, stderr, rss = peak_run([*autorun_cmd(), "stats", "--all", "-o", "json"], env)
        if code != 0:
            raise SystemExit(f"stats exited {code}: {stderr[-2000:]}")
        doc = json.loads(stdout)
        runs = doc["runs"]
        startup = min(peak_run([*autorun_cmd(), "--version"], env)[0] for _ in range(3))
        print(f"local: autorun stats --all -o json over {runs:,} runs (SQLite, WAL, warm page cache; one process;"
              f" pages of 500 runs read in full)")
        print(f"  wall {seconds:.2f} s (start-up {startup:.2f} s) -> {runs / seconds:,.0f} runs/s (goal >= 5,000)")
        print(f"  peak RSS {rss:.1f} MB (goal <= 150 MB)")
        print(f"  by_status {doc['by_status']}; steps {[(s['key'], s['runs'], s['failed']) for s in doc['steps']]}")
        print(f"  waits {[(w['step_key'], w['received'], w['timed_out'], w['timeout_rate']) for w in doc['waits']]}")
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)


def remote_part(m: int, latency_ms: float, provider: str, repeat: int) -> None:
    from apiserver import DEFAULT_TOKEN, GENERIC_AUTOMATION, PLANNR_BLUEPRINT, SENDREALM_AUTOMATION

    automation = {"plannr": PLANNR_BLUEPRINT, "sendrealm": SENDREALM_AUTOMATION, "generic": GENERIC_AUTOMATION}
    server, url = start_server(m, latency_ms)
    home = tempfile.mkdtemp(prefix="autorun-stats-")
    try:
        env = {**base_env(home), "AUTORUN_PROVIDER": provider, "AUTORUN_BASE_URL": url, "AUTORUN_TOKEN": DEFAULT_TOKEN}
        if provider in automation:
            env["AUTORUN_AUTOMATION_ID"] = automation[provider]
        cmd = [*autorun_cmd(), "stats", "--all", "-o", "json"]
        results = {}
        for label, extra in (("concurrent (default 32)", {}), ("one at a time (AUTORUN_CONCURRENCY=1)", {"AUTORUN_CONCURRENCY": "1"})):
            best = float("inf")
            for _ in range(repeat):
                seconds, code, stdout, stderr, rss = peak_run(cmd, {**env, **extra})
                if code != 0:
                    raise SystemExit(f"{label}: stats exited {code}: {stderr[-2000:]}")
                runs = json.loads(stdout)["runs"]
                if runs != m:  # the figure only counts if every run was read
                    raise SystemExit(f"{label}: expected {m} runs, got {runs}")
                best = min(best, seconds)
            results[label] = (best, rss)
        print(f"remote: autorun stats --all -o json over {m:,} {provider} runs on the loopback test server, "
              f"{latency_ms:g} ms latency per request (list pages + one GET per run), best of {repeat}")
        for label, (seconds, rss) in results.items():
            print(f"  {label:<40} {seconds:7.2f} s   peak RSS {rss:.0f} MB")
        (conc, _), (seq, _) = results.values()
        print(f"  speed-up: {seq / conc:.1f}x (goal >= 10x)")
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["local", "remote", "both"], default="both")
    ap.add_argument("--runs", type=int, default=100_000, help="local runs")
    ap.add_argument("--remote-runs", type=int, default=1000)
    ap.add_argument("--latency-ms", type=float, default=20)
    ap.add_argument("--provider", default="sendrealm", choices=["plannr", "sendrealm", "tenant", "generic"])
    ap.add_argument("--repeat", type=int, default=1, help="remote runs per mode; the best time counts")
    ap.add_argument("--keep", default=None, help="local: build the store in DIR and keep it (reused when it exists)")
    args = ap.parse_args()
    if args.part in ("local", "both"):
        local_part(args.runs, args.keep)
    if args.part in ("remote", "both"):
        remote_part(args.remote_runs, args.latency_ms, args.provider, args.repeat)


if __name__ == "__main__":
    main()
