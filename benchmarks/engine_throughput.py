"""Local engine throughput: N runs of email → wait_for_event (times out) → push.

Durable on a SQLite file in WAL mode, one process. The clock is virtual so the
30-minute wait costs no real time: the figure is the engine's own cost (trigger, the
email into the outbox, the wait and its timer; then the scheduler firing each
timeout, the push into the outbox and the run's completion), every step committed.

    /tmp/probe/bin/python benchmarks/engine_throughput.py [--runs 5000] [--batch 1]
        [--fire-batch 500] [--synchronous NORMAL|FULL] [--dir DIR] [--store sqlite|memory]

--batch N groups N triggers into one transaction (one commit); the default 1 commits
every trigger on its own. Timeouts are fired 500 per transaction (--fire-batch 1:
one run per transaction throughout).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autorun_cli.engine import Engine, MemoryStore, SQLiteStore, VirtualClock, parse_toml

DEFINITION = """
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
on_timeout = "send_push"

[[steps]]
key = "send_push"
type = "send_push_template"
template = "nudge"
title = "Your order {{ payload.order_id }}"
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=1, help="triggers per transaction")
    ap.add_argument("--fire-batch", type=int, default=500,
                    help="timeouts fired per transaction (1: every run's timeout committed alone)")
    ap.add_argument("--synchronous", default="NORMAL", choices=["NORMAL", "FULL"])
    ap.add_argument("--dir", default=None, help="folder for the database (default: a temp folder)")
    ap.add_argument("--store", default="sqlite", choices=["sqlite", "memory"],
                    help="memory: the non-durable MemoryStore replay uses (not the durable figure)")
    args = ap.parse_args()

    folder = Path(args.dir or tempfile.mkdtemp(prefix="autorun-bench-"))
    db = folder / "engine.db"
    for suffix in ("", "-wal", "-shm"):
        if Path(str(db) + suffix).exists():
            os.remove(str(db) + suffix)
    store = SQLiteStore(db, synchronous=args.synchronous) if args.store == "sqlite" else MemoryStore()
    clock = VirtualClock("2026-01-01T00:00:00Z")
    engine = Engine(store, clock, batch_size=args.fire_batch)
    engine.load(parse_toml(DEFINITION, "benchmark"))

    t0 = time.perf_counter()
    n = args.runs
    i = 0
    while i < n:
        if args.batch > 1:
            with engine.batch():
                for j in range(i, min(n, i + args.batch)):
                    engine.trigger("order.completed", {"order_id": f"o{j}", "customer": {"email": f"c{j}@example.com"}},
                                   event_id=f"bench-{j}")
            i = min(n, i + args.batch)
        else:
            engine.trigger("order.completed", {"order_id": f"o{i}", "customer": {"email": f"c{i}@example.com"}},
                           event_id=f"bench-{i}")
            i += 1
    t1 = time.perf_counter()
    fired = engine.advance(31 * 60)
    t2 = time.perf_counter()

    counts = engine.count_runs()
    messages: dict[str, int] = {}
    for m in engine.outbox():
        messages[m["channel"]] = messages.get(m["channel"], 0) + 1
    assert counts == {"completed": n}, counts
    assert messages == {"email": n, "push": n}, messages
    total = t2 - t0
    print(f"runs: {n} (email -> wait_for_event 30m, times out -> push), all completed; timeouts fired: {fired}")
    print(f"messages in the outbox: {messages}")
    print(f"phase 1, trigger + email + wait: {t1 - t0:.3f} s ({n / (t1 - t0):,.0f} runs/s)")
    print(f"phase 2, timeouts + push + complete: {t2 - t1:.3f} s ({n / (t2 - t1):,.0f} runs/s)")
    print(f"THROUGHPUT: {n / total:,.0f} runs/s ({total:.3f} s for {n} runs)")
    print("store settings:")
    for k, v in store.settings.items():
        print(f"  {k}: {v}")
    print(f"  commits: one per trigger{' batch of ' + str(args.batch) if args.batch > 1 else ''}; "
          f"timeouts {engine.batch_size} per commit")
    if args.store == "sqlite":
        print(f"  python sqlite3 {sqlite3.sqlite_version}, database {db} ({db.stat().st_size / 1e6:.1f} MB)")
    engine.close()


if __name__ == "__main__":
    main()
