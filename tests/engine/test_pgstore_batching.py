"""The PostgreSQL store sends the writes whose result the engine does not read with
the next statement that must answer (one round trip), answers lock_run from what
lock_runs read, and draws step IDs in blocks: each of these must keep the answers
the engine relies on (tests/engine/test_store_conformance.py has the common ones)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from autorun_cli.engine.pgstore import PostgresStore
from autorun_cli.engine.store import RUN_COLUMNS, STEP_COLUMNS

T = 1_800_000_000.0


@pytest.fixture
def stores(pg_url: str) -> Iterator[tuple[PostgresStore, PostgresStore]]:
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    yield a, b
    a.close()
    b.close()


def _run(run_id: str) -> tuple:
    row = dict.fromkeys(RUN_COLUMNS)
    row.update(id=run_id, definition_id="d", definition_version=1, status="running", attempt=1,
               attempt_floor=0, created_at=T, updated_at=T, cursor="s1")
    return tuple(row[c] for c in RUN_COLUMNS)


def _step(run_id: str, key: str) -> tuple:
    return tuple({"run_id": run_id, "key": key, "type": "condition", "status": "completed",
                  "step_index": 0, "attempt": 1}.get(c) for c in STEP_COLUMNS)


def test_a_failing_queued_write_fails_the_transaction_and_leaves_nothing(stores) -> None:
    a, _ = stores
    a.begin()
    a.insert_run(_run("run_1"))
    a.commit()
    a.begin()
    a.add_log("run_1", T, "info", "queued", None, None)
    a.insert_run(_run("run_1"))  # a duplicate key: queued, so it fails at the commit
    with pytest.raises(psycopg.errors.UniqueViolation):
        a.commit()
    a.rollback()
    assert a.logs_for("run_1") == []  # the write queued before it is undone too
    a.begin()
    a.add_log("run_1", T, "info", "after", None, None)
    a.commit()
    assert [r["message"] for r in a.logs_for("run_1")] == ["after"]


def test_queued_writes_are_seen_by_the_next_read_of_the_transaction(stores) -> None:
    a, b = stores
    a.begin()
    a.insert_run(_run("run_1"))
    a.add_timer("run_1", "delay", "1", T)
    assert a.get_run("run_1")["status"] == "running"  # the queued insert went first
    assert b.get_run("run_1") is None  # not committed
    a.rollback()
    assert a.get_run("run_1") is None and a.next_due() is None


def test_lock_run_answers_with_the_runs_last_saved_state(stores) -> None:
    a, _ = stores
    a.begin()
    a.insert_run(_run("run_1"))
    a.commit()
    a.begin()
    a.lock_runs(["run_1"])
    values = dict(zip(RUN_COLUMNS, _run("run_1"), strict=True))
    values.update(status="waiting", cursor="s2")
    a.update_run(tuple(values[c] for c in RUN_COLUMNS))
    row = a.lock_run("run_1")
    assert row is not None and (row["status"], row["cursor"]) == ("waiting", "s2")
    a.commit()
    assert a.get_run("run_1")["status"] == "waiting"


def test_step_ids_of_a_run_increase_across_workers_that_drew_id_blocks(stores) -> None:
    """A block of step IDs drawn before a run's lock was taken could be lower than
    the IDs the run's previous holder used: steps would list out of order."""
    a, b = stores
    for s in (a,):
        s.begin()
        s.insert_run(_run("run_1"))
        s.insert_run(_run("run_2"))
        s.commit()
    a.begin()
    a.lock_runs(["run_1"])
    first = a.insert_step(_step("run_1", "s1"))  # a draws a block now
    b.begin()
    b.lock_runs(["run_2"])
    later = b.insert_step(_step("run_2", "s1"))  # b's block comes after a's
    b.commit()
    a.lock_runs(["run_2"])  # after b's commit: a's remaining IDs are lower than b's
    mine = a.insert_step(_step("run_2", "s2"))
    a.commit()
    assert first < later < mine
    assert [s["key"] for s in a.steps_for("run_2")] == ["s1", "s2"]


def test_messages_of_locked_runs_know_their_keys_without_asking(stores) -> None:
    a, b = stores
    a.begin()
    a.insert_run(_run("run_1"))
    assert a.add_message(("msg_1", "run_1:welcome", "run_1", "welcome", "email", "x@y.z", "Hi", None, None,
                          "sent", T, None)) is True
    a.commit()
    a.begin()
    a.lock_runs(["run_1"])
    msg = ("msg_2", "run_1:welcome", "run_1", "welcome", "email", "x@y.z", "Hi", None, None, "sent", T, None)
    assert a.add_message(msg) is False  # delivered before
    assert a.add_message(("msg_3", "run_1:bye",) + msg[2:]) is True
    assert a.add_message(("msg_4", "run_1:bye",) + msg[2:]) is False  # in this transaction
    a.commit()
    assert sorted(m["id"] for m in b.messages("run_1")) == ["msg_1", "msg_3"]
