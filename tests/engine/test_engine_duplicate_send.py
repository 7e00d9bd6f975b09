"""Two healthy engines on one store must not send one HTTP step twice (issue 11).

The bug: leases were taken for a whole batch of HTTP steps when the batch committed
and never renewed; the requests went out one after another, so while a slow API held
the first ones, the leases of those still queued expired and another engine's
``work()`` took them over and sent them too. No crash was needed.
"""

from __future__ import annotations

import threading
from pathlib import Path

from engine_helpers import HookServer

from autorun_cli.engine import Engine, SQLiteStore, parse_toml

SLOW = """
id = "slow"
name = "Slow webhook"
trigger = "go"
identity = {{ type = "email", from = "email" }}

[[steps]]
key = "post"
type = "http_request"
url = "{url}/slow"
timeout = "5s"
"""


def test_two_engines_on_one_store_send_each_key_once(tmp_path: Path) -> None:
    sink = HookServer(delay=0.3)
    sink.start()
    db = tmp_path / "engine.db"
    runs = 8
    # Leases of 1 s: a batch of 8 requests at 0.3 s each (2.4 s) outlives the
    # leases of those queued last, as 16 requests of 0.9 s outlived 30 s ones. Not
    # shorter: a renewal waits for the other engine's write lock, and on a loaded
    # machine that wait alone could outlast a lease of a few tenths of a second.
    first = Engine(SQLiteStore(db), lease_seconds=1.0, concurrency=1)
    first.load(parse_toml(SLOW.format(url=sink.url), "slow"))
    done = threading.Event()
    errors: list[BaseException] = []

    def second_worker() -> None:
        try:
            other = Engine(SQLiteStore(db), lease_seconds=1.0, concurrency=1)
            while not done.is_set():
                other.work()
                done.wait(0.02)
            other.work(settle=1.0)
            other.close()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=second_worker)
    thread.start()
    try:
        with first.batch():  # one commit reaches all 8 HTTP steps
            ids = [first.trigger("go", {"email": f"u{i}@example.com"})[0] for i in range(runs)]
        first.work(settle=1.0)
    finally:
        done.set()
        thread.join(30)
        sink.stop()
    assert not errors, errors
    sends = sink.sends_per_key()
    assert sends == {f"{run_id}:post": 1 for run_id in ids}, sends
    for run_id in ids:
        run = first.get_run(run_id)
        assert run["status"] == "completed", run["logs"]
        assert [(s["key"], s["status"]) for s in run["steps"]] == [("post", "completed")]
        assert not any("stopped during step" in log["message"] for log in run["logs"])
    first.close()


def test_a_request_whose_lease_was_lost_after_its_claim_is_never_sent(tmp_path: Path) -> None:
    """The check right before a batch of sends: a run cancelled (its lease dropped)
    between the commit that reached its HTTP step and the send is not sent, even
    when no heartbeat ran in between (both requests leave in one batch)."""
    sink = HookServer()
    sink.start()
    db = tmp_path / "engine.db"
    other = Engine(SQLiteStore(db))
    ids: list[str] = []

    def cancel_the_second(point: str) -> None:
        if point == "after_commit:batch" and len(ids) == 2:
            other.cancel(ids[1])

    first = Engine(SQLiteStore(db), concurrency=2, crash_hook=cancel_the_second)
    try:
        first.load(parse_toml(SLOW.format(url=sink.url), "slow"))
        with first.batch():
            ids += [first.trigger("go", {"email": f"u{i}@example.com"})[0] for i in range(2)]
        first.work()
    finally:
        sink.stop()
    assert sink.sends_per_key() == {f"{ids[0]}:post": 1}
    assert [first.get_run(r)["status"] for r in ids] == ["completed", "cancelled"]
    first.close()
    other.close()
