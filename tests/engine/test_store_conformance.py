"""One conformance suite for every Store: the statements the engine's guarantees rest on.

Each test names the guarantee it protects; every store (the in-memory one replay
uses, SQLite, PostgreSQL) must give the same answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from autorun_cli.engine.memstore import MemoryStore
from autorun_cli.engine.sqlite import SQLiteStore
from autorun_cli.engine.store import RUN_COLUMNS, Store

T = 1_800_000_000.0


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s: Store
    if request.param == "postgres":
        from autorun_cli.engine.pgstore import PostgresStore

        s = PostgresStore(request.getfixturevalue("pg_url"))
    else:
        s = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "engine.db")
    yield s
    s.close()


def _tx(store: Store, fn):  # one write transaction, committed
    store.begin()
    try:
        out = fn()
        store.commit()
        return out
    except BaseException:
        store.rollback()
        raise


def _msg(key: str, msg_id: str = "msg_1") -> tuple:
    run_id, _, step = key.partition(":")
    return (msg_id, key, run_id, step, "email", "a@b.c", "Hi", None, None, "sent", T, None)


def _run(run_id: str, status: str = "running") -> tuple:
    row = dict.fromkeys(RUN_COLUMNS)
    row.update(id=run_id, definition_id="d", definition_version=1, status=status, attempt=1,
               attempt_floor=0, created_at=T, updated_at=T)
    return tuple(row[c] for c in RUN_COLUMNS)


def test_outbox_is_unique_on_the_idempotency_key(store: Store) -> None:
    """A message whose key was delivered is 'already delivered', never stored twice."""
    assert _tx(store, lambda: store.add_message(_msg("run_1:welcome"))) is True
    assert _tx(store, lambda: store.add_message(_msg("run_1:welcome", "msg_2"))) is False
    assert _tx(store, lambda: store.add_message(_msg("run_1:tip", "msg_3"))) is True
    assert [m["idempotency_key"] for m in store.messages("run_1")] == ["run_1:welcome", "run_1:tip"]
    assert [m["id"] for m in store.messages()] == ["msg_1", "msg_3"]


def test_event_ids_deduplicate(store: Store) -> None:
    ev = {"id": "evt_1", "kind": "trigger", "name": "x", "payload": "{}", "identity": None,
          "occurred_at": "2027-01-15T08:00:00+00:00", "received_at": T}
    assert _tx(store, lambda: store.add_event(ev)) is True
    assert _tx(store, lambda: store.add_event(dict(ev, name="other"))) is False
    assert store.get_event("evt_1")["name"] == "x"


def test_a_wait_resolves_once(store: Store) -> None:
    _tx(store, lambda: store.insert_run(_run("run_1", "waiting")))
    _tx(store, lambda: store.insert_wait(("wait_1", "run_1", 1, "w", "opened", "email", "email", "a@b.c",
                                          "waiting", T, T + 60)))
    assert [w["id"] for w in store.find_open_waits("opened", "email", "a@b.c")] == ["wait_1"]
    won = _tx(store, lambda: store.resolve_wait("wait_1", "received", T + 1, "received", "{}"))
    assert won is not None and won["run_id"] == "run_1"
    assert _tx(store, lambda: store.resolve_wait("wait_1", "timed_out", T + 60, "timed_out")) is None
    assert store.find_open_waits("opened", "email", "a@b.c") == []
    [wait] = store.waits_for("run_1")
    assert wait["status"] == "received" and wait["timed_out_at"] is None


def test_rollback_undoes_the_transaction(store: Store) -> None:
    store.begin()
    store.insert_run(_run("run_1"))
    store.add_message(_msg("run_1:welcome"))
    store.add_timer("run_1", "delay", "1", T)
    store.set_lease("run_1", "me", 7, T + 30)
    store.rollback()
    assert store.get_run("run_1") is None and store.messages() == []
    assert store.next_due() is None and store.leases() == []


def test_due_timers_pop_once_in_due_order(store: Store) -> None:
    _tx(store, lambda: [store.add_timer(f"run_{i}", "delay", str(i), T + i) for i in (3, 1, 2, 9)])
    assert store.next_due() == T + 1
    popped = _tx(store, lambda: store.pop_due(T + 5, 2))
    assert [(p[1], p[4]) for p in popped] == [("run_1", T + 1), ("run_2", T + 2)]
    assert [p[1] for p in _tx(store, lambda: store.pop_due(T + 5, 10))] == ["run_3"]
    assert _tx(store, lambda: store.pop_due(T + 5, 10)) == []
    assert store.count_timers() == 1 and store.next_due() == T + 9


def test_lease_renewal_release_and_take_over_are_fenced(store: Store) -> None:
    """Owner and epoch together are the fencing token of every lease statement."""
    _tx(store, lambda: store.set_lease("run_1", "a", 5, T + 30))
    assert _tx(store, lambda: store.renew_lease("run_1", "b", 5, T + 60)) is False  # another owner
    assert _tx(store, lambda: store.renew_lease("run_1", "a", 4, T + 60)) is False  # an older attempt
    assert _tx(store, lambda: store.renew_lease("run_1", "a", 5, T + 60)) is True
    assert store.get_lease("run_1")["expires_at"] == T + 60
    # not expired yet: a take-over fails unless the holder is known dead
    assert _tx(store, lambda: store.steal_lease("run_1", "a", 5, T + 59)) is False
    assert _tx(store, lambda: store.steal_lease("run_1", "a", 4, T + 61)) is False  # stale view of the lease
    assert _tx(store, lambda: store.steal_lease("run_1", "a", 5, T + 61)) is True
    assert store.get_lease("run_1") is None
    assert _tx(store, lambda: store.renew_lease("run_1", "a", 5, T + 90)) is False  # lost: never sent
    assert _tx(store, lambda: store.release_lease("run_1", "a", 5)) is False  # lost: result dropped
    _tx(store, lambda: store.set_lease("run_1", "b", 6, T + 90))
    assert _tx(store, lambda: store.steal_lease("run_1", "b", 6, T, holder_dead=True)) is True
    _tx(store, lambda: store.set_lease("run_1", "c", 8, T + 90))
    assert _tx(store, lambda: store.release_lease("run_1", "b", 8)) is False
    assert _tx(store, lambda: store.release_lease("run_1", "c", 8)) is True
    assert store.leases() == []


def test_batched_lease_statements_are_fenced_like_single_ones(store: Store) -> None:
    """A worker checks, renews and releases the leases of a whole batch in one
    statement each: per lease, the same answer as the single statement."""
    _tx(store, lambda: [store.set_lease(f"run_{i}", "a", i, T + 30) for i in (1, 2, 3)])
    _tx(store, lambda: store.set_lease("run_4", "b", 4, T + 30))
    pairs = [("run_1", 1), ("run_2", 2), ("run_3", 9), ("run_4", 4), ("run_5", 5)]
    # held by "a" beyond T + 20: runs 1 and 2 (run 3 at another epoch, 4 another owner, 5 none)
    assert store.check_leases("a", pairs, T + 20) == {1, 2}
    assert store.check_leases("a", pairs, T + 30) == set()  # expiring by then: not provably held
    assert store.check_leases("a", [], T) == set()
    assert _tx(store, lambda: store.renew_leases("a", pairs, T + 90)) == {1, 2}
    assert [store.get_lease(f"run_{i}")["expires_at"] for i in (1, 2, 3, 4)] == [T + 90, T + 90, T + 30, T + 30]
    assert _tx(store, lambda: store.release_leases("a", pairs)) == {1, 2}
    assert store.get_lease("run_1") is None and store.get_lease("run_3") is not None
    assert _tx(store, lambda: store.release_leases("a", pairs)) == set()  # released once
    assert _tx(store, lambda: store.renew_leases("a", [], T)) == set()


def test_batched_wait_timeouts_resolve_each_wait_once(store: Store) -> None:
    def wait(wait_id: str, run_id: str) -> tuple:
        return (wait_id, run_id, 1, "w", "email.opened", "email", "identity", "a@b.c", "waiting", T, T + 5)

    _tx(store, lambda: [store.insert_wait(wait(f"wait_{i}", f"run_{i}")) for i in (1, 2, 3)])
    assert _tx(store, lambda: store.resolve_wait("wait_2", "received", T + 1, "received")) is not None
    out = _tx(store, lambda: store.time_out_waits(["wait_1", "wait_2", "wait_3", "wait_9"], T + 5))
    assert sorted(out) == ["wait_1", "wait_3"]  # wait_2: the event won; wait_9: unknown
    assert out["wait_1"]["run_id"] == "run_1" and out["wait_1"]["step_key"] == "w"
    assert _tx(store, lambda: store.time_out_waits(["wait_1", "wait_3"], T + 6)) == {}
    assert [w["status"] for w in store.waits_for("run_1")] == ["timed_out"]
    assert store.waits_for("run_1")[0]["timed_out_at"] == T + 5


def test_rows_for_runs_give_each_runs_rows_in_its_own_order(store: Store) -> None:
    """Listing runs in full reads a page's children at once; each run's rows must be
    exactly what its own reads give, in the same order, and no other run's."""
    from autorun_cli.engine.store import STEP_COLUMNS

    def step(run_id: str, key: str, index: int) -> tuple:
        row = dict.fromkeys(STEP_COLUMNS)
        row.update(run_id=run_id, key=key, type="send_email_template", step_index=index, attempt=1, status="completed",
                   started_at=T + index)
        return tuple(row[c] for c in STEP_COLUMNS)

    def fill() -> None:
        for rid in ("run_a", "run_b", "run_ab"):  # run_ab: a prefix-sharing ID
            store.insert_run(_run(rid))
            for i, key in enumerate(("welcome", "tip")):
                store.insert_step(step(rid, key, i))
                store.add_message(_msg(f"{rid}:{key}", f"msg_{rid}_{key}"))
                store.add_log(rid, T + 5 - i, "info", f"{rid} {key}", key, i)  # logs in reverse time
            store.insert_wait((f"wait_{rid}", rid, 1, "w", "opened", "email", "email", "a@b.c", "waiting", T, T + 60))
        store.set_lease("run_b", "me", 3, T + 30)

    _tx(store, fill)
    ids = ["run_b", "run_ab"]
    for table, one in (("steps", store.steps_for), ("waits", store.waits_for), ("outbox", store.messages),
                       ("logs", store.logs_for)):
        rows = store.rows_for_runs(table, ids)
        assert {r["run_id"] for r in rows} == set(ids), table
        for rid in ids:
            assert [r for r in rows if r["run_id"] == rid] == one(rid), (table, rid)
    assert store.rows_for_runs("leases", ids) == [store.get_lease("run_b")]
    assert store.rows_for_runs("steps", []) == []


def test_sqlite_store_of_schema_1_is_migrated_on_open(tmp_path: Path) -> None:
    """A store written by the first release (no lease epochs) upgrades in place."""
    import sqlite3

    from autorun_cli.engine import sqlite as store_mod

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(store_mod._MIGRATIONS[0][1] + ";INSERT INTO meta VALUES ('schema_version', '1');"
                       "INSERT INTO leases VALUES ('run_1', 'old:1:aa', 1800000030.0);")
    conn.close()
    s = SQLiteStore(db)
    assert s.schema_version() == store_mod.SCHEMA_VERSION >= 2
    assert s.get_lease("run_1") == {"run_id": "run_1", "owner": "old:1:aa", "expires_at": 1800000030.0, "epoch": 0}
    assert s.migrate() == []  # nothing left to apply
    s.close()
