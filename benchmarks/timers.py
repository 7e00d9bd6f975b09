"""Timer lateness: N pending waits whose timeouts fall due over a W-second window.

Setup (not measured): N runs of a one-step automation (wait_for_event with a 10
minute timeout and no timeout path, so a timeout ends the run timed_out) are started
by an engine on a virtual clock set so that their deadlines are spread evenly over
[T0, T0 + W] on the real clock, T0 a little after setup ends. Then a worker — a real
clock engine on the same SQLite file doing what `autorun engine work --forever`
does — fires them. Lateness = when the worker recorded the timeout (the wait's
``timed_out_at``) minus its deadline (``timeout_at``).

    /tmp/probe/bin/python benchmarks/timers.py [--waits 100000] [--window 20] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autorun_cli.engine import Engine, RealClock, SQLiteStore, VirtualClock, parse_toml

TIMEOUT = 600.0
DEFINITION = f"""
id = "bench_wait"
name = "Benchmark wait"
trigger = "signup"
identity = {{ type = "email", from = "email" }}

[[steps]]
key = "wait_for_confirm"
type = "wait_for_event"
event = "email.confirmed"
match = {{ field = "email" }}
timeout = {TIMEOUT}
"""


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--waits", type=int, default=100_000)
    ap.add_argument("--window", type=float, default=20.0)
    ap.add_argument("--setup-rate", type=float, default=6000.0,
                    help="expected setup speed (runs/s), used to place T0 after setup")
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    n, window = args.waits, args.window

    folder = Path(args.dir or tempfile.mkdtemp(prefix="autorun-timers-"))
    db = folder / "engine.db"
    for suffix in ("", "-wal", "-shm"):
        if Path(str(db) + suffix).exists():
            os.remove(str(db) + suffix)

    store = SQLiteStore(db)
    vclock = VirtualClock(0)
    setup = Engine(store, vclock)
    setup.load(parse_toml(DEFINITION, "benchmark"))
    t0 = time.time() + 3.0 + n / args.setup_rate
    s0 = time.perf_counter()
    batch = 1000
    for start in range(0, n, batch):
        with setup.batch():
            for i in range(start, min(n, start + batch)):
                vclock.set(t0 + window * i / n - TIMEOUT)
                setup.trigger("signup", {"email": f"u{i}@example.com"}, event_id=f"signup-{i}")
    setup_s = time.perf_counter() - s0
    pending = store.count_timers()
    late_start = time.time() - t0
    print(f"setup: {n} waiting runs in {setup_s:.1f} s; {pending} timers pending; "
          f"first deadline {'passed ' + format(late_start, '.1f') + ' s before the worker started' if late_start > 0 else 'in ' + format(-late_start, '.1f') + ' s'}")

    worker = Engine(store, RealClock())
    w0 = time.perf_counter()
    stats = worker.work(forever=True, poll=0.5, stop=lambda: store.next_due() is None)
    work_s = time.perf_counter() - w0

    rows = store.conn.execute(
        "SELECT timed_out_at - timeout_at FROM waits WHERE status = 'timed_out'"
    ).fetchall()
    late = sorted(r[0] * 1000 for r in rows)
    assert len(late) == n, (len(late), n)
    assert worker.count_runs() == {"timed_out": n}

    def pct(p: float) -> float:
        return late[min(len(late) - 1, int(p / 100 * len(late)))]

    print(f"worker fired {stats.timers_fired} timeouts in {work_s:.1f} s "
          f"(deadlines spread over {window:.0f} s)")
    print(f"LATENESS: p50 {pct(50):.1f} ms, p99 {pct(99):.1f} ms, max {late[-1]:.1f} ms, "
          f"mean {statistics.fmean(late):.1f} ms")
    print(f"PEAK MEMORY (max RSS of this process, setup included): {rss_mb():.0f} MB")
    print("SQLite settings: " + ", ".join(f"{k}={v}" for k, v in store.settings.items()))
    print(f"database {db} ({db.stat().st_size / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
