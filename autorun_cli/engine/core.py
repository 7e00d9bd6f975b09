"""The engine: starts runs from triggers, executes steps, resolves waits, fires timers.

Durability model (see the package docstring for the guarantees):

* Every state change happens inside one write transaction that moves a run from
  one consistent point to the next. Steps that only touch the store (messages into
  the outbox, conditions, scheduling a delay or a wait) are executed *inside* that
  transaction, so they commit together with the run's new cursor: after a crash
  they either all happened or none did.
* ``http_request`` leaves the machine, so it cannot be inside a transaction: the
  engine commits "attempt N running" plus a lease on the run, sends the request with
  ``Idempotency-Key: <run id>:<step key>`` (the same on every attempt) only while it
  holds that lease, then commits the outcome if releasing that very lease succeeds
  (the fence). A process that dies in between leaves an expired (or dead-pid)
  lease; ``work`` in any process takes the run over and sends again, same key.
* Timers (delays, retry backoffs, wait timeouts) are rows with an absolute due time;
  ``work`` deletes and fires them in the same transaction, so each fires once.
* A wait is resolved by ``UPDATE waits … WHERE status = 'waiting'``: whichever of
  the event and the timeout commits first wins, the other changes no row.

The parts live in their own modules: :mod:`.execution` (steps), :mod:`.scheduling`
(timers, the worker loop), :mod:`.delivery` (HTTP), :mod:`.recovery` (leases and
take-over), :mod:`.reads` (projections); this module holds the public operations
that start, resume, retry and cancel runs.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from autorun_cli.engine.base import EngineBase
from autorun_cli.engine.clock import Clock
from autorun_cli.engine.delivery import Delivery
from autorun_cli.engine.execution import Execution
from autorun_cli.engine.reads import Reads
from autorun_cli.engine.records import RETRYABLE, TERMINAL, Dispatch, LoadResult, RunRecord, WorkStats, match_key
from autorun_cli.engine.recovery import Recovery
from autorun_cli.engine.scheduling import Scheduling
from autorun_cli.engine.sqlite import SQLiteStore
from autorun_cli.engine.util import dig, iso, new_id
from autorun_cli.errors import NotAllowedError, ServiceError, UsageError

__all__ = ["RETRYABLE", "TERMINAL", "Dispatch", "Engine", "LoadResult", "RunRecord", "WorkStats", "default_home"]


def default_home() -> Path:
    """``$AUTORUN_HOME``, else ``$XDG_DATA_HOME/autorun``, else ``~/.local/share/autorun``."""
    env = os.environ.get("AUTORUN_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "autorun"


def _postgres_store(url: str) -> Any:
    """A PostgresStore, with the errors a user can fix said plainly (no password shown)."""
    try:
        from autorun_cli.engine import pgstore
    except ImportError:
        raise UsageError(
            "the engine's PostgreSQL store needs psycopg, which is not installed",
            hint="pip install 'autorun-cli[postgres]'",
        ) from None
    import psycopg
    import psycopg_pool

    public = pgstore.public_url(url)
    try:
        return pgstore.PostgresStore(url)
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
        reason = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
        raise ServiceError(
            f"cannot connect to the engine's store {public}: {_without_secret(reason, url)}",
            hint="check that PostgreSQL is running there and the user may log in (AUTORUN_ENGINE_URL, --engine-url)",
        ) from None
    except psycopg.ProgrammingError as exc:  # a malformed URL
        raise UsageError(f"not a usable PostgreSQL URL ({public}): {_without_secret(str(exc), url)}",
                         hint="postgresql://USER@HOST:PORT/DB") from None
    except psycopg.Error as exc:
        raise ServiceError(f"the engine's store {public} failed: {_without_secret(str(exc), url)}",
                           hint="run `autorun engine migrate` with a user that may create tables") from None


def _without_secret(text: str, url: str) -> str:
    from autorun_cli.textsafe import url_password

    password = url_password(url)
    return text.replace(password, "***") if password else text


class Engine(Scheduling, Recovery, Delivery, Execution, Reads, EngineBase):
    """One engine over one store. Not thread-safe: give each thread its own Engine
    (on the same database), as separate processes would."""

    @classmethod
    def open(cls, home: str | Path | None = None, **kwargs: Any) -> Engine:
        """The engine over ``<home>/engine.db`` (``default_home()`` when None)."""
        base = Path(home).expanduser() if home else default_home()
        try:
            base.mkdir(parents=True, exist_ok=True)
            store = SQLiteStore(base / "engine.db")
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(
                f"cannot open the local engine's store in {base}: {exc}",
                hint="set AUTORUN_HOME to a writable folder",
            ) from None
        return cls(store, **kwargs)

    @classmethod
    def connect(cls, url: str | None = None, *, home: str | Path | None = None, **kwargs: Any) -> Engine:
        """The engine over the store at ``url``: ``sqlite:///PATH`` (``sqlite:////abs/path``
        as SQLAlchemy writes it; a plain path works too) or ``postgresql://USER@HOST:PORT/DB``
        (a libpq URL; the password comes from it, ``PGPASSWORD`` or ``~/.pgpass`` and is
        never shown). ``None``: ``<home>/engine.db`` as :meth:`open`."""
        if not url:
            return cls.open(home, **kwargs)
        scheme = url.split(":", 1)[0].lower() if "://" in url else ""
        if scheme in ("postgresql", "postgres"):
            return cls(_postgres_store(url), **kwargs)
        if scheme == "sqlite":
            path = url.split("://", 1)[1]
            path = path[1:] if path.startswith("/") else path  # sqlite:///rel, sqlite:////abs
            if path.split("?", 1)[0] in ("", ":memory:"):
                return cls(SQLiteStore(":memory:"), **kwargs)
        elif scheme:
            raise UsageError(f"unsupported engine URL scheme {scheme!r}",
                             hint="use sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
        else:
            path = url
        target = Path(path).expanduser()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            store = SQLiteStore(target)
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(f"cannot open the local engine's store {target}: {exc}",
                             hint="point AUTORUN_ENGINE_URL (or --engine-url) at a writable file") from None
        return cls(store, **kwargs)

    @classmethod
    def memory(cls, clock: Clock | None = None, **kwargs: Any) -> Engine:
        """A non-durable engine on a :class:`MemoryStore` (replay, tests): the same
        semantics as on SQLite, several times faster, nothing kept."""
        from autorun_cli.engine.memstore import MemoryStore

        return cls(MemoryStore(), clock, **kwargs)

    # -- triggers and events ---------------------------------------------------
    def trigger(self, event: str, payload: dict[str, Any] | None = None, *, event_id: str | None = None,
                occurred_at: str | None = None, automation: str | None = None,
                identity: str | None = None) -> Dispatch:
        """Start one run per automation whose trigger is ``event`` (only ``automation``
        if given). The same ``event_id`` twice starts nothing new (``.duplicate`` is
        then True). An event no automation listens to is not recorded: the result is
        empty and not a duplicate, and the same ID can start runs once one is loaded.
        ``identity`` gives the run's identity value directly (replay: a recorded run's
        resolved identity) instead of resolving it from the payload."""
        payload = payload if payload is not None else {}
        if not isinstance(payload, dict):
            raise UsageError("a trigger payload must be a JSON object", hint='e.g. --payload \'{"order_id": "ord_1"}\'')
        now = self.clock.time()
        eid = event_id or new_id("evt", now)
        started: list[str] = []
        with self._tx("trigger"):
            targets = [(d, v) for d, v in self.store.definitions_for_trigger(event)
                       if not automation or d == automation]
            if not targets:
                # Not recorded: once an automation for it is loaded, the same event
                # ID must still be able to start it.
                return Dispatch([], event_id=eid, duplicate=self.store.get_event(eid) is not None)
            if not self.store.add_event({
                "id": eid, "kind": "trigger", "name": event, "payload": json.dumps(payload),
                "identity": None, "occurred_at": occurred_at or iso(now), "received_at": now,
            }):
                return Dispatch([], event_id=eid, duplicate=True)
            for def_id, version in targets:
                run = self._new_run(self._def(def_id, version), version, event, eid, payload,
                                    occurred_at or iso(now), now, identity)
                self._advance(run)
                started.append(run.id)
            self.store.set_event_runs(eid, started)  # same page as the event: no extra write
        self._drain()
        return Dispatch(started, event_id=eid)

    def send_event(self, event: str, payload: dict[str, Any] | None = None, *, event_id: str | None = None,
                   identity: str | None = None, occurred_at: str | None = None) -> Dispatch:
        """Deliver an event to waiting runs; returns the runs it resumed.

        A wait matches when the event's payload field (``match.field``) equals the
        wait's expected value, or — for waits that match on identity — when
        ``identity`` is given and equals the run's identity. A wait whose timeout is
        already due (even if no worker has fired it yet) times out instead: an event
        never beats a deadline that has passed. A duplicate ``event_id`` resumes nothing."""
        payload = payload if payload is not None else {}
        if not isinstance(payload, dict):
            raise UsageError("an event payload must be a JSON object", hint='e.g. --payload \'{"email": "a@b.c"}\'')
        now = self.clock.time()
        eid = event_id or new_id("evt", now)
        occurred = occurred_at or iso(now)
        resumed: list[str] = []
        with self._tx("event"):
            if not self.store.add_event({
                "id": eid, "kind": "event", "name": event, "payload": json.dumps(payload),
                "identity": identity, "occurred_at": occurred, "received_at": now,
            }):
                return Dispatch([], event_id=eid, duplicate=True)
            candidates: dict[str, dict] = {}
            for fld in self._wait_fields(event):
                value = dig(payload, fld)
                if value is not None:
                    for w in self.store.find_open_waits(event, fld, match_key(value)):
                        candidates.setdefault(w["id"], w)
                if identity is not None:
                    for w in self.store.find_open_waits(event, fld, identity):
                        if w["match_equals"] == "identity":
                            candidates.setdefault(w["id"], w)
            by_event = json.dumps({"id": eid, "event": event, "occurred_at": occurred, "payload": payload})
            # The runs first, in ID order, then their waits: the engine's lock order.
            self.store.lock_runs(sorted({w["run_id"] for w in candidates.values()}))
            for w in sorted(candidates.values(), key=lambda w: (w["created_at"], w["id"])):
                if w["timeout_at"] is not None and w["timeout_at"] <= now:
                    self.store.delete_timers(w["run_id"], "wait_timeout", w["id"])
                    self._fire_wait_timeout(w["id"], now)
                    continue
                row = self.store.resolve_wait(w["id"], "received", now, "received", by_event)
                if row is None:
                    continue
                self.store.delete_timers(w["run_id"], "wait_timeout", w["id"])
                run = self._load(row["run_id"])
                if run is None or run.status != "waiting" or run.cursor != row["step_key"]:
                    continue
                defn = self._def(run.definition_id, run.definition_version)
                step = defn.step(row["step_key"])
                self.store.finish_step(row["step_id"], "completed", now, info=f"received {event} ({eid})",
                                       branch="received")
                run.last = {"id": eid, "event": event, "occurred_at": occurred, "payload": payload}
                self._log(run, now, "info", f"wait {step.key}: received {event} ({eid})", defn, step.key)
                self._move(run, defn, step, step.on_received)
                run.status = "running"
                self._advance(run)
                resumed.append(run.id)
            if resumed:
                self.store.set_event_runs(eid, resumed)
        self._drain()
        return Dispatch(resumed, event_id=eid)

    # -- control ----------------------------------------------------------------
    def retry(self, run_id: str, *, force: bool = False, from_step: str | None = None, by: str | None = None) -> str:
        """Resume a failed, cancelled or timed-out run from the step where it stopped.
        Completed steps are not executed again (and their idempotency keys are
        unchanged). ``force`` also restarts the current step of a waiting/running run.

        ``from_step``: start again at that step instead, one the run has reached; the
        steps before it keep their recorded results and are not executed again (a
        message step at or after it finds its idempotency key in the outbox and sends
        nothing). An unknown key is a UsageError naming the run's step keys. ``by``
        (who asked) goes into the run's log."""
        with self._tx("retry"):
            run = self._require(run_id)
            if run.status == "completed" or (run.status not in RETRYABLE and not force):
                raise NotAllowedError(
                    f"run {run_id} is {run.status}; only failed, cancelled or timed-out runs can be retried",
                    hint="pass --force to restart its current step" if run.status != "completed"
                    else "a completed run has nothing left to resume; start a new one with `autorun trigger`",
                )
            now = self.clock.time()
            defn = self._def(run.definition_id, run.definition_version)
            stopped_at = run.cursor or run.error_step or defn.first
            attempts: dict[str, int] = {}
            if from_step is not None:
                for row in self.store.steps_for(run.id):
                    attempts[row["key"]] = max(attempts.get(row["key"], 0), row["attempt"] or 0)
                if from_step not in attempts:
                    reached = ", ".join(attempts) or "none"
                    known = any(s.key == from_step for s in defn.steps)
                    raise UsageError(
                        f"run {run_id} never reached step {from_step!r}" if known
                        else f"run {run_id}'s automation {defn.id} has no step {from_step!r}",
                        hint=f"start again at one of the steps it ran: {reached}",
                    )
            if run.status not in TERMINAL:
                self._close_open(run, now, "cancelled")
            who = f" by {by}" if by else ""
            if from_step is None:
                run.cursor = stopped_at
                self._log(run, now, "info", f"retried from step {run.cursor}{who}", defn, run.cursor)
                run.attempt_floor = run.attempt  # a fresh retry budget for the step
            else:
                run.cursor = from_step
                self._log(run, now, "info", f"restarted from step {from_step}{who} (it had stopped at {stopped_at})",
                          defn, from_step)
                # The next attempt of that step is numbered after its last recorded one.
                run.attempt = run.attempt_floor = attempts[from_step]
            run.status = "running"
            run.finished_at = None
            run.error_message = run.error_step = run.error_detail = None
            self._advance(run)
        self._drain()
        return run_id

    def cancel(self, run_id: str) -> str:
        """Stop a run that has not ended: open waits and timers are dropped, and an
        in-flight HTTP request's result is discarded by the fencing check."""
        with self._tx("cancel"):
            run = self._require(run_id)
            if run.status in TERMINAL:
                raise NotAllowedError(f"run {run_id} already ended ({run.status}); nothing to cancel",
                                      hint=f"autorun show {run_id}")
            now = self.clock.time()
            defn = self._def(run.definition_id, run.definition_version)
            self._close_open(run, now, "cancelled")
            self._finish(run, defn, "cancelled", now)
            self._save(run)
        return run_id
