"""The PostgreSQL store: one database shared by any number of workers on any number
of machines (``postgresql://USER@HOST:PORT/DB``; psycopg 3 and psycopg_pool, the
``autorun[postgres]`` extra, imported only when such a URL is used).

How it keeps the engine's guarantees without SQLite's single writer:

* Transactions are READ COMMITTED. ``lock_run``/``lock_runs`` take row locks
  (``SELECT … FOR UPDATE``, several in ID order), and the engine always locks a run
  before its waits, timers, steps and lease, so transactions never deadlock on one
  another; if PostgreSQL still picks a deadlock victim, its error is ``retryable``.
* Due timers are claimed in batches with ``FOR UPDATE SKIP LOCKED``: each worker
  takes rows no other transaction holds, and the claim (a DELETE) commits with what
  firing them did. ``delete_timers`` skips rows another worker is claiming.
* Conditional statements decide every race: ``INSERT … ON CONFLICT DO NOTHING``
  (event IDs, idempotency keys), ``UPDATE waits … WHERE status = 'waiting'``,
  and the lease statements on owner + epoch (+ expiry for a take-over).
* A commit that adds a timer sends ``NOTIFY autorun_work``: idle workers ``LISTEN``
  and wake at once; polling remains the fallback.
* The schema is created and upgraded by versioned migrations (``migrate``, run on
  first use under an advisory lock, so concurrent first users do not collide).
  Indexes keep claims and lookups O(log n): timers by due time, leases by expiry,
  open waits by (event, field, value), everything else by run.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, cast

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from autorun_cli.engine.store import MESSAGE_COLUMNS, RUN_COLUMNS, SORTS, STEP_COLUMNS, WAIT_COLUMNS, Store
from autorun_cli.errors import ServiceError

CHANNEL = "autorun_work"
_F = "DOUBLE PRECISION"

_V1 = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS definitions (
  id TEXT NOT NULL, version INTEGER NOT NULL, name TEXT, trigger_event TEXT NOT NULL,
  digest TEXT NOT NULL, spec TEXT NOT NULL, source TEXT, source_path TEXT,
  loaded_at {_F} NOT NULL, PRIMARY KEY (id, version));
CREATE INDEX IF NOT EXISTS definitions_trigger ON definitions(trigger_event);
CREATE TABLE IF NOT EXISTS runs (
  seq BIGSERIAL, id TEXT PRIMARY KEY, definition_id TEXT NOT NULL, definition_version INTEGER NOT NULL,
  name TEXT, status TEXT NOT NULL, cursor TEXT, attempt INTEGER NOT NULL DEFAULT 0,
  attempt_floor INTEGER NOT NULL DEFAULT 0, trigger_event TEXT, trigger_event_id TEXT,
  trigger_payload TEXT, trigger_occurred_at TEXT, identity_type TEXT, identity_value TEXT,
  last_event TEXT, created_at {_F} NOT NULL, updated_at {_F}, started_at {_F},
  finished_at {_F}, error_message TEXT, error_step TEXT, error_detail TEXT);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created_at, seq);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE INDEX IF NOT EXISTS runs_definition ON runs(definition_id, created_at);
CREATE TABLE IF NOT EXISTS steps (
  id BIGSERIAL PRIMARY KEY, run_id TEXT NOT NULL, key TEXT NOT NULL, type TEXT, name TEXT,
  step_index INTEGER, attempt INTEGER, status TEXT NOT NULL, started_at {_F},
  finished_at {_F}, info TEXT, error TEXT, branch TEXT);
CREATE INDEX IF NOT EXISTS steps_run ON steps(run_id, id);
CREATE TABLE IF NOT EXISTS waits (
  seq BIGSERIAL, id TEXT PRIMARY KEY, run_id TEXT NOT NULL, step_id BIGINT, step_key TEXT,
  event TEXT NOT NULL, match_field TEXT, match_equals TEXT, match_value TEXT, status TEXT NOT NULL,
  created_at {_F}, timeout_at {_F}, resumed_at {_F}, timed_out_at {_F}, branch TEXT,
  resumed_by TEXT);
CREATE INDEX IF NOT EXISTS waits_run ON waits(run_id);
CREATE INDEX IF NOT EXISTS waits_open ON waits(event, match_field, match_value) WHERE status = 'waiting';
CREATE TABLE IF NOT EXISTS timers (
  id BIGSERIAL PRIMARY KEY, run_id TEXT NOT NULL, kind TEXT NOT NULL, ref TEXT,
  due_at {_F} NOT NULL);
CREATE INDEX IF NOT EXISTS timers_due ON timers(due_at, id);
CREATE INDEX IF NOT EXISTS timers_run ON timers(run_id);
CREATE TABLE IF NOT EXISTS events (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, payload TEXT, identity TEXT,
  occurred_at TEXT, received_at {_F} NOT NULL, run_ids TEXT);
CREATE TABLE IF NOT EXISTS outbox (
  seq BIGSERIAL, id TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE, run_id TEXT NOT NULL,
  step_key TEXT, channel TEXT, recipient TEXT, title TEXT, body TEXT, template TEXT,
  status TEXT, created_at {_F}, detail TEXT);
CREATE INDEX IF NOT EXISTS outbox_run ON outbox(run_id, seq);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox(created_at, seq);
CREATE TABLE IF NOT EXISTS logs (
  id BIGSERIAL PRIMARY KEY, run_id TEXT NOT NULL, ts {_F} NOT NULL, level TEXT, message TEXT,
  step_key TEXT, step_index INTEGER);
CREATE INDEX IF NOT EXISTS logs_run ON logs(run_id, ts, id);
CREATE TABLE IF NOT EXISTS leases (
  run_id TEXT PRIMARY KEY, owner TEXT NOT NULL, epoch BIGINT NOT NULL, expires_at {_F} NOT NULL);
CREATE INDEX IF NOT EXISTS leases_expiry ON leases(expires_at);
CREATE TABLE IF NOT EXISTS workers (
  id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, started_at {_F} NOT NULL,
  last_seen {_F} NOT NULL);
"""

# Versioned migrations: (version, statements), applied in order, each store records
# the last one in meta.schema_version. Add new versions at the end; never edit one.
MIGRATIONS: list[tuple[int, str]] = [(1, _V1)]
SCHEMA_VERSION = MIGRATIONS[-1][0]
_STEP_ID_BLOCK = 16
_INF = float("inf")


@functools.lru_cache(maxsize=256)
def _split(query: str | bytes) -> list[str] | None:
    """A statement split at its ``%s`` placeholders (None: it has other ``%`` forms)."""
    text = query.decode() if isinstance(query, bytes) else query
    parts = text.split("%s")
    return None if any("%" in p for p in parts) else parts
_MIGRATE_LOCK = 7_311_015_001  # pg_advisory_xact_lock key: one migrator at a time

# The pool logs a connection it drops as broken (the server went away): the engine
# reports that failure itself, once, as the command's error; no stray stderr lines.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())

_pools: dict[str, ConnectionPool] = {}
_pools_lock = threading.Lock()


def public_url(url: str) -> str:
    """The URL without its password (for status, errors, logs)."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable URL)"
    user = info.get("user")
    host = info.get("host") or "localhost"
    port = info.get("port")
    db = info.get("dbname") or ""
    auth = f"{user}@" if user else ""
    where = f"{host}:{port}" if port else f"{host}"
    return f"postgresql://{auth}{where}/{db}"


def _pool(url: str) -> ConnectionPool:
    """One pool per URL and process: engines on threads share its connections."""
    with _pools_lock:
        pool = _pools.get(url)
        if pool is None:
            # One direct connection first: a wrong URL or a server that is down fails
            # at once with libpq's reason, not after the pool's timeout.
            psycopg.connect(url, connect_timeout=10).close()
            pool = ConnectionPool(url, min_size=0, max_size=64, open=True, timeout=30,
                                  kwargs={"autocommit": True, "row_factory": dict_row})
            _pools[url] = pool
        return pool


def close_pools() -> None:
    """Close every pool this process opened (tests, before their server stops)."""
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


class PostgresStore(Store):
    """One engine's connection to a shared PostgreSQL database (from a pool per URL)."""

    retryable: tuple[type[BaseException], ...] = (
        psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure, psycopg.errors.LockNotAvailable,
    )

    def __init__(self, url: str, *, migrate: bool = True, connect_timeout: float = 10.0):
        self.url = url
        self.path = public_url(url)
        self._pool = _pool(url)
        # Rows are dicts (dict_row); typed Any so each statement needs no cast.
        self.conn: Any = cast(Any, self._pool.getconn(timeout=connect_timeout))
        self._listener: psycopg.Connection[Any] | None = None
        self._notify = False
        self._closed = False
        # Inside a transaction, statements whose result the engine does not read wait
        # here and go out in one pipeline with the next statement that must answer
        # (or the COMMIT): a round trip per answer, not per statement.
        self._pending: list[tuple[Any, Any]] = []
        self._in_tx = False
        self._binder = psycopg.ClientCursor(self.conn)
        self._plain_strings = self.conn.execute(
            "SELECT current_setting('standard_conforming_strings') = 'on' AS on").fetchone()["on"]
        # Runs this transaction locked (lock_runs), as the engine last saved them:
        # lock_run answers from here instead of asking again.
        self._locked: dict[str, dict] = {}
        # Outbox keys of the runs lock_runs locked (see there).
        self._outbox: dict[str, set[str]] = {}
        # Step IDs drawn from the sequence after this transaction's last lock.
        self._step_ids: list[int] = []
        row = self.conn.execute("SELECT current_setting('server_version') AS v, "
                                "current_setting('synchronous_commit') AS sc, current_setting('fsync') AS fs").fetchone()
        assert row is not None
        self.settings = {
            "url": self.path,
            "transactions": "READ COMMITTED; row locks (FOR UPDATE), claims FOR UPDATE SKIP LOCKED",
            "server_version": row["v"],
            "synchronous_commit": row["sc"],
            "fsync": row["fs"],
        }
        self.applied_on_open: list[int] = []
        if migrate and self.schema_version() < SCHEMA_VERSION:
            self.applied_on_open = self.migrate()

    # -- the store itself -----------------------------------------------------
    def describe(self) -> str:
        return self.path

    def schema_version(self) -> int:
        row = self._x("SELECT to_regclass('meta') IS NOT NULL AS has").fetchone()
        if not row or not row["has"]:
            return 0
        row = self._x("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row["value"]) if row else 0

    def migrate(self) -> list[int]:
        applied: list[int] = []
        self.begin()
        try:
            self._x("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            current = self.schema_version()
            if current > SCHEMA_VERSION:
                raise psycopg.errors.FeatureNotSupported(
                    f"store schema version {current} is newer than this autorun ({SCHEMA_VERSION}); upgrade autorun")
            for version, script in MIGRATIONS:
                if version > current:
                    for stmt in script.split(";"):
                        if stmt.strip():
                            self._x(stmt.encode())
                    applied.append(version)
            if applied:
                self._x(
                    "INSERT INTO meta VALUES ('schema_version', %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(SCHEMA_VERSION),))
            self.commit()
        except BaseException:
            self.rollback()
            raise
        return applied

    def wait_for_work(self, timeout: float) -> None:
        if timeout <= 0:
            return
        try:
            if self._listener is None:
                self._listener = psycopg.connect(self.url, autocommit=True)
                self._listener.execute(f"LISTEN {CHANNEL}")
            for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                break
        except psycopg.Error:
            # No notifications (a pooler in transaction mode, a dropped connection):
            # polling is the fallback.
            self._drop_listener()
            time.sleep(timeout)

    def _drop_listener(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            except psycopg.Error:
                pass
            self._listener = None

    # -- transactions ---------------------------------------------------------
    def begin(self) -> None:
        self._pending = [("BEGIN ISOLATION LEVEL READ COMMITTED", ())]
        self._in_tx = True
        self._notify = False

    def commit(self) -> None:
        if self._notify:
            self._pending.append(("SELECT pg_notify(%s, '')", (CHANNEL,)))
            self._notify = False
        self._end()
        if len(self._pending) == 1 and self.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            self._pending = []  # only BEGIN was queued: nothing to commit
            return
        self._x("COMMIT")

    def rollback(self) -> None:
        self._notify = False
        self._end()
        self._pending = []  # never sent: nothing to undo
        status = self.conn.info.transaction_status
        if status == psycopg.pq.TransactionStatus.UNKNOWN:
            return  # the connection is gone: the server rolled the transaction back
        if status != psycopg.pq.TransactionStatus.IDLE:
            try:
                self.conn.execute("ROLLBACK")
            except (psycopg.OperationalError, psycopg.InterfaceError):
                pass  # lost on the way: same as above; the error that led here is reported

    def _end(self) -> None:
        self._in_tx = False
        self._locked.clear()
        self._outbox.clear()
        self._step_ids.clear()

    def _x(self, query: Any, args: Any = ()) -> Any:
        """Execute a statement whose answer is needed now, after the queued ones: all
        of them in one simple query, bound on this side (one round trip; a tenth of
        psycopg's cost per statement, which is what bounds a worker). An error of a
        queued statement is raised here."""
        try:
            return self._execute(query, args)
        except self.retryable:
            raise
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self._lost(exc) from None

    def _lost(self, exc: BaseException) -> ServiceError:
        """The server went away (stopped, restarted, the network dropped) or refused
        mid-command: the service failed (exit 5), said without the password."""
        reason = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
        password = psycopg.conninfo.conninfo_to_dict(self.url).get("password")
        if password:
            reason = reason.replace(str(password), "***")
        return ServiceError(
            f"the engine's store {self.path} failed: {reason}",
            hint="check that PostgreSQL is running there and reachable, then run the command again "
                 "(a transaction it cut short was rolled back, or is retried by a worker)",
        )

    def _execute(self, query: Any, args: Any) -> Any:
        if not self._pending:
            return self.conn.execute(query, args)
        pending, self._pending = self._pending, []
        pending.append((query, args))
        bind = self._bind
        text = ";".join([bind(q, a) for q, a in pending])
        cur = self.conn.cursor()
        cur.execute(text.encode(self.conn.info.encoding), prepare=False)
        while cur.nextset():
            pass
        return cur

    def _reads(self, *queries: tuple[Any, Any]) -> list[list[dict]]:
        """Several reads (after the queued writes) in one round trip: their rows."""
        try:
            return self._reads_now(queries)
        except self.retryable:
            raise
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self._lost(exc) from None

    def _reads_now(self, queries: tuple[tuple[Any, Any], ...]) -> list[list[dict]]:
        pending, self._pending = self._pending, []
        bind = self._bind
        cur = self.conn.cursor()
        cur.execute(";".join([bind(q, a) for q, a in pending + list(queries)]).encode(self.conn.info.encoding),
                    prepare=False)
        for _ in pending:
            cur.nextset()
        out = [cur.fetchall()]
        while cur.nextset():
            out.append(cur.fetchall())
        return out

    def _bind(self, query: Any, args: Any) -> str:
        """``query`` with ``args`` as SQL literals. Plain ``%s`` placeholders and
        text, numbers and NULL are quoted here (standard_conforming_strings is on:
        only ``'`` needs doubling); anything else is left to psycopg."""
        parts = _split(query) if self._plain_strings and not isinstance(args, dict) else None
        if parts is None or len(parts) != len(args) + 1:
            return self._binder.mogrify(query, args)
        out = [parts[0]]
        for value, part in zip(args, parts[1:], strict=True):
            t = type(value)
            if value is None:
                out.append("NULL")
            elif t is str:
                out.append("'" + value.replace("'", "''") + "'")
            elif t is int:
                out.append(str(value))
            elif t is float and value == value and value not in (_INF, -_INF):
                out.append(repr(value))
            else:
                out.append(self._binder.mogrify("%s", (value,)))
            out.append(part)
        return "".join(out)

    def _defer(self, query: Any, args: Any = ()) -> None:
        """A write whose result nobody reads: queued inside a transaction."""
        if self._in_tx:
            self._pending.append((query, args))
        else:
            self._x(query, args)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._drop_listener()
        try:
            self.rollback()
        except psycopg.Error:
            pass
        self._pool.putconn(self.conn)

    def _all(self, query: Any, args: Sequence[Any] = ()) -> list[dict]:
        return self._x(query, args).fetchall()

    def _one(self, query: Any, args: Sequence[Any] = ()) -> dict | None:
        return self._x(query, args).fetchone()

    def _count(self, query: Any, args: Sequence[Any] = ()) -> int:
        row = self._x(query, args).fetchone()
        return int(row["n"]) if row else 0

    # -- definitions ----------------------------------------------------------
    def latest_definition(self, def_id: str) -> dict | None:
        return self._one("SELECT * FROM definitions WHERE id = %s ORDER BY version DESC LIMIT 1", (def_id,))

    def get_definition(self, def_id: str, version: int) -> dict | None:
        return self._one("SELECT * FROM definitions WHERE id = %s AND version = %s", (def_id, version))

    def insert_definition(self, row: dict) -> None:
        self._defer(
            "INSERT INTO definitions (id, version, name, trigger_event, digest, spec, source, source_path, loaded_at)"
            " VALUES (%(id)s, %(version)s, %(name)s, %(trigger_event)s, %(digest)s, %(spec)s, %(source)s,"
            " %(source_path)s, %(loaded_at)s)",
            row,
        )

    def list_definitions(self, all_versions: bool = False) -> list[dict]:
        if all_versions:
            return self._all("SELECT * FROM definitions ORDER BY id, version")
        return self._all("SELECT DISTINCT ON (id) * FROM definitions ORDER BY id, version DESC")

    def definition_count(self) -> int:
        return self._count("SELECT COUNT(*) AS n FROM definitions")

    def definitions_for_trigger(self, event: str) -> list[tuple[str, int]]:
        rows = self._all(
            "SELECT id, version FROM (SELECT DISTINCT ON (id) id, version, trigger_event FROM definitions"
            " ORDER BY id, version DESC) d WHERE trigger_event = %s ORDER BY id",
            (event,),
        )
        return [(r["id"], r["version"]) for r in rows]

    # -- events ---------------------------------------------------------------
    def add_event(self, row: dict) -> bool:
        cur = self._x(
            "INSERT INTO events (id, kind, name, payload, identity, occurred_at, received_at)"
            " VALUES (%(id)s, %(kind)s, %(name)s, %(payload)s, %(identity)s, %(occurred_at)s, %(received_at)s)"
            " ON CONFLICT (id) DO NOTHING",
            row,
        )
        return cur.rowcount == 1

    def set_event_runs(self, event_id: str, run_ids: list[str]) -> None:
        import json

        self._defer("UPDATE events SET run_ids = %s WHERE id = %s", (json.dumps(run_ids), event_id))

    def get_event(self, event_id: str) -> dict | None:
        return self._one("SELECT * FROM events WHERE id = %s", (event_id,))

    # -- runs -----------------------------------------------------------------
    _INSERT_RUN = f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join(['%s'] * len(RUN_COLUMNS))})"
    _UPDATE_RUN = f"UPDATE runs SET {', '.join(c + ' = %s' for c in RUN_COLUMNS[1:])} WHERE id = %s"

    def insert_run(self, values: tuple) -> None:
        self._defer(self._INSERT_RUN, values)

    def update_run(self, values: tuple) -> None:
        self._defer(self._UPDATE_RUN, values[1:] + values[:1])
        locked = self._locked.get(values[0])
        if locked is not None:
            locked.update(zip(RUN_COLUMNS, values, strict=True))

    def get_run(self, run_id: str) -> dict | None:
        return self._one("SELECT * FROM runs WHERE id = %s", (run_id,))

    def lock_run(self, run_id: str) -> dict | None:
        row = self._locked.get(run_id)
        if row is None:
            row = self._one("SELECT * FROM runs WHERE id = %s FOR UPDATE", (run_id,))
            if row is None:
                return None
            self._took_locks([row])
        return dict(row)

    def lock_runs(self, run_ids: Sequence[str]) -> None:
        todo = [r for r in run_ids if r not in self._locked]
        if not todo:
            return
        if not self._in_tx:
            self._took_locks(self._all("SELECT * FROM runs WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (todo,)))
            return
        # With the runs, their outbox keys: only a transaction holding a run's lock
        # adds its messages (keys are "<run id>:<step key>"), so add_message then
        # knows whether its key is new without asking.
        runs, keys = self._reads(("SELECT * FROM runs WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (todo,)),
                                 ("SELECT run_id, idempotency_key FROM outbox WHERE run_id = ANY(%s)", (todo,)))
        self._took_locks(runs)
        self._outbox.update((r["id"], set()) for r in runs)
        for r in keys:
            if r["run_id"] in self._outbox:
                self._outbox[r["run_id"]].add(r["idempotency_key"])

    def _took_locks(self, rows: list[dict]) -> None:
        if self._in_tx:
            self._locked.update((r["id"], r) for r in rows)
        # Step IDs drawn before these locks could be lower than those of the
        # previous holder's steps: draw again (a run's steps sort by ID).
        self._step_ids.clear()

    def query_runs(self, *, statuses=None, automation=None, since=None, until=None, ids=None,
                   event_id=None, sort="-created_at", limit=None, offset=0) -> list[dict]:
        where: list[str] = []
        args: list[Any] = []
        if statuses:
            where.append("status = ANY(%s)")
            args.append(list(statuses))
        if automation:
            where.append("definition_id = %s")
            args.append(automation)
        if since is not None:
            where.append("created_at >= %s")
            args.append(since)
        if until is not None:
            where.append("created_at <= %s")
            args.append(until)
        if ids:
            where.append("id = ANY(%s)")
            args.append(list(ids))
        if event_id:
            where.append("id IN (SELECT jsonb_array_elements_text(run_ids::jsonb) FROM events WHERE id = %s)")
            args.append(event_id)
        column = SORTS.get(sort.lstrip("+-"), "created_at")
        direction = "DESC" if sort.startswith("-") else "ASC"
        # Ties: runs created in the same millisecond keep their creation order (seq);
        # any other field's ties are broken by run ID (the contract's stable sort).
        tie = "seq" if column == "created_at" else "id"
        query = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        query += f" ORDER BY {column} {direction}, {tie} {direction}"
        if limit is not None:
            query += " LIMIT %s OFFSET %s"
            args += [int(limit), int(offset)]
        return self._all(query.encode(), args)

    def count_runs(self, statuses=None) -> dict[str, int]:
        rows = self._all("SELECT status, COUNT(*) AS n FROM runs GROUP BY status")
        return {r["status"]: int(r["n"]) for r in rows if not statuses or r["status"] in statuses}

    # -- steps ----------------------------------------------------------------
    _INSERT_STEP = (f"INSERT INTO steps ({', '.join(STEP_COLUMNS)}) VALUES ({', '.join(['%s'] * len(STEP_COLUMNS))})"
                    " RETURNING id")

    _INSERT_STEP_ID = (f"INSERT INTO steps (id, {', '.join(STEP_COLUMNS)}) "
                       f"VALUES ({', '.join(['%s'] * (len(STEP_COLUMNS) + 1))})")

    def insert_step(self, values: tuple) -> int:
        if not self._in_tx:
            row = self._one(self._INSERT_STEP, values)
            assert row is not None
            return int(row["id"])
        # IDs drawn in blocks, after the run's lock was taken (see _took_locks): the
        # insert itself then waits in the pipeline like any other write.
        if not self._step_ids:
            rows = self._all("SELECT nextval(pg_get_serial_sequence('steps', 'id')) AS id "
                             "FROM generate_series(1, %s)", (max(_STEP_ID_BLOCK, len(self._locked)),))
            self._step_ids = sorted((int(r["id"]) for r in rows), reverse=True)
        step_id = self._step_ids.pop()
        self._defer(self._INSERT_STEP_ID, (step_id, *values))
        return step_id

    def finish_step(self, step_id, status, finished_at, info=None, error=None, branch=None) -> None:
        self._defer(
            "UPDATE steps SET status = %s, finished_at = %s, info = COALESCE(%s, info), error = %s, "
            "branch = COALESCE(%s, branch) WHERE id = %s",
            (status, finished_at, info, error, branch, step_id),
        )

    def interrupt_steps(self, run_id, statuses, status, finished_at, error) -> int:
        cur = self._x(
            "UPDATE steps SET status = %s, finished_at = %s, error = COALESCE(%s, error) "
            "WHERE run_id = %s AND status = ANY(%s)",
            (status, finished_at, error, run_id, list(statuses)),
        )
        return cur.rowcount

    def steps_for(self, run_id: str) -> list[dict]:
        return self._all("SELECT * FROM steps WHERE run_id = %s ORDER BY id", (run_id,))

    # -- waits ----------------------------------------------------------------
    _INSERT_WAIT = f"INSERT INTO waits ({', '.join(WAIT_COLUMNS)}) VALUES ({', '.join(['%s'] * len(WAIT_COLUMNS))})"

    def insert_wait(self, values: tuple) -> None:
        self._defer(self._INSERT_WAIT, values)

    def resolve_wait(self, wait_id, status, at, branch, resumed_by=None) -> dict | None:
        # WHERE status = 'waiting': under READ COMMITTED a concurrent resolver waits for
        # the first one's commit, re-reads the row and changes nothing.
        returning = " RETURNING run_id, step_id, step_key, event, timeout_at"
        if status == "received":
            return self._one("UPDATE waits SET status = %s, resumed_at = %s, branch = %s, resumed_by = %s "
                             "WHERE id = %s AND status = 'waiting'" + returning,
                             (status, at, branch, resumed_by, wait_id))
        if status == "timed_out":
            return self._one("UPDATE waits SET status = %s, timed_out_at = %s, branch = %s "
                             "WHERE id = %s AND status = 'waiting'" + returning, (status, at, branch, wait_id))
        return self._one("UPDATE waits SET status = %s, branch = %s WHERE id = %s AND status = 'waiting'" + returning,
                         (status, branch, wait_id))

    def time_out_waits(self, wait_ids, at) -> dict[str, dict]:
        if not wait_ids:
            return {}
        rows = self._all("UPDATE waits SET status = 'timed_out', timed_out_at = %s, branch = 'timed_out' "
                         "WHERE id = ANY(%s) AND status = 'waiting' "
                         "RETURNING id, run_id, step_id, step_key, event, timeout_at", (at, list(wait_ids)))
        return {r.pop("id"): r for r in rows}

    def find_open_waits(self, event, field, value) -> list[dict]:
        return self._all("SELECT * FROM waits WHERE event = %s AND match_field = %s AND match_value = %s "
                         "AND status = 'waiting'", (event, field, value))

    def waits_for(self, run_id: str) -> list[dict]:
        return self._all("SELECT * FROM waits WHERE run_id = %s ORDER BY created_at, seq", (run_id,))

    def open_waits_for(self, run_id: str) -> list[dict]:
        return self._all("SELECT * FROM waits WHERE run_id = %s AND status = 'waiting'", (run_id,))

    # -- timers ---------------------------------------------------------------
    def add_timer(self, run_id, kind, ref, due_at) -> None:
        self._defer("INSERT INTO timers (run_id, kind, ref, due_at) VALUES (%s, %s, %s, %s)",
                          (run_id, kind, ref, due_at))
        self._notify = True

    def pop_due(self, now: float, limit: int) -> list[tuple]:
        rows = self._all(
            "DELETE FROM timers WHERE id IN (SELECT id FROM timers WHERE due_at <= %s ORDER BY due_at, id "
            "LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id, run_id, kind, ref, due_at",
            (now, limit),
        )
        out = [(r["id"], r["run_id"], r["kind"], r["ref"], r["due_at"]) for r in rows]
        out.sort(key=lambda r: (r[4], r[0]))  # RETURNING order is unspecified
        return out

    def delete_timers(self, run_id, kind=None, ref=None) -> None:
        cond, args = "run_id = %s", [run_id]
        if kind is not None:
            cond += " AND kind = %s"
            args.append(kind)
        if ref is not None:
            cond += " AND ref = %s"
            args.append(ref)
        self._defer(f"DELETE FROM timers WHERE id IN (SELECT id FROM timers WHERE {cond} FOR UPDATE SKIP LOCKED)".encode(),
                    args)

    def next_due(self) -> float | None:
        row = self._one("SELECT due_at FROM timers ORDER BY due_at LIMIT 1")
        return row["due_at"] if row else None

    def count_timers(self, due_by: float | None = None) -> int:
        if due_by is None:
            return self._count("SELECT COUNT(*) AS n FROM timers")
        return self._count("SELECT COUNT(*) AS n FROM timers WHERE due_at <= %s", (due_by,))

    # -- outbox ---------------------------------------------------------------
    _INSERT_MSG = (f"INSERT INTO outbox ({', '.join(MESSAGE_COLUMNS)}) VALUES ({', '.join(['%s'] * len(MESSAGE_COLUMNS))})"
                   " ON CONFLICT (idempotency_key) DO NOTHING")

    def add_message(self, values: tuple) -> bool:
        key, run_id = values[1], values[2]
        known = self._outbox.get(run_id)
        if known is None or not key.startswith(run_id + ":"):
            return self._x(self._INSERT_MSG, values).rowcount == 1
        if key in known:
            return False
        known.add(key)
        self._defer(self._INSERT_MSG, values)
        return True

    def messages(self, run_id: str | None = None) -> list[dict]:
        if run_id is None:
            return self._all("SELECT * FROM outbox ORDER BY created_at, seq")
        return self._all("SELECT * FROM outbox WHERE run_id = %s ORDER BY created_at, seq", (run_id,))

    # -- logs -----------------------------------------------------------------
    def add_log(self, run_id, ts, level, message, step_key, step_index) -> None:
        self._defer(
            "INSERT INTO logs (run_id, ts, level, message, step_key, step_index) VALUES (%s, %s, %s, %s, %s, %s)",
            (run_id, ts, level, message, step_key, step_index),
        )

    def logs_for(self, run_id: str) -> list[dict]:
        return self._all("SELECT * FROM logs WHERE run_id = %s ORDER BY ts, id", (run_id,))

    # Per table: the rows of a set of runs, in each run's own order (see rows_for_runs).
    _BULK = {
        "steps": "SELECT * FROM steps WHERE run_id = ANY(%s) ORDER BY id",
        "waits": "SELECT * FROM waits WHERE run_id = ANY(%s) ORDER BY created_at, seq",
        "logs": "SELECT * FROM logs WHERE run_id = ANY(%s) ORDER BY ts, id",
        "leases": "SELECT run_id, owner, epoch, expires_at FROM leases WHERE run_id = ANY(%s)",
        "outbox": "SELECT * FROM outbox WHERE run_id = ANY(%s) ORDER BY created_at, seq",
    }

    def rows_for_runs(self, table: str, run_ids: Sequence[str]) -> list[dict]:
        if not run_ids:
            return []
        return self._all(self._BULK[table], (list(run_ids),))

    # -- leases ---------------------------------------------------------------
    def set_lease(self, run_id, owner, epoch, expires_at) -> None:
        self._defer(
            "INSERT INTO leases (run_id, owner, epoch, expires_at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (run_id) DO UPDATE SET owner = excluded.owner, epoch = excluded.epoch, "
            "expires_at = excluded.expires_at",
            (run_id, owner, epoch, expires_at),
        )

    def renew_lease(self, run_id, owner, epoch, expires_at) -> bool:
        if expires_at <= time.time():
            self._notify = True  # a lease handed back: wake a worker to take it over
        return self._x(
            "UPDATE leases SET expires_at = %s WHERE run_id = %s AND owner = %s AND epoch = %s",
            (expires_at, run_id, owner, epoch),
        ).rowcount == 1

    def check_leases(self, owner, held, valid_until) -> set[int]:
        if not held:
            return set()
        rows = self._all(
            "SELECT l.epoch FROM leases l JOIN unnest(%s::text[], %s::bigint[]) AS j(run_id, epoch) "
            "ON l.run_id = j.run_id AND l.epoch = j.epoch WHERE l.owner = %s AND l.expires_at > %s",
            ([h[0] for h in held], [h[1] for h in held], owner, valid_until))
        return {int(r["epoch"]) for r in rows}

    def renew_leases(self, owner, held, expires_at) -> set[int]:
        if not held:
            return set()
        if expires_at <= time.time():
            self._notify = True
        rows = self._all(
            "UPDATE leases l SET expires_at = %s FROM unnest(%s::text[], %s::bigint[]) AS j(run_id, epoch) "
            "WHERE l.run_id = j.run_id AND l.epoch = j.epoch AND l.owner = %s RETURNING l.epoch",
            (expires_at, [h[0] for h in held], [h[1] for h in held], owner))
        return {int(r["epoch"]) for r in rows}

    def release_leases(self, owner, held) -> set[int]:
        if not held:
            return set()
        rows = self._all(
            "DELETE FROM leases l USING unnest(%s::text[], %s::bigint[]) AS j(run_id, epoch) "
            "WHERE l.run_id = j.run_id AND l.epoch = j.epoch AND l.owner = %s RETURNING l.epoch",
            ([h[0] for h in held], [h[1] for h in held], owner))
        return {int(r["epoch"]) for r in rows}

    def release_lease(self, run_id, owner, epoch) -> bool:
        return self._x(
            "DELETE FROM leases WHERE run_id = %s AND owner = %s AND epoch = %s", (run_id, owner, epoch)
        ).rowcount == 1

    def steal_lease(self, run_id, owner, epoch, now, holder_dead=False) -> bool:
        return self._x(
            "DELETE FROM leases WHERE run_id = %s AND owner = %s AND epoch = %s AND (expires_at <= %s OR %s)",
            (run_id, owner, epoch, now, bool(holder_dead)),
        ).rowcount == 1

    def get_lease(self, run_id: str) -> dict | None:
        return self._one("SELECT run_id, owner, epoch, expires_at FROM leases WHERE run_id = %s", (run_id,))

    def drop_lease(self, run_id: str) -> None:
        self._defer("DELETE FROM leases WHERE run_id = %s", (run_id,))

    def leases(self, expired_by: float | None = None, host: str | None = None) -> list[dict]:
        cols = "SELECT run_id, owner, epoch, expires_at FROM leases"
        if expired_by is None:
            return self._all(cols + " ORDER BY expires_at")
        if host is None:
            return self._all(cols + " WHERE expires_at <= %s ORDER BY expires_at", (expired_by,))
        return self._all(cols + " WHERE expires_at <= %s OR starts_with(owner, %s) ORDER BY expires_at",
                         (expired_by, host + ":"))

    # -- workers --------------------------------------------------------------
    def heartbeat(self, worker_id, host, pid, now) -> None:
        self._defer(
            "INSERT INTO workers (id, host, pid, started_at, last_seen) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen",
            (worker_id, host, pid, now, now),
        )

    def workers(self, seen_since: float) -> list[dict]:
        return self._all("SELECT * FROM workers WHERE last_seen >= %s ORDER BY started_at, id", (seen_since,))

    def remove_worker(self, worker_id: str) -> None:
        self._defer("DELETE FROM workers WHERE id = %s", (worker_id,))


__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresStore", "public_url"]
