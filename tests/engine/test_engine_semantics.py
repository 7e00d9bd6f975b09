"""The Sendrealm semantics on the local engine, on real SQLite files."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import engine_helpers
import pytest
from engine_helpers import T0, HookServer, engine_at, messages_by_step, order, receipt_engine

from autorun_cli.engine import Engine, parse_toml
from autorun_cli.errors import NotAllowedError, NotFoundError

HALF_HOUR = 1800


@pytest.fixture(autouse=True, params=["sqlite", "memory", "postgres"])
def store_kind(request: pytest.FixtureRequest):
    """Every test here runs on SQLite files, on the MemoryStore replay uses, and on
    PostgreSQL (a fresh schema per store path)."""
    engine_helpers.STORE_KIND = request.param
    engine_helpers._MEMORY_STORES.clear()
    engine_helpers.PG_URLS.clear()
    if request.param == "postgres":
        server = request.getfixturevalue("pg_server")
        import psycopg
        from pgserver import schema_url

        def fresh() -> str:
            schema = "t_" + os.urandom(6).hex()
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            return schema_url(server, schema)

        engine_helpers.PG_SCHEMA_FACTORY = fresh
    yield request.param
    engine_helpers.STORE_KIND = "sqlite"
    engine_helpers._MEMORY_STORES.clear()
    engine_helpers.PG_URLS.clear()


def test_receipt_opened_takes_the_received_branch(tmp_path: Path) -> None:
    e = receipt_engine(tmp_path / "e.db")
    [run_id] = e.trigger("order.completed", order(1), event_id="evt_1")
    run = e.get_run(run_id)
    assert run["status"] == "waiting" and run["current_step"] == "wait_for_open"
    assert run["waits"][0]["timeout_at"] == "2027-01-15T08:30:00.000+00:00"
    e.advance(90)
    assert e.send_event("email.opened", {"email": "c1@example.com"}, event_id="evt_2") == [run_id]
    run = e.get_run(run_id)
    assert run["status"] == "completed"
    assert [(s["key"], s["status"], s["branch"]) for s in run["steps"]] == [
        ("send_receipt", "completed", None), ("wait_for_open", "completed", "received"),
        ("send_push", "completed", None)]
    wait = run["waits"][0]
    assert wait["status"] == "received" and wait["branch"] == "received"
    assert wait["resumed_at"] == "2027-01-15T08:01:30.000+00:00" and wait["timed_out_at"] is None
    assert wait["resumed_by_event"]["id"] == "evt_2"
    assert messages_by_step(e, run_id) == ["send_receipt", "send_push"]
    assert run["duration_ms"] == 90_000
    assert run["trigger"] == {"event": "order.completed", "id": "evt_1", "payload": order(1),
                              "occurred_at": "2027-01-15T08:00:00.000+00:00"}
    assert run["identity"] == {"type": "email", "value": "c1@example.com"}


def test_duplicate_trigger_starts_nothing_new(tmp_path: Path) -> None:
    e = receipt_engine(tmp_path / "e.db")
    first = e.trigger("order.completed", order(1), event_id="evt_1")
    again = e.trigger("order.completed", order(1), event_id="evt_1")
    assert len(first) == 1 and not first.duplicate
    assert again == [] and again.duplicate
    assert len(e.list_runs()) == 1
    assert len(e.outbox()) == 1
    # a second engine (another process) on the same file sees the same dedup
    other = receipt_engine(tmp_path / "e.db")
    assert other.trigger("order.completed", order(1), event_id="evt_1").duplicate
    assert e.event("evt_1")["run_ids"] == first


def test_duplicate_event_resumes_nothing_twice(tmp_path: Path) -> None:
    e = receipt_engine(tmp_path / "e.db")
    [a] = e.trigger("order.completed", order(1))
    assert e.send_event("email.opened", {"email": "c1@example.com"}, event_id="open_1") == [a]
    dup = e.send_event("email.opened", {"email": "c1@example.com"}, event_id="open_1")
    assert dup == [] and dup.duplicate
    # a new event for the same identity finds no open wait either
    assert e.send_event("email.opened", {"email": "c1@example.com"}, event_id="open_2") == []
    assert messages_by_step(e, a) == ["send_receipt", "send_push"]
    assert len(e.get_run(a)["waits"]) == 1


def test_event_only_matches_its_own_identity(tmp_path: Path) -> None:
    e = receipt_engine(tmp_path / "e.db")
    [a] = e.trigger("order.completed", order(1))
    [b] = e.trigger("order.completed", order(2))
    assert e.send_event("email.opened", {"email": "c2@example.com"}) == [b]
    assert e.send_event("email.opened", {"email": "nobody@example.com"}) == []
    assert e.send_event("email.clicked", {"email": "c1@example.com"}) == []
    assert e.get_run(a)["status"] == "waiting"
    # identity= matches waits that match on identity, without a payload field
    assert e.send_event("email.opened", {}, identity="c1@example.com") == [a]


def test_event_after_timeout_does_not_reopen(tmp_path: Path) -> None:
    e = receipt_engine(tmp_path / "e.db")
    [a] = e.trigger("order.completed", order(1))
    e.advance(HALF_HOUR + 1)
    run = e.get_run(a)
    assert run["status"] == "completed"  # it took the timeout path (sms) and completed
    assert run["waits"][0]["status"] == "timed_out"
    assert run["waits"][0]["timed_out_at"] == "2027-01-15T08:30:00.000+00:00"
    assert e.send_event("email.opened", {"email": "c1@example.com"}) == []
    run = e.get_run(a)
    assert run["waits"][0]["status"] == "timed_out" and run["waits"][0]["resumed_at"] is None
    assert messages_by_step(e, a) == ["send_receipt", "send_sms"]


def test_event_after_deadline_loses_even_before_the_scheduler_ran(tmp_path: Path) -> None:
    e = receipt_engine(tmp_path / "e.db")
    [a] = e.trigger("order.completed", order(1))
    e.clock.set(T0 + HALF_HOUR)  # the deadline itself; no work() in between
    assert e.send_event("email.opened", {"email": "c1@example.com"}) == []
    run = e.get_run(a)
    assert run["waits"][0]["status"] == "timed_out"
    assert messages_by_step(e, a) == ["send_receipt", "send_sms"]
    assert e.work().timers_fired == 0  # the timer went with the wait


@pytest.mark.parametrize("event_lead", [0.001, 0.0], ids=["event-1ms-before-deadline", "same-instant"])
def test_event_and_timeout_racing_from_two_threads_resolve_once(tmp_path: Path, event_lead: float) -> None:
    db = tmp_path / "e.db"
    setup = receipt_engine(db)
    runs = []
    for i in range(20):  # run i's deadline is T0 + 30m + i s
        setup.clock.set(T0 + i)
        runs.append(setup.trigger("order.completed", order(i))[0])
    # Round i: one thread delivers run i's event just before (or at) its deadline,
    # the other fires due timers at the deadline; a barrier starts both together.
    sender, worker = engine_at(db), engine_at(db)
    barrier = threading.Barrier(2)
    resumed: list[str] = []
    fired: list[int] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            for i in range(20):
                sender.clock.set(T0 + HALF_HOUR + i - event_lead)
                barrier.wait()
                resumed.extend(sender.send_event("email.opened", {"email": f"c{i}@example.com"}))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def work() -> None:
        try:
            for i in range(20):
                worker.clock.set(T0 + HALF_HOUR + i)
                barrier.wait()
                fired.append(worker.work().timers_fired)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=send), threading.Thread(target=work)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    received = timed_out = 0
    for run_id in runs:
        run = setup.get_run(run_id)
        assert run["status"] == "completed"
        [wait] = run["waits"]
        msgs = messages_by_step(setup, run_id)
        if wait["status"] == "received":
            received += 1
            assert run_id in resumed and msgs == ["send_receipt", "send_push"]
        else:
            timed_out += 1
            assert wait["status"] == "timed_out" and run_id not in resumed
            assert msgs == ["send_receipt", "send_sms"]
        assert [s["key"] for s in run["steps"]].count("wait_for_open") == 1
    assert received + timed_out == 20
    assert received == len(resumed)
    assert sum(fired) <= timed_out  # a timeout is fired by the worker or, at the deadline, by the event
    if event_lead == 0.0:
        assert timed_out == 20  # at the deadline itself the timeout wins, whoever gets the lock
    assert setup.store.count_timers() == 0


def test_restart_after_downtime_fires_overdue_timeouts_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    first = receipt_engine(db)
    runs = [first.trigger("order.completed", order(i))[0] for i in range(10)]
    first.close()  # the process goes away for two hours
    later = T0 + 2 * 3600
    a, b = engine_at(db, later), engine_at(db, later)
    counts: list[int] = []
    threads = [threading.Thread(target=lambda eng=eng: counts.append(eng.work().timers_fired)) for eng in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 10
    assert a.work().timers_fired == 0 and b.work().timers_fired == 0
    for run_id in runs:
        run = a.get_run(run_id)
        assert run["status"] == "completed"
        assert run["waits"][0]["status"] == "timed_out"
        assert run["waits"][0]["timed_out_at"] == "2027-01-15T10:00:00.000+00:00"  # fired late, once
        assert messages_by_step(a, run_id) == ["send_receipt", "send_sms"]


DELAYED = """
id = "reminder"
name = "Reminder"
trigger = "cart.abandoned"
identity = { type = "email", from = "email" }

[[steps]]
key = "pause"
type = "delay"
duration = "10m"

[[steps]]
key = "remind"
type = "send_email_template"
template = "cart"
subject = "You left something behind"
"""


def test_recovery_during_a_delay_waits_only_the_remainder(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    e = engine_at(db)
    e.load(parse_toml(DELAYED))
    [r] = e.trigger("cart.abandoned", {"email": "a@example.com"})
    assert e.get_run(r)["status"] == "waiting"
    e.close()
    restarted = engine_at(db, T0 + 240)  # back after 4 minutes
    assert restarted.work().timers_fired == 0
    assert restarted.next_due().timestamp() == T0 + 600  # 6 minutes left, not 10
    restarted.advance(359)
    assert restarted.get_run(r)["status"] == "waiting"
    restarted.advance(1)
    run = restarted.get_run(r)
    assert run["status"] == "completed"
    assert run["steps"][0]["finished_at"] == "2027-01-15T08:10:00.000+00:00"
    assert messages_by_step(restarted, r) == ["remind"]


WEBHOOK = """
id = "webhook"
name = "Webhook"
trigger = "invoice.paid"
identity = {{ type = "email", from = "email" }}

[[steps]]
key = "post"
type = "http_request"
url = "{url}/hooks/{{{{ payload.invoice }}}}"
body = {{ invoice = "{{{{ payload.invoice }}}}" }}
retry = {{ attempts = 3, backoff = "10s" }}

[[steps]]
key = "thanks"
type = "send_email_template"
template = "thanks"
subject = "Paid"
"""


def test_http_retries_carry_the_same_idempotency_key(tmp_path: Path) -> None:
    server = HookServer(fail_first=2)
    server.start()
    try:
        e = engine_at(tmp_path / "e.db")
        e.load(parse_toml(WEBHOOK.format(url=server.url)))
        [r] = e.trigger("invoice.paid", {"email": "a@example.com", "invoice": "inv_1"})
        assert e.get_run(r)["status"] == "running"  # attempt 1 answered 503, retry due in 10s
        e.advance(10)
        e.advance(20)
        run = e.get_run(r)
        assert run["status"] == "completed"
        assert [(s["key"], s["attempt"], s["status"]) for s in run["steps"]] == [
            ("post", 1, "failed"), ("post", 2, "failed"), ("post", 3, "completed"), ("thanks", 1, "completed")]
        assert "HTTP 503" in run["steps"][0]["error"]
        keys = {req["key"] for req in server.requests}
        assert keys == {f"{r}:post"} and len(server.requests) == 3
        assert server.requests[0]["path"] == "/hooks/inv_1" and server.requests[0]["body"] == {"invoice": "inv_1"}
    finally:
        server.stop()


def test_failed_run_retry_resumes_without_resending(tmp_path: Path) -> None:
    server = HookServer(fail_first=3)
    server.start()
    try:
        e = engine_at(tmp_path / "e.db")
        e.load(parse_toml(WEBHOOK.format(url=server.url).replace('key = "post"', 'key = "post"\nname = "Post"')
                          .replace("[[steps]]\nkey = \"post\"", "[[steps]]\nkey = \"hello\"\ntype = \"send_sms\"\n"
                                   "text = \"hi\"\nto = \"+1555\"\n\n[[steps]]\nkey = \"post\"")))
        [r] = e.trigger("invoice.paid", {"email": "a@example.com", "invoice": "inv_2"})
        e.advance(100)
        run = e.get_run(r)
        assert run["status"] == "failed"
        assert run["error"]["step"] == "post" and "after 3 attempts" in run["error"]["message"]
        with pytest.raises(NotAllowedError):
            e.cancel(r)
        assert e.retry(r) == r
        run = e.get_run(r)
        assert run["status"] == "completed"
        assert [s["attempt"] for s in run["steps"] if s["key"] == "post"] == [1, 2, 3, 4]
        assert messages_by_step(e, r) == ["hello", "thanks"]  # the sms was not sent again
        assert {req["key"] for req in server.requests} == {f"{r}:post"}
        with pytest.raises(NotAllowedError):
            e.retry(r)  # completed: nothing to resume
    finally:
        server.stop()


def test_cancel_a_waiting_run_and_retry_it(tmp_path: Path) -> None:
    e = receipt_engine(tmp_path / "e.db")
    [a] = e.trigger("order.completed", order(1))
    with pytest.raises(NotAllowedError):
        e.retry(a)  # waiting: not retryable without force
    e.cancel(a)
    run = e.get_run(a)
    assert run["status"] == "cancelled" and run["waits"][0]["status"] == "cancelled"
    assert e.store.count_timers() == 0
    assert e.send_event("email.opened", {"email": "c1@example.com"}) == []
    e.retry(a)  # re-enters the wait with a fresh timeout
    run = e.get_run(a)
    assert run["status"] == "waiting" and [w["status"] for w in run["waits"]] == ["cancelled", "waiting"]
    assert e.send_event("email.opened", {"email": "c1@example.com"}) == [a]
    assert messages_by_step(e, a) == ["send_receipt", "send_push"]
    with pytest.raises(NotFoundError):
        e.cancel("run_missing")


def test_sandbox_records_http_instead_of_sending(tmp_path: Path) -> None:
    e = engine_at(tmp_path / "e.db", sandbox=True)
    e.load(parse_toml(WEBHOOK.format(url="http://127.0.0.1:9")))
    [r] = e.trigger("invoice.paid", {"email": "a@example.com", "invoice": "inv_3"})
    run = e.get_run(r)
    assert run["status"] == "completed"
    [http, email] = run["messages"]
    assert http["channel"] == "http" and http["status"] == "sandboxed"
    assert http["to"] == "http://127.0.0.1:9/hooks/inv_3" and http["idempotency_key"] == f"{r}:post"
    assert email["channel"] == "email"


BRANCHY = """
id = "vip"
name = "VIP"
trigger = "order.completed"
identity = { type = "email", from = "email" }

[[steps]]
key = "big"
type = "condition"
field = "payload.total"
op = "gte"
value = 100
on_true = "vip_sms"
on_false = "end"

[[steps]]
key = "vip_sms"
type = "send_sms"
to = "{{ payload.phone }}"
text = "Thanks for a {{ payload.total }} order"

[[steps]]
key = "boom"
type = "fail"
message = "order {{ payload.id }} needs a human"
"""


def test_condition_branches_fail_step_and_missing_identity(tmp_path: Path) -> None:
    e = engine_at(tmp_path / "e.db")
    e.load(parse_toml(BRANCHY))
    [small] = e.trigger("order.completed", {"email": "a@x.com", "total": 20, "id": "o1"})
    [big] = e.trigger("order.completed", {"email": "b@x.com", "total": 250, "phone": "+1", "id": "o2"})
    [anon] = e.trigger("order.completed", {"total": 5})
    assert e.get_run(small)["status"] == "completed"
    assert e.get_run(small)["steps"][0]["branch"] == "false"
    run = e.get_run(big)
    assert run["status"] == "failed" and run["error"]["step"] == "boom"
    assert run["error"]["detail"] == "order o2 needs a human"
    assert [m["title"] for m in run["messages"]] == ["Thanks for a 250 order"]
    run = e.get_run(anon)
    assert run["status"] == "failed" and "identity" in run["error"]["message"]
    assert [r["id"] for r in e.list_runs(statuses=["failed"], sort="created_at")] == [big, anon]
    assert e.count_runs() == {"completed": 1, "failed": 2}


def test_list_runs_filters_and_sorts(tmp_path: Path) -> None:
    e = receipt_engine(tmp_path / "e.db")
    ids = []
    for i in range(3):
        ids.append(e.trigger("order.completed", order(i))[0])
        e.advance(60)
    assert [r["id"] for r in e.list_runs()] == ids[::-1]
    assert [r["id"] for r in e.list_runs(sort="created_at", limit=2)] == ids[:2]
    assert [r["id"] for r in e.list_runs(since="2027-01-15T08:00:30Z")] == ids[:0:-1]
    assert e.list_runs(automation="nope") == []
    assert e.list_runs(ids=[ids[1]], full=True)[0]["steps"][0]["key"] == "send_receipt"
    assert "steps" not in e.list_runs()[0]
    with pytest.raises(NotFoundError):
        e.get_run("run_nope")


def test_memory_engine_for_replay(tmp_path: Path) -> None:
    e = Engine.memory(sandbox=True)
    assert e.store.settings["synchronous"] == "OFF"
    e.load(parse_toml(WEBHOOK.format(url="http://127.0.0.1:9")))
    assert e.trigger("invoice.paid", {"email": "x@y.z", "invoice": "i"}) != []


class Boom(Exception):
    pass


def test_a_failure_before_commit_leaves_nothing_behind(tmp_path: Path) -> None:
    def hook(label: str) -> None:
        if label == "before_commit:trigger":
            raise Boom

    e = receipt_engine(tmp_path / "e.db", crash_hook=hook)
    with pytest.raises(Boom):
        e.trigger("order.completed", order(1), event_id="evt_1")
    assert e.list_runs() == [] and e.outbox() == [] and e.event("evt_1") is None
    assert e.store.count_timers() == 0
    e._hook = None
    [r] = e.trigger("order.completed", order(1), event_id="evt_1")  # the client's retry goes through
    assert messages_by_step(e, r) == ["send_receipt"]


def test_trigger_nobody_listens_to_is_not_consumed(tmp_path: Path) -> None:
    e = engine_at(tmp_path / "e.db")
    early = e.trigger("order.completed", order(1), event_id="evt_early")
    assert early == [] and not early.duplicate
    e.load(parse_toml(engine_helpers.RECEIPT))
    assert len(e.trigger("order.completed", order(1), event_id="evt_early")) == 1
    assert e.trigger("order.completed", order(1), event_id="evt_early").duplicate
    assert e.trigger("order.completed", order(1), automation="other") == []


def test_replay_style_run_with_a_given_identity(tmp_path: Path) -> None:
    """The Sendrealm example: payload without the identity, open after 90 s, sandboxed."""
    e = Engine.memory(engine_helpers.VirtualClock("2026-06-08T14:15:00Z"), sandbox=True)
    e.load(parse_toml(engine_helpers.RECEIPT))
    [r] = e.trigger("order.completed", {"order_id": "ord_123"}, identity="olivia@example.com",
                    event_id="evt_123", automation="order_receipt")
    e.advance_to("2026-06-08T14:16:30Z")
    assert e.send_event("email.opened", {}, identity="olivia@example.com", event_id="evt_124") == [r]
    run = e.get_run(r)
    assert run["identity"]["value"] == "olivia@example.com"
    assert run["waits"][0]["resumed_at"] == "2026-06-08T14:16:30.000+00:00"
    assert [(s["key"], s["status"], s["branch"]) for s in run["steps"]] == [
        ("send_receipt", "completed", None), ("wait_for_open", "completed", "received"),
        ("send_push", "completed", None)]
