"""The SQLite store: one file in WAL mode, every write transaction ``BEGIN IMMEDIATE``
(one writer at a time, so row locks are implied). The default store."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from autorun_cli.engine.store import MESSAGE_COLUMNS, RUN_COLUMNS, SORTS, STEP_COLUMNS, WAIT_COLUMNS, Store
from autorun_cli.errors import ServiceError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS definitions (
  id TEXT NOT NULL, version INTEGER NOT NULL, name TEXT, trigger_event TEXT NOT NULL,
  digest TEXT NOT NULL, spec TEXT NOT NULL, source TEXT, source_path TEXT,
  loaded_at REAL NOT NULL, PRIMARY KEY (id, version));
CREATE INDEX IF NOT EXISTS definitions_trigger ON definitions(trigger_event);
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, definition_id TEXT NOT NULL, definition_version INTEGER NOT NULL,
  name TEXT, status TEXT NOT NULL, cursor TEXT, attempt INTEGER NOT NULL DEFAULT 0,
  attempt_floor INTEGER NOT NULL DEFAULT 0, trigger_event TEXT, trigger_event_id TEXT,
  trigger_payload TEXT, trigger_occurred_at TEXT, identity_type TEXT, identity_value TEXT,
  last_event TEXT, created_at REAL NOT NULL, updated_at REAL, started_at REAL,
  finished_at REAL, error_message TEXT, error_step TEXT, error_detail TEXT);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created_at);
CREATE TABLE IF NOT EXISTS steps (
  id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, key TEXT NOT NULL, type TEXT, name TEXT,
  step_index INTEGER, attempt INTEGER, status TEXT NOT NULL, started_at REAL,
  finished_at REAL, info TEXT, error TEXT, branch TEXT);
CREATE INDEX IF NOT EXISTS steps_run ON steps(run_id);
CREATE TABLE IF NOT EXISTS waits (
  id TEXT PRIMARY KEY, run_id TEXT NOT NULL, step_id INTEGER, step_key TEXT, event TEXT NOT NULL,
  match_field TEXT, match_equals TEXT, match_value TEXT, status TEXT NOT NULL,
  created_at REAL, timeout_at REAL, resumed_at REAL, timed_out_at REAL, branch TEXT,
  resumed_by TEXT);
CREATE INDEX IF NOT EXISTS waits_run ON waits(run_id);
CREATE INDEX IF NOT EXISTS waits_open ON waits(event, match_field, match_value) WHERE status = 'waiting';
CREATE TABLE IF NOT EXISTS timers (
  id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, kind TEXT NOT NULL, ref TEXT,
  due_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS timers_due ON timers(due_at);
CREATE INDEX IF NOT EXISTS timers_run ON timers(run_id);
CREATE TABLE IF NOT EXISTS events (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, payload TEXT, identity TEXT,
  occurred_at TEXT, received_at REAL NOT NULL, run_ids TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
  id TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE, run_id TEXT NOT NULL,
  step_key TEXT, channel TEXT, recipient TEXT, title TEXT, body TEXT, template TEXT,
  status TEXT, created_at REAL, detail TEXT);
CREATE TABLE IF NOT EXISTS logs (
  id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, ts REAL NOT NULL, level TEXT, message TEXT,
  step_key TEXT, step_index INTEGER);
CREATE INDEX IF NOT EXISTS logs_run ON logs(run_id);
CREATE TABLE IF NOT EXISTS leases (
  run_id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL);
"""
# Versioned migrations: (version, statements). A store records the last one applied
# in meta.schema_version and applies the newer ones, in one transaction, on open.
_MIGRATIONS: list[tuple[int, str]] = [
    (1, _SCHEMA),
    # The lease's epoch (the step row of the attempt it guards) is the fencing token:
    # renewals, take-overs and the result's commit are conditional on owner + epoch.
    (2, "ALTER TABLE leases ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;"
        "CREATE INDEX IF NOT EXISTS leases_expiry ON leases(expires_at)"),
    # Live workers (heartbeats) for `autorun engine status`.
    (3, "CREATE TABLE IF NOT EXISTS workers (id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,"
        " started_at REAL NOT NULL, last_seen REAL NOT NULL)"),
]
SCHEMA_VERSION = _MIGRATIONS[-1][0]



class _Guarded:
    """The store's connection once open: a statement that fails because of the file
    (locked past the busy timeout, damaged, the disk full or failing) raises the
    service error users see as exit 5, not an internal error."""

    __slots__ = ("raw", "where")

    def __init__(self, raw: sqlite3.Connection, where: str):
        self.raw = raw
        self.where = where

    def execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        try:
            return self.raw.execute(sql, args)
        except sqlite3.DatabaseError as exc:
            if type(exc) not in (sqlite3.OperationalError, sqlite3.DatabaseError):
                raise  # IntegrityError, ProgrammingError…: not the file's fault
            raise _failed(exc, self.where) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def _failed(exc: sqlite3.Error, where: str) -> ServiceError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return ServiceError(f"the engine's store {where} is locked: another process held its write lock "
                            "longer than the busy timeout",
                            hint="let the other autorun process (an `engine work`?) finish or stop it, "
                                 "then run the command again")
    if "malformed" in text or "not a database" in text:
        return ServiceError(f"the engine's store {where} is damaged: {text}",
                            hint="restore the file from a backup, or move it away to start a new store")
    return ServiceError(f"the engine's store {where} failed: {text}",
                        hint="check the disk it is on (space, permissions, errors), then run the command again")


class SQLiteStore(Store):
    """SQLite in WAL mode; every write transaction is ``BEGIN IMMEDIATE``.

    ``path=":memory:"`` gives a private, non-durable store (replay, tests): same
    code, journal in memory, no fsync.

    ``synchronous="NORMAL"`` (the default) in WAL mode: a commit survives a crash of
    the process (the WAL is in the OS before COMMIT returns) but the last commits
    may be lost on power failure; ``"FULL"`` fsyncs the WAL on every commit.
    """

    retryable: tuple[type[BaseException], ...] = ()

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL", busy_timeout_ms: int = 10000):
        self.path = str(path)
        self.memory = self.path == ":memory:"
        if not self.memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=busy_timeout_ms / 1000,
                                    check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        c = self.conn
        c.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if self.memory:
            journal = c.execute("PRAGMA journal_mode = MEMORY").fetchone()[0]
            c.execute("PRAGMA synchronous = OFF")
        else:
            journal = self._enter_wal()
            c.execute(f"PRAGMA synchronous = {synchronous}")
        c.execute("PRAGMA temp_store = MEMORY")
        c.execute("PRAGMA cache_size = -16000")
        self.settings = {
            "path": self.path,
            "journal_mode": journal,
            "synchronous": "OFF" if self.memory else synchronous.upper(),
            "busy_timeout_ms": busy_timeout_ms,
            "transactions": "BEGIN IMMEDIATE for every write",
            "sqlite_version": sqlite3.sqlite_version,
        }
        self.applied_on_open = self.migrate()
        self.conn = cast(sqlite3.Connection, _Guarded(self.conn, self.describe()))

    def _enter_wal(self) -> str:
        """Switch to WAL. Two processes opening a new store at once can see the
        switch answer "database is locked" without waiting on the busy timeout, so
        it is retried for a while (the first process finishes in milliseconds)."""
        deadline = time.monotonic() + 5.0
        while True:
            try:
                return self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                contended = "locked" in str(exc) or "busy" in str(exc)
                if not contended or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @classmethod
    def memory_store(cls) -> SQLiteStore:
        return cls(":memory:")

    def describe(self) -> str:
        return "sqlite:///" + self.path  # an absolute path: sqlite:////abs/path

    def wait_for_work(self, timeout: float) -> None:
        if timeout > 0:
            time.sleep(timeout)  # SQLite cannot signal another process: polling

    def schema_version(self) -> int:
        """The last migration applied (0 for an empty database)."""
        has_meta = self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        if not has_meta:
            return 0
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def migrate(self) -> list[int]:
        """Apply the migrations this store lacks; returns the versions applied."""
        if self.schema_version() >= SCHEMA_VERSION:
            return []
        self.begin()
        try:
            current = self.schema_version()  # again, under the write lock
            if current > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"store schema version {current} is newer than this autorun ({SCHEMA_VERSION}); upgrade autorun")
            applied = []
            for version, script in _MIGRATIONS:
                if version <= current:
                    continue
                for stmt in script.split(";"):
                    if stmt.strip():
                        self.conn.execute(stmt)
                applied.append(version)
            self.conn.execute("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                              (str(SCHEMA_VERSION),))
            self.commit()
        except BaseException:
            self.rollback()
            raise
        return applied

    # -- transactions ---------------------------------------------------------
    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()

    def _all(self, sql: str, args: tuple = ()) -> list[dict]:
        return [dict(r) for r in self.conn.execute(sql, args).fetchall()]

    def _one(self, sql: str, args: tuple = ()) -> dict | None:
        row = self.conn.execute(sql, args).fetchone()
        return dict(row) if row is not None else None

    # -- definitions ----------------------------------------------------------
    def latest_definition(self, def_id: str) -> dict | None:
        return self._one("SELECT * FROM definitions WHERE id = ? ORDER BY version DESC LIMIT 1", (def_id,))

    def get_definition(self, def_id: str, version: int) -> dict | None:
        return self._one("SELECT * FROM definitions WHERE id = ? AND version = ?", (def_id, version))

    def insert_definition(self, row: dict) -> None:
        self.conn.execute(
            "INSERT INTO definitions (id, version, name, trigger_event, digest, spec, source, source_path, loaded_at)"
            " VALUES (:id, :version, :name, :trigger_event, :digest, :spec, :source, :source_path, :loaded_at)",
            row,
        )

    def list_definitions(self, all_versions: bool = False) -> list[dict]:
        if all_versions:
            return self._all("SELECT * FROM definitions ORDER BY id, version")
        return self._all(
            "SELECT d.* FROM definitions d WHERE d.version = "
            "(SELECT MAX(version) FROM definitions WHERE id = d.id) ORDER BY d.id"
        )

    def definition_count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM definitions").fetchone()[0]

    def definitions_for_trigger(self, event: str) -> list[tuple[str, int]]:
        rows = self.conn.execute(
            "SELECT d.id, d.version FROM definitions d WHERE d.trigger_event = ? AND d.version = "
            "(SELECT MAX(version) FROM definitions WHERE id = d.id) ORDER BY d.id",
            (event,),
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    # -- events ---------------------------------------------------------------
    def add_event(self, row: dict) -> bool:
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO events (id, kind, name, payload, identity, occurred_at, received_at)"
            " VALUES (:id, :kind, :name, :payload, :identity, :occurred_at, :received_at)",
            row,
        )
        return cur.rowcount == 1

    def set_event_runs(self, event_id: str, run_ids: list[str]) -> None:
        self.conn.execute("UPDATE events SET run_ids = ? WHERE id = ?", (json.dumps(run_ids), event_id))

    def get_event(self, event_id: str) -> dict | None:
        return self._one("SELECT * FROM events WHERE id = ?", (event_id,))

    # -- runs -----------------------------------------------------------------
    _INSERT_RUN = f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
    _UPDATE_RUN = (
        f"UPDATE runs SET {', '.join(c + ' = ?' for c in RUN_COLUMNS[1:])} WHERE id = ?"
    )

    def insert_run(self, values: tuple) -> None:
        self.conn.execute(self._INSERT_RUN, values)

    def update_run(self, values: tuple) -> None:
        self.conn.execute(self._UPDATE_RUN, values[1:] + values[:1])

    def get_run(self, run_id: str) -> dict | None:
        return self._one("SELECT * FROM runs WHERE id = ?", (run_id,))

    # BEGIN IMMEDIATE already holds the only write lock: a read is a locked read.
    lock_run = get_run

    def lock_runs(self, run_ids: Sequence[str]) -> None:
        pass

    def query_runs(self, *, statuses=None, automation=None, since=None, until=None, ids=None,
                   event_id=None, sort="-created_at", limit=None, offset=0) -> list[dict]:
        where, args = [], []
        if statuses:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            args += list(statuses)
        if automation:
            where.append("definition_id = ?")
            args.append(automation)
        if since is not None:
            where.append("created_at >= ?")
            args.append(since)
        if until is not None:
            where.append("created_at <= ?")
            args.append(until)
        if ids:
            where.append(f"id IN ({', '.join('?' * len(ids))})")
            args += list(ids)
        if event_id:
            # events.run_ids lists the runs an event started (no index on runs for it)
            where.append("id IN (SELECT value FROM json_each((SELECT run_ids FROM events WHERE id = ?)))")
            args.append(event_id)
        field = sort.lstrip("+-")
        column = SORTS.get(field, "created_at")
        direction = "DESC" if sort.startswith("-") else "ASC"
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        # Ties: runs created in the same millisecond keep their creation order; any
        # other field's ties are broken by run ID (the contract's stable sort).
        tie = "rowid" if column == "created_at" else "id"
        sql += f" ORDER BY {column} {direction}, {tie} {direction}"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            args += [int(limit), int(offset)]
        return self._all(sql, tuple(args))

    def count_runs(self, statuses=None) -> dict[str, int]:
        rows = self.conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
        return {r[0]: r[1] for r in rows if not statuses or r[0] in statuses}

    # -- steps ----------------------------------------------------------------
    _INSERT_STEP = f"INSERT INTO steps ({', '.join(STEP_COLUMNS)}) VALUES ({', '.join('?' * len(STEP_COLUMNS))})"

    def insert_step(self, values: tuple) -> int:
        return self.conn.execute(self._INSERT_STEP, values).lastrowid  # type: ignore[return-value]

    def finish_step(self, step_id, status, finished_at, info=None, error=None, branch=None) -> None:
        self.conn.execute(
            "UPDATE steps SET status = ?, finished_at = ?, info = COALESCE(?, info), error = ?, "
            "branch = COALESCE(?, branch) WHERE id = ?",
            (status, finished_at, info, error, branch, step_id),
        )

    def interrupt_steps(self, run_id, statuses, status, finished_at, error) -> int:
        cur = self.conn.execute(
            f"UPDATE steps SET status = ?, finished_at = ?, error = COALESCE(?, error) "
            f"WHERE run_id = ? AND status IN ({', '.join('?' * len(statuses))})",
            (status, finished_at, error, run_id, *statuses),
        )
        return cur.rowcount

    def steps_for(self, run_id: str) -> list[dict]:
        return self._all("SELECT * FROM steps WHERE run_id = ? ORDER BY id", (run_id,))

    # -- waits ----------------------------------------------------------------
    _INSERT_WAIT = f"INSERT INTO waits ({', '.join(WAIT_COLUMNS)}) VALUES ({', '.join('?' * len(WAIT_COLUMNS))})"

    def insert_wait(self, values: tuple) -> None:
        self.conn.execute(self._INSERT_WAIT, values)

    def resolve_wait(self, wait_id, status, at, branch, resumed_by=None) -> dict | None:
        # The WHERE status = 'waiting' is what makes event-vs-timeout resolve once.
        if status == "received":
            sql = ("UPDATE waits SET status = ?, resumed_at = ?, branch = ?, resumed_by = ? "
                   "WHERE id = ? AND status = 'waiting' RETURNING run_id, step_id, step_key, event, timeout_at")
            args: tuple = (status, at, branch, resumed_by, wait_id)
        elif status == "timed_out":
            sql = ("UPDATE waits SET status = ?, timed_out_at = ?, branch = ? "
                   "WHERE id = ? AND status = 'waiting' RETURNING run_id, step_id, step_key, event, timeout_at")
            args = (status, at, branch, wait_id)
        else:
            sql = ("UPDATE waits SET status = ?, branch = ? "
                   "WHERE id = ? AND status = 'waiting' RETURNING run_id, step_id, step_key, event, timeout_at")
            args = (status, branch, wait_id)
        row = self.conn.execute(sql, args).fetchone()
        return dict(row) if row is not None else None

    def find_open_waits(self, event, field, value) -> list[dict]:
        return self._all(
            "SELECT * FROM waits WHERE event = ? AND match_field = ? AND match_value = ? AND status = 'waiting'",
            (event, field, value),
        )

    def waits_for(self, run_id: str) -> list[dict]:
        return self._all("SELECT * FROM waits WHERE run_id = ? ORDER BY created_at, rowid", (run_id,))

    def open_waits_for(self, run_id: str) -> list[dict]:
        return self._all("SELECT * FROM waits WHERE run_id = ? AND status = 'waiting'", (run_id,))

    # -- timers ---------------------------------------------------------------
    def add_timer(self, run_id, kind, ref, due_at) -> None:
        self.conn.execute("INSERT INTO timers (run_id, kind, ref, due_at) VALUES (?, ?, ?, ?)",
                          (run_id, kind, ref, due_at))

    def pop_due(self, now: float, limit: int) -> list[tuple]:
        rows = self.conn.execute(
            "DELETE FROM timers WHERE id IN (SELECT id FROM timers WHERE due_at <= ? ORDER BY due_at, id LIMIT ?) "
            "RETURNING id, run_id, kind, ref, due_at",
            (now, limit),
        ).fetchall()
        rows = [tuple(r) for r in rows]
        rows.sort(key=lambda r: (r[4], r[0]))  # RETURNING order is unspecified
        return rows

    def delete_timers(self, run_id, kind=None, ref=None) -> None:
        if kind is None:
            self.conn.execute("DELETE FROM timers WHERE run_id = ?", (run_id,))
        elif ref is None:
            self.conn.execute("DELETE FROM timers WHERE run_id = ? AND kind = ?", (run_id, kind))
        else:
            self.conn.execute("DELETE FROM timers WHERE run_id = ? AND kind = ? AND ref = ?", (run_id, kind, ref))

    def next_due(self) -> float | None:
        row = self.conn.execute("SELECT MIN(due_at) FROM timers").fetchone()
        return row[0] if row else None

    def count_timers(self, due_by: float | None = None) -> int:
        if due_by is None:
            return self.conn.execute("SELECT COUNT(*) FROM timers").fetchone()[0]
        return self.conn.execute("SELECT COUNT(*) FROM timers WHERE due_at <= ?", (due_by,)).fetchone()[0]

    # -- outbox ---------------------------------------------------------------
    _INSERT_MSG = (
        f"INSERT OR IGNORE INTO outbox ({', '.join(MESSAGE_COLUMNS)}) VALUES ({', '.join('?' * len(MESSAGE_COLUMNS))})"
    )

    def add_message(self, values: tuple) -> bool:
        return self.conn.execute(self._INSERT_MSG, values).rowcount == 1

    def messages(self, run_id: str | None = None) -> list[dict]:
        if run_id is None:
            return self._all("SELECT * FROM outbox ORDER BY created_at, rowid")
        # Keys are "<run id>:<step key>", so the unique index on them finds a run's
        # messages (one index fewer to write on every message).
        return self._all(
            "SELECT * FROM outbox WHERE idempotency_key > ? AND idempotency_key < ? AND run_id = ? "
            "ORDER BY created_at, rowid",
            (run_id + ":", run_id + ";", run_id),
        )

    # -- logs -----------------------------------------------------------------
    def add_log(self, run_id, ts, level, message, step_key, step_index) -> None:
        self.conn.execute(
            "INSERT INTO logs (run_id, ts, level, message, step_key, step_index) VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, ts, level, message, step_key, step_index),
        )

    def logs_for(self, run_id: str) -> list[dict]:
        return self._all("SELECT * FROM logs WHERE run_id = ? ORDER BY ts, id", (run_id,))

    # Per table: the rows of a set of runs, in each run's own order (see rows_for_runs).
    _BULK = {
        "steps": "SELECT * FROM steps WHERE run_id IN ({ids}) ORDER BY id",
        "waits": "SELECT * FROM waits WHERE run_id IN ({ids}) ORDER BY created_at, rowid",
        "logs": "SELECT * FROM logs WHERE run_id IN ({ids}) ORDER BY ts, id",
        "leases": "SELECT * FROM leases WHERE run_id IN ({ids})",
        # No index on outbox.run_id: each run's key range on the unique key index, with
        # the bounds given as values (computed in SQL they defeat the index) and the
        # run_id check kept off any index (+), or SQLite builds a throwaway one per
        # statement: either is 15-25x slower.
        "outbox": "WITH r(id, lo, hi) AS (VALUES {ranges}) SELECT o.* FROM r CROSS JOIN outbox o"
                  " WHERE o.idempotency_key > r.lo AND o.idempotency_key < r.hi AND +o.run_id = r.id"
                  " ORDER BY o.created_at, o.rowid",
    }

    def rows_for_runs(self, table: str, run_ids: Sequence[str]) -> list[dict]:
        sql = self._BULK[table]
        out: list[dict] = []
        for lo in range(0, len(run_ids), 300):  # well under SQLite's bound-variable limit
            ids = run_ids[lo:lo + 300]
            if table == "outbox":
                out += self._all(sql.format(ranges=", ".join(["(?, ?, ?)"] * len(ids))),
                                 tuple(x for i in ids for x in (i, i + ":", i + ";")))
            else:
                out += self._all(sql.format(ids=", ".join("?" * len(ids))), tuple(ids))
        return out

    # -- leases ---------------------------------------------------------------
    def set_lease(self, run_id, owner, epoch, expires_at) -> None:
        self.conn.execute(
            "INSERT INTO leases (run_id, owner, epoch, expires_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(run_id) DO UPDATE SET owner = excluded.owner, epoch = excluded.epoch, "
            "expires_at = excluded.expires_at",
            (run_id, owner, epoch, expires_at),
        )

    def renew_lease(self, run_id, owner, epoch, expires_at) -> bool:
        return self.conn.execute(
            "UPDATE leases SET expires_at = ? WHERE run_id = ? AND owner = ? AND epoch = ?",
            (expires_at, run_id, owner, epoch),
        ).rowcount == 1

    def release_lease(self, run_id, owner, epoch) -> bool:
        return self.conn.execute(
            "DELETE FROM leases WHERE run_id = ? AND owner = ? AND epoch = ?", (run_id, owner, epoch)
        ).rowcount == 1

    def steal_lease(self, run_id, owner, epoch, now, holder_dead=False) -> bool:
        return self.conn.execute(
            "DELETE FROM leases WHERE run_id = ? AND owner = ? AND epoch = ? AND (expires_at <= ? OR ?)",
            (run_id, owner, epoch, now, 1 if holder_dead else 0),
        ).rowcount == 1

    def get_lease(self, run_id: str) -> dict | None:
        return self._one("SELECT * FROM leases WHERE run_id = ?", (run_id,))

    def drop_lease(self, run_id: str) -> None:
        self.conn.execute("DELETE FROM leases WHERE run_id = ?", (run_id,))

    def leases(self, expired_by: float | None = None, host: str | None = None) -> list[dict]:
        if expired_by is None:
            return self._all("SELECT * FROM leases ORDER BY expires_at")
        if host is None:
            return self._all("SELECT * FROM leases WHERE expires_at <= ? ORDER BY expires_at", (expired_by,))
        return self._all("SELECT * FROM leases WHERE expires_at <= ? OR substr(owner, 1, ?) = ? ORDER BY expires_at",
                         (expired_by, len(host) + 1, host + ":"))

    # -- workers ----------------------------------------------------------------
    def heartbeat(self, worker_id, host, pid, now) -> None:
        self.conn.execute(
            "INSERT INTO workers (id, host, pid, started_at, last_seen) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET last_seen = excluded.last_seen",
            (worker_id, host, pid, now, now),
        )

    def workers(self, seen_since: float) -> list[dict]:
        return self._all("SELECT * FROM workers WHERE last_seen >= ? ORDER BY started_at, id", (seen_since,))

    def remove_worker(self, worker_id: str) -> None:
        self.conn.execute("DELETE FROM workers WHERE id = ?", (worker_id,))
