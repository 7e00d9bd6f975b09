"""Leases (a hung worker is fenced off) and the bundled demo."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_helpers import T0, HookServer, engine_at

from autorun_cli.engine import Engine, parse_toml
from autorun_cli.engine.demo import run_demo

HOOK = """
id = "hook"
name = "Hook"
trigger = "ping"
identity = {{ type = "email", from = "email" }}

[[steps]]
key = "post"
type = "http_request"
url = "{url}/ping"

[[steps]]
key = "done"
type = "send_sms"
to = "+1"
text = "done"
"""


class Stop(Exception):
    pass


def test_expired_lease_is_taken_over_and_the_late_worker_is_fenced(tmp_path: Path, hook_server: HookServer) -> None:
    db = tmp_path / "e.db"

    def freeze(label: str) -> None:
        if label == "after_commit:trigger":
            raise Stop  # the worker stalls right after committing "attempt 1 running"

    # A worker on another host: its liveness cannot be checked, only its lease.
    hung = engine_at(db, owner="elsewhere:1:abcd", crash_hook=freeze, lease_seconds=30)
    hung.load(parse_toml(HOOK.format(url=hook_server.url)))
    with pytest.raises(Stop):
        hung.trigger("ping", {"email": "a@example.com"})
    [run] = hung.list_runs()
    assert run["status"] == "running"

    other = engine_at(db, T0 + 10)
    assert other.work().recovered == 0  # the 30 s lease still holds
    assert other.get_run(run["id"])["lease"]["owner"] == "elsewhere:1:abcd"
    other.clock.set(T0 + 60)
    assert other.work().recovered == 1
    taken = other.get_run(run["id"])
    assert taken["status"] == "completed"
    assert [(s["key"], s["attempt"], s["status"]) for s in taken["steps"]] == [
        ("post", 1, "failed"), ("post", 2, "completed"), ("done", 1, "completed")]
    assert "interrupted" in taken["steps"][0]["error"]

    # The stalled worker wakes up: its lease was taken over, so it sends nothing.
    hung._hook = None
    hung._drain()
    after = other.get_run(run["id"])
    assert after["steps"] == taken["steps"] and after["messages"] == taken["messages"]
    assert [req["key"] for req in hook_server.requests] == [f"{run['id']}:post"]


def test_runs_taken_over_from_a_dead_worker_are_sent_together(tmp_path: Path) -> None:
    """A killed worker leaves up to 2 x concurrency runs mid-request: whoever takes them
    over sends them up to its own concurrency at once, not one run after another."""
    slow = HookServer(delay=0.3)
    slow.start()
    try:
        db = tmp_path / "e.db"

        def freeze(label: str) -> None:
            if label == "after_commit:trigger":
                raise Stop

        hung = engine_at(db, owner="elsewhere:1:abcd", crash_hook=freeze, lease_seconds=30)
        hung.load(parse_toml(HOOK.format(url=slow.url)))
        for i in range(6):
            with pytest.raises(Stop):
                hung.trigger("ping", {"email": f"u{i}@example.com"})
        other = engine_at(db, T0 + 60, concurrency=6)
        assert other.work().recovered == 6
        assert {r["status"] for r in other.list_runs()} == {"completed"}
        assert sorted(req["key"] for req in slow.requests) == sorted(f"{r['id']}:post" for r in other.list_runs())
        assert slow.max_in_flight >= 2, slow.max_in_flight  # one at a time before
    finally:
        slow.stop()


def _stalled_in_flight(db: Path, url: str, definition: str = HOOK) -> tuple[Engine, str]:
    """A worker that committed "attempt 1 running" (holding the lease) and stopped."""
    def freeze(label: str) -> None:
        if label == "after_commit:trigger":
            raise Stop

    hung = engine_at(db, owner="elsewhere:1:abcd", crash_hook=freeze, lease_seconds=30)
    hung.load(parse_toml(definition.format(url=url)))
    with pytest.raises(Stop):
        hung.trigger("ping", {"email": "a@example.com"})
    hung._hook = None
    [run] = hung.list_runs()
    return hung, run["id"]


def test_a_result_is_recorded_only_by_the_lease_owner(tmp_path: Path, hook_server: HookServer) -> None:
    """Fencing on the owner alone: the run is still at the same step and attempt,
    only the lease's owner changed; the first worker's result must be dropped."""
    hung, run_id = _stalled_in_flight(tmp_path / "e.db", hook_server.url)
    job = hung._jobs[0]
    hung.store.begin()
    hung.store.set_lease(run_id, "intruder:2:ffff", job.step_row, T0 + 300)  # same epoch, other owner
    hung.store.commit()
    hung._record([(job, (True, "POST → HTTP 200", None))])
    run = hung.get_run(run_id)
    assert run["status"] == "running" and [s["status"] for s in run["steps"]] == ["running"]
    assert run["lease"]["owner"] == "intruder:2:ffff"
    # and the epoch alone: the same owner at another attempt's epoch is fenced off too
    hung.store.begin()
    hung.store.set_lease(run_id, hung.owner, job.step_row + 1000, T0 + 300)
    hung.store.commit()
    hung._record([(job, (True, "POST → HTTP 200", None))])
    assert hung.get_run(run_id)["status"] == "running"
    # with the lease really held, the same result is recorded
    hung.store.begin()
    hung.store.set_lease(run_id, hung.owner, job.step_row, T0 + 300)
    hung.store.commit()
    hung._record([(job, (True, "POST → HTTP 200", None))])
    assert hung.get_run(run_id)["status"] == "completed"


def test_an_interrupted_attempt_keeps_its_retry_budget(tmp_path: Path) -> None:
    """Two attempts allowed; attempt 1 is interrupted (its worker stalled), attempt 2
    (the take-over) gets a 503: the interruption must not have used the retry, so
    attempt 3 runs and succeeds."""
    sink = HookServer(fail_first=1)
    sink.start()
    try:
        one_retry = HOOK.replace('url = "{url}/ping"', 'url = "{url}/ping"\nretry = {{ attempts = 2, backoff = "1s" }}')
        db = tmp_path / "e.db"
        _stalled_in_flight(db, sink.url, one_retry)
        [run_id] = [r["id"] for r in engine_at(db).list_runs()]
        other = engine_at(db, T0 + 60)
        other.work(settle=5)
        run = other.get_run(run_id)
    finally:
        sink.stop()
    assert [(s["key"], s["attempt"], s["status"]) for s in run["steps"]] == [
        ("post", 1, "failed"), ("post", 2, "failed"), ("post", 3, "completed"), ("done", 1, "completed")], run["logs"]
    assert run["status"] == "completed"
    assert list(sink.sends_per_key().values()) == [2]  # the stalled worker never sent


def test_demo_produces_every_ending_and_is_safe_to_rerun(tmp_path: Path) -> None:
    engine = Engine.open(tmp_path / "home")
    first = run_demo(engine)
    statuses = {r["label"]: r["status"] for r in first["runs"]}
    assert all(r["status"] == r["expected"] for r in first["runs"]), statuses
    assert {r["status"] for r in first["runs"]} == {"completed", "waiting", "timed_out", "failed"}
    assert first["started"] == 5 and all(r["new"] for r in first["runs"])
    messages = engine.outbox()
    failed = next(r for r in first["runs"] if r["status"] == "failed")
    steps = engine.get_run(failed["run_id"])["steps"]
    assert [s["attempt"] for s in steps] == [1, 2, 3] and all("refused" in s["error"].lower() for s in steps)
    timed_out = engine.get_run(next(r["run_id"] for r in first["runs"] if r["status"] == "timed_out"))
    assert timed_out["waits"][0]["timed_out_at"] == timed_out["waits"][0]["timeout_at"]

    again = run_demo(engine)
    assert again["started"] == 0 and not any(r["new"] for r in again["runs"])
    assert [r["run_id"] for r in again["runs"]] == [r["run_id"] for r in first["runs"]]
    assert [r["status"] for r in again["runs"]] == [r["status"] for r in first["runs"]]
    assert engine.outbox() == messages
    assert len(engine.list_runs()) == 5
    assert [d["created"] for d in again["definitions"]] == [False, False, False]
