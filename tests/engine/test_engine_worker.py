"""`engine work --forever` as a worker: woken by LISTEN/NOTIFY, drained by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from engine_helpers import HookServer

from autorun_cli.engine import Engine, parse_toml

DELAYED = """
id = "delayed"
name = "Delayed"
trigger = "go"
identity = {{ type = "email", from = "email" }}

[[steps]]
key = "pause"
type = "delay"
duration = "100ms"

[[steps]]
key = "post"
type = "http_request"
url = "{url}/post"

[[steps]]
key = "done"
type = "send_sms"
to = "+1"
text = "done"
"""


def test_an_idle_worker_is_woken_by_notify_not_by_its_poll(pg_url: str, hook_server: HookServer) -> None:
    """The worker polls every 30 s; a new timer due in 100 ms must fire within seconds."""
    import psycopg

    worker = Engine.connect(pg_url)
    thread = threading.Thread(target=lambda: worker.work(forever=True, poll=30.0))
    thread.start()
    client = Engine.connect(pg_url)
    try:
        client.load(parse_toml(DELAYED.format(url=hook_server.url)))
        deadline = time.monotonic() + 10
        while not client.store.workers(time.time() - 30) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the worker is asleep in LISTEN now, with nothing due
        start = time.monotonic()
        [run_id] = client.trigger("go", {"email": "a@example.com"})  # the delay's timer: NOTIFY on commit
        while client.get_run(run_id)["status"] != "completed" and time.monotonic() - start < 10:
            time.sleep(0.05)
        took = time.monotonic() - start
        assert client.get_run(run_id)["status"] == "completed"
        assert took < 5, took  # woken at once (polling alone would take 30 s)
    finally:
        worker.request_stop()
        with psycopg.connect(pg_url.split("?")[0], autocommit=True) as conn:
            conn.execute("NOTIFY autorun_work")  # wake it to see the stop
        thread.join(30)
        worker.close()
        client.close()
    assert not thread.is_alive()


def test_sigterm_finishes_requests_in_flight_and_hands_back_the_rest(tmp_path: Path) -> None:
    """A worker sending 2 slow requests (more claimed and queued) gets SIGTERM: it
    records those 2, gives the queued ones back at once (their leases expire now),
    claims nothing more and exits 0; another worker then does the rest. Every key
    reaches the sink exactly once."""
    sink = HookServer(delay=1.0)
    sink.start()
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    client = Engine.connect(url)
    try:
        client.load(parse_toml(DELAYED.format(url=sink.url)))
        with client.batch():
            ids = [client.trigger("go", {"email": f"u{i}@example.com"})[0] for i in range(6)]
        env = {**os.environ, "AUTORUN_ENGINE_URL": url, "AUTORUN_HOME": str(tmp_path)}
        proc = subprocess.Popen([sys.executable, "-m", "autorun_cli", "engine", "work", "--forever", "--poll", "50ms",
                                 "--concurrency", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while (len(sink.requests) < 2 or len(client.store.leases()) < 3) and time.monotonic() < deadline:
            time.sleep(0.02)
        leased = len(client.store.leases())  # 2 in flight, the rest claimed and queued
        assert leased >= 3 and len(sink.requests) == 2
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err.decode()[-2000:]
        statuses = [client.get_run(r)["status"] for r in ids]
        assert statuses.count("completed") == 2, statuses  # the two in flight were recorded
        left = client.store.leases()
        assert len(left) == leased - 2 and all(lease["expires_at"] <= time.time() for lease in left)  # handed back
        assert client.work(settle=10).recovered == leased - 2  # taken over at once, no lease to wait out
        assert [client.get_run(r)["status"] for r in ids] == ["completed"] * 6
        assert sorted(sink.sends_per_key().values()) == [1] * 6
    finally:
        client.close()
        sink.stop()


def test_a_worker_waits_while_another_holds_every_due_timer(pg_url: str) -> None:
    """Timers due but claimed by another worker's open transaction (SKIP LOCKED hides
    them) are not spun on: the idle worker looks again after its poll."""
    holder = Engine.connect(pg_url)
    holder.load(parse_toml(DELAYED.format(url="http://127.0.0.1:9")))
    for i in range(3):
        holder.trigger("go", {"email": f"u{i}@example.com"})
    idle = Engine.connect(pg_url)
    try:
        holder.store.begin()
        assert len(holder.store.pop_due(time.time() + 60, 100)) == 3  # claimed, not committed
        time.sleep(0.15)  # the delays are due now
        assert idle.store.next_due() is not None
        ends = time.monotonic() + 1.0
        stats = idle.work(forever=True, poll=0.2, stop=lambda: time.monotonic() > ends)
        assert stats.timers_fired == 0
        assert stats.loops <= 10, stats.loops  # about 1 s / 0.2 s; spinning makes thousands
        holder.store.rollback()  # a crashed claim: the timers are claimable again
        assert idle.work(settle=0.0).timers_fired == 3
    finally:
        holder.close()
        idle.close()
