"""Where the engine keeps its state: the :class:`Store` protocol every store implements.

The engine talks to a Store only, one method per statement it needs. Three stores
implement it: :class:`~autorun_cli.engine.sqlite.SQLiteStore` (the default, one
file), :class:`~autorun_cli.engine.pgstore.PostgresStore` (a team's shared
database, many workers on many machines) and
:class:`~autorun_cli.engine.memstore.MemoryStore` (replay, tests). One conformance
suite (tests/engine/test_store_conformance.py) runs against all three.

What the engine relies on:

* Writes happen between ``begin`` and ``commit``; ``rollback`` undoes them all.
* Inside a write transaction ``lock_run``/``lock_runs`` return run rows locked
  against every other writer until the transaction ends (SQLite and the memory
  store hold one write lock for the whole transaction; PostgreSQL locks the rows).
  The engine always locks a run before touching its waits, timers, steps or lease,
  and several runs in ID order, so two transactions never wait on each other in a
  circle.
* Conditional statements report whether they changed a row: ``resolve_wait`` (a
  wait resolves once), ``add_event`` / ``add_message`` (unique IDs and idempotency
  keys), the lease statements (owner + epoch are the fencing token).
* ``pop_due`` claims due timers so that two workers never get the same one.

Times are float epoch seconds; JSON columns hold text. Rows come back as dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

RUN_COLUMNS = (
    "id", "definition_id", "definition_version", "name", "status", "cursor", "attempt",
    "attempt_floor", "trigger_event", "trigger_event_id", "trigger_payload",
    "trigger_occurred_at", "identity_type", "identity_value", "last_event", "created_at",
    "updated_at", "started_at", "finished_at", "error_message", "error_step", "error_detail",
)
STEP_COLUMNS = (
    "run_id", "key", "type", "name", "step_index", "attempt", "status", "started_at",
    "finished_at", "info", "error", "branch",
)
WAIT_COLUMNS = (
    "id", "run_id", "step_id", "step_key", "event", "match_field", "match_equals",
    "match_value", "status", "created_at", "timeout_at",
)
MESSAGE_COLUMNS = (
    "id", "idempotency_key", "run_id", "step_key", "channel", "recipient", "title", "body",
    "template", "status", "created_at", "detail",
)
SORTS = {"created_at": "created_at", "updated_at": "updated_at", "status": "status", "name": "name",
         "started_at": "started_at", "finished_at": "finished_at", "id": "id"}


class Store(Protocol):
    """The statements the engine needs. Writes happen between ``begin`` and ``commit``."""

    settings: dict[str, Any]
    #: Migrations applied when this store was opened (first use of a database).
    applied_on_open: list[int]
    #: Errors after which the whole transaction may simply be tried again
    #: (PostgreSQL deadlocks and serialization failures; none on SQLite).
    retryable: tuple[type[BaseException], ...]

    # -- the store itself -----------------------------------------------------
    def describe(self) -> str:
        """The store's URL for people (``sqlite:///…``, ``postgresql://user@host/db``),
        never with a password."""
        ...

    def schema_version(self) -> int:
        """The last migration applied (0 for an empty store)."""
        ...

    def migrate(self) -> list[int]:
        """Apply the migrations this store lacks; the versions applied."""
        ...

    def wait_for_work(self, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds, or less when another process signals new
        work (PostgreSQL ``LISTEN``; elsewhere a plain sleep: polling)."""
        ...

    # -- transactions ---------------------------------------------------------
    def begin(self) -> None:
        """Start a write transaction."""
        ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...

    # -- definitions ----------------------------------------------------------
    def latest_definition(self, def_id: str) -> dict | None: ...

    def get_definition(self, def_id: str, version: int) -> dict | None: ...

    def insert_definition(self, row: dict) -> None: ...

    def list_definitions(self, all_versions: bool = False) -> list[dict]: ...

    def definition_count(self) -> int:
        """Number of stored definition versions (they are only ever added)."""
        ...

    def definitions_for_trigger(self, event: str) -> list[tuple[str, int]]:
        """(id, version) of the latest version of every definition triggered by ``event``."""
        ...

    # -- events ---------------------------------------------------------------
    def add_event(self, row: dict) -> bool:
        """Record an inbound event; False when its id was seen before (dedup)."""
        ...

    def set_event_runs(self, event_id: str, run_ids: list[str]) -> None: ...

    def get_event(self, event_id: str) -> dict | None: ...

    # -- runs -----------------------------------------------------------------
    def insert_run(self, values: tuple) -> None:
        """``values`` in RUN_COLUMNS order."""
        ...

    def update_run(self, values: tuple) -> None:
        """``values`` in RUN_COLUMNS order; the id (first) selects the row."""
        ...

    def get_run(self, run_id: str) -> dict | None: ...

    def lock_run(self, run_id: str) -> dict | None:
        """Inside a write transaction: the run, locked until the transaction ends."""
        ...

    def lock_runs(self, run_ids: Sequence[str]) -> None:
        """Inside a write transaction: lock several runs, in ID order."""
        ...

    def query_runs(self, *, statuses: list[str] | None = None, automation: str | None = None,
                   since: float | None = None, until: float | None = None,
                   ids: list[str] | None = None, event_id: str | None = None,
                   sort: str = "-created_at", limit: int | None = None, offset: int = 0) -> list[dict]: ...

    def count_runs(self, statuses: list[str] | None = None) -> dict[str, int]: ...

    # -- steps ----------------------------------------------------------------
    def insert_step(self, values: tuple) -> int:
        """``values`` in STEP_COLUMNS order; returns the step row id (increasing)."""
        ...

    def finish_step(self, step_id: int, status: str, finished_at: float | None,
                    info: str | None = None, error: str | None = None, branch: str | None = None) -> None: ...

    def interrupt_steps(self, run_id: str, statuses: tuple[str, ...], status: str, finished_at: float,
                        error: str | None) -> int: ...

    def steps_for(self, run_id: str) -> list[dict]: ...

    # -- waits ----------------------------------------------------------------
    def insert_wait(self, values: tuple) -> None:
        """``values`` in WAIT_COLUMNS order."""
        ...

    def resolve_wait(self, wait_id: str, status: str, at: float, branch: str | None,
                     resumed_by: str | None = None) -> dict | None:
        """Move a wait out of ``waiting`` exactly once: the row (run_id, step_id,
        step_key) when this call resolved it, None when it was already resolved."""
        ...

    def time_out_waits(self, wait_ids: Sequence[str], at: float) -> dict[str, dict]:
        """``resolve_wait(id, "timed_out", at, "timed_out")`` for several waits in one
        statement: wait id → row for each wait this call resolved. This default goes
        wait by wait (one writer: memory, SQLite); PostgreSQL overrides it."""
        out = {}
        for wait_id in wait_ids:
            row = self.resolve_wait(wait_id, "timed_out", at, "timed_out")
            if row is not None:
                out[wait_id] = row
        return out

    def find_open_waits(self, event: str, field: str, value: str) -> list[dict]:
        """Waiting waits for ``event`` that match on payload ``field`` = ``value``."""
        ...

    def waits_for(self, run_id: str) -> list[dict]: ...

    def open_waits_for(self, run_id: str) -> list[dict]: ...

    # -- timers ---------------------------------------------------------------
    def add_timer(self, run_id: str, kind: str, ref: str | None, due_at: float) -> None: ...

    def pop_due(self, now: float, limit: int) -> list[tuple]:
        """Delete and return up to ``limit`` timers due at ``now``, earliest first:
        (id, run_id, kind, ref, due_at). Inside a write transaction; timers another
        transaction is claiming are skipped, never waited for."""
        ...

    def delete_timers(self, run_id: str, kind: str | None = None, ref: str | None = None) -> None:
        """Drop a run's timers (a timer another worker is firing right now is left to
        it: firing checks the run's state, so a leftover one does nothing)."""
        ...

    def next_due(self) -> float | None: ...

    def count_timers(self, due_by: float | None = None) -> int:
        """All timers, or those due by ``due_by``."""
        ...

    # -- outbox ---------------------------------------------------------------
    def add_message(self, values: tuple) -> bool:
        """``values`` in MESSAGE_COLUMNS order; False when the idempotency key exists."""
        ...

    def messages(self, run_id: str | None = None) -> list[dict]: ...

    # -- logs -----------------------------------------------------------------
    def add_log(self, run_id: str, ts: float, level: str, message: str, step_key: str | None,
                step_index: int | None) -> None: ...

    def logs_for(self, run_id: str) -> list[dict]: ...

    def rows_for_runs(self, table: str, run_ids: Sequence[str]) -> list[dict]:
        """The rows of ``table`` (``steps``, ``waits``, ``outbox``, ``logs`` or
        ``leases``) that belong to any of ``run_ids``, each run's rows in the order
        its own read (steps_for, waits_for, messages, logs_for, get_lease) gives them.
        Listing a page of runs in full costs a statement per table, not per run."""
        ...

    # -- leases ---------------------------------------------------------------
    def set_lease(self, run_id: str, owner: str, epoch: int, expires_at: float) -> None:
        """Lease a run to ``owner`` for the attempt ``epoch`` (the fencing token)."""
        ...

    def renew_lease(self, run_id: str, owner: str, epoch: int, expires_at: float) -> bool:
        """Extend a lease still held by ``owner`` at ``epoch``, in one conditional
        statement; False when it was taken over, cancelled or released meanwhile."""
        ...

    def check_leases(self, owner: str, held: Sequence[tuple[str, int]], valid_until: float) -> set[int]:
        """Of several (run_id, epoch) pairs, the epochs whose lease ``owner`` holds
        beyond ``valid_until``, in one read (no write, no commit).

        This default and the two below go lease by lease: right for a store with one
        writer (memory, SQLite), where a statement costs no round trip; PostgreSQL
        overrides them with one statement each."""
        return {epoch for run_id, epoch in held
                if (lease := self.get_lease(run_id)) is not None and lease["owner"] == owner
                and lease["epoch"] == epoch and lease["expires_at"] > valid_until}

    def renew_leases(self, owner: str, held: Sequence[tuple[str, int]], expires_at: float) -> set[int]:
        """``renew_lease`` for several (run_id, epoch) pairs in one conditional
        statement: the epochs still held (now until ``expires_at``)."""
        return {epoch for run_id, epoch in held if self.renew_lease(run_id, owner, epoch, expires_at)}

    def release_leases(self, owner: str, held: Sequence[tuple[str, int]]) -> set[int]:
        """``release_lease`` for several (run_id, epoch) pairs in one statement: the
        epochs whose lease was still held (their results may be recorded)."""
        return {epoch for run_id, epoch in held if self.release_lease(run_id, owner, epoch)}

    def release_lease(self, run_id: str, owner: str, epoch: int) -> bool:
        """The fence of a result: drop the lease if ``owner`` still holds it at
        ``epoch`` (True); False means the result must be discarded."""
        ...

    def steal_lease(self, run_id: str, owner: str, epoch: int, now: float, holder_dead: bool = False) -> bool:
        """Take over a lease that expired by ``now`` (or whose holder is known dead)
        if it is still ``owner``'s at ``epoch``: a renewal and a take-over never both win."""
        ...

    def get_lease(self, run_id: str) -> dict | None: ...

    def drop_lease(self, run_id: str) -> None: ...

    def leases(self, expired_by: float | None = None, host: str | None = None) -> list[dict]:
        """Leases, soonest expiry first: all of them, or those expired by
        ``expired_by`` plus (with ``host``) those held by owners on ``host``."""
        ...

    # -- workers --------------------------------------------------------------
    def heartbeat(self, worker_id: str, host: str, pid: int, now: float) -> None:
        """Record that a worker is alive (``engine status`` lists the live ones)."""
        ...

    def workers(self, seen_since: float) -> list[dict]: ...

    def remove_worker(self, worker_id: str) -> None: ...
