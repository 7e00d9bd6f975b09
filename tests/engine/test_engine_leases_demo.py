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
    assert other.work().recovered == 0  # the lease (35 s for a 10 s request timeout) still holds
    assert other.get_run(run["id"])["lease"]["owner"] == "elsewhere:1:abcd"
    other.clock.set(T0 + 60)
    assert other.work().recovered == 1
    taken = other.get_run(run["id"])
    assert taken["status"] == "completed"
    assert [(s["key"], s["attempt"], s["status"]) for s in taken["steps"]] == [
        ("post", 1, "failed"), ("post", 2, "completed"), ("done", 1, "completed")]
    assert "interrupted" in taken["steps"][0]["error"]

    # The stalled worker wakes up and finishes its request: same key, result discarded.
    hung._hook = None
    hung._drain()
    after = other.get_run(run["id"])
    assert after["steps"] == taken["steps"] and after["messages"] == taken["messages"]
    assert [req["key"] for req in hook_server.requests] == [f"{run['id']}:post"] * 2


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
