"""``Engine.retry(from_step=…)`` and the local engine's retry of ended runs.

The engine runs on a MemoryStore and a virtual clock: the outbox is the proof that
no message goes out twice (one row per idempotency key ``<run id>:<step key>``).
"""

from __future__ import annotations

import pytest

from autorun_cli.engine import Engine, VirtualClock, parse_toml
from autorun_cli.errors import NotAllowedError, UsageError

T0 = 1_800_000_000.0

THREE_SENDS = """
id = "three_sends"
name = "Three sends"
trigger = "order.completed"
identity = { type = "email", from = "email" }

[[steps]]
key = "send_receipt"
type = "send_email_template"
template = "receipt"
subject = "Receipt"

[[steps]]
key = "check"
type = "condition"
field = "payload.ok"
op = "eq"
value = true
on_false = "stop"

[[steps]]
key = "send_thanks"
type = "send_push_template"
template = "thanks"
title = "Thanks"
next = "end"

[[steps]]
key = "stop"
type = "fail"
message = "not ok"
"""

WAIT = """
id = "ack"
name = "Ack"
trigger = "order.shipped"
identity = { type = "email", from = "email" }

[[steps]]
key = "send_notice"
type = "send_email_template"
template = "shipped"
subject = "Shipped"

[[steps]]
key = "wait_for_ack"
type = "wait_for_event"
event = "shipment.acked"
match = { field = "email" }
timeout = "30m"

[[steps]]
key = "send_thanks"
type = "send_push_template"
template = "thanks"
title = "Thanks"
"""


@pytest.fixture
def engine():
    e = Engine.memory(VirtualClock(T0))
    e.load([parse_toml(THREE_SENDS), parse_toml(WAIT)])
    yield e
    e.close()


def keys(engine: Engine, run_id: str) -> list[str]:
    return [m["idempotency_key"] for m in engine.outbox(run_id)]


def test_from_step_runs_again_from_that_step_and_sends_nothing_twice(engine):
    [run_id] = engine.trigger("order.completed", {"email": "a@example.com", "ok": False}, event_id="e1")
    run = engine.get_run(run_id)
    assert run["status"] == "failed" and run["error"]["step"] == "stop"
    assert keys(engine, run_id) == [f"{run_id}:send_receipt"]
    engine.retry(run_id, from_step="check", by="ops@ci")
    after = engine.get_run(run_id)
    # The steps before `check` kept their one recorded attempt; `check` ran again.
    assert [(s["key"], s["attempt"]) for s in after["steps"]] == [
        ("send_receipt", 1), ("check", 1), ("stop", 1), ("check", 2), ("stop", 1)]
    assert keys(engine, run_id) == [f"{run_id}:send_receipt"]
    log = [entry["message"] for entry in after["logs"]]
    assert "restarted from step check by ops@ci (it had stopped at stop)" in log


def test_from_an_already_sent_step_finds_its_key_in_the_outbox(engine):
    [run_id] = engine.trigger("order.completed", {"email": "b@example.com", "ok": False}, event_id="e2")
    engine.retry(run_id, from_step="send_receipt")
    after = engine.get_run(run_id)
    assert keys(engine, run_id) == [f"{run_id}:send_receipt"]
    again = [s for s in after["steps"] if s["key"] == "send_receipt"]
    assert [s["attempt"] for s in again] == [1, 2]
    assert "not sent again" in again[1]["info"]


def test_unknown_or_unreached_step_is_a_usage_error_naming_the_steps_it_ran(engine):
    [run_id] = engine.trigger("order.completed", {"email": "c@example.com", "ok": False}, event_id="e3")
    with pytest.raises(UsageError) as unknown:
        engine.retry(run_id, from_step="nope")
    assert "has no step 'nope'" in unknown.value.message
    assert unknown.value.hint == "start again at one of the steps it ran: send_receipt, check, stop"
    with pytest.raises(UsageError) as unreached:
        engine.retry(run_id, from_step="send_thanks")
    assert "never reached step 'send_thanks'" in unreached.value.message
    # Nothing changed.
    assert engine.get_run(run_id)["status"] == "failed"


def test_completed_runs_are_refused_even_from_a_step(engine):
    [run_id] = engine.trigger("order.completed", {"email": "d@example.com", "ok": True}, event_id="e4")
    assert engine.get_run(run_id)["status"] == "completed"
    with pytest.raises(NotAllowedError):
        engine.retry(run_id, from_step="check")


def test_timed_out_and_cancelled_runs_resume_at_their_wait(engine):
    [late] = engine.trigger("order.shipped", {"email": "e@example.com"}, event_id="s1")
    engine.advance(31 * 60)
    assert engine.get_run(late)["status"] == "timed_out"
    [stopped] = engine.trigger("order.shipped", {"email": "f@example.com"}, event_id="s2")
    engine.cancel(stopped)
    cancelled = engine.get_run(stopped)
    assert cancelled["status"] == "cancelled"
    assert [w["status"] for w in cancelled["waits"]] == ["cancelled"]
    for run_id in (late, stopped):
        engine.retry(run_id, by="ops@ci")
        run = engine.get_run(run_id)
        assert run["status"] == "waiting" and run["current_step"] == "wait_for_ack"
        assert [w["status"] for w in run["waits"]][-1] == "waiting"
        assert keys(engine, run_id) == [f"{run_id}:send_notice"]
        assert "retried from step wait_for_ack by ops@ci" in [e["message"] for e in run["logs"]]
    engine.send_event("shipment.acked", {"email": "f@example.com"}, event_id="ack")
    assert engine.get_run(stopped)["status"] == "completed"


def test_a_cancelled_wait_reads_cancelled_in_the_normalized_run(engine):
    from autorun_cli.providers.local import map_run

    [run_id] = engine.trigger("order.shipped", {"email": "g@example.com"}, event_id="s3")
    engine.cancel(run_id)
    run = map_run(engine.get_run(run_id))
    assert [w.status for w in run.waits] == ["cancelled"]
