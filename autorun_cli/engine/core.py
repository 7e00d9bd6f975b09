"""The engine: starts runs from triggers, executes steps, resolves waits, fires timers.

Durability model (see the package docstring for the guarantees):

* Every state change happens inside one write transaction (``BEGIN IMMEDIATE``)
  that moves a run from one consistent point to the next. Steps that only touch the
  store (messages into the outbox, conditions, scheduling a delay or a wait) are
  executed *inside* that transaction, so they commit together with the run's new
  cursor: after a crash they either all happened or none did.
* ``http_request`` leaves the machine, so it cannot be inside a transaction: the
  engine commits "attempt N running" plus a lease on the run, sends the request with
  ``Idempotency-Key: <run id>:<step key>`` (the same on every attempt), then commits
  the outcome, checking it still holds the lease (a fencing check). A process that
  dies in between leaves an expired (or dead-pid) lease; ``work`` in any process
  takes the run over and sends the request again with the same key.
* Timers (delays, retry backoffs, wait timeouts) are rows with an absolute due time;
  ``work`` deletes and fires them in the same transaction, so each fires once.
* A wait is resolved by ``UPDATE waits … WHERE status = 'waiting'``: whichever of
  the event and the timeout commits first wins, the other changes no row.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time as _time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autorun_cli.engine.clock import Clock, RealClock, _to_epoch
from autorun_cli.engine.store import RUN_COLUMNS, SQLiteStore, Store
from autorun_cli.engine.util import compare, dig, iso, new_id, render, render_any
from autorun_cli.errors import NotAllowedError, NotFoundError, UsageError

if TYPE_CHECKING:
    # Imported where used: reading runs needs no definition models (start-up time).
    from autorun_cli.engine.definition import Definition

TERMINAL = frozenset({"completed", "failed", "cancelled", "timed_out", "skipped"})
RETRYABLE = frozenset({"failed", "cancelled", "timed_out"})
CHANNELS = {"send_email_template": "email", "send_push_template": "push", "send_sms": "sms"}
# os.uname, not socket.gethostname: the same name, without importing socket at start-up.
_HOST = os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "localhost")


def default_home() -> Path:
    """``$AUTORUN_HOME``, else ``$XDG_DATA_HOME/autorun``, else ``~/.local/share/autorun``."""
    env = os.environ.get("AUTORUN_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "autorun"


class Dispatch(list):
    """Run ids started (trigger) or resumed (send_event); a list with two extra facts."""

    def __init__(self, run_ids: Iterable[str] = (), *, event_id: str, duplicate: bool = False):
        super().__init__(run_ids)
        self.event_id = event_id
        self.duplicate = duplicate


# Plain slotted classes rather than dataclasses: the engine loads on every local
# command, and building a dataclass costs start-up time.
class LoadResult:
    __slots__ = ("id", "version", "created", "path")

    def __init__(self, id: str, version: int, created: bool, path: str | None = None):
        self.id = id
        self.version = version
        self.created = created  # False: identical to the latest stored version, nothing new stored
        self.path = path

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "created": self.created, "path": self.path}

    def __repr__(self) -> str:
        return f"LoadResult(id={self.id!r}, version={self.version!r}, created={self.created!r}, path={self.path!r})"


class WorkStats:
    __slots__ = ("timers_fired", "recovered", "http_requests", "loops")

    def __init__(self) -> None:
        self.timers_fired = 0
        self.recovered = 0
        self.http_requests = 0
        self.loops = 0

    def as_dict(self) -> dict[str, int]:
        return {"timers_fired": self.timers_fired, "recovered": self.recovered,
                "http_requests": self.http_requests}


class _HttpJob:
    __slots__ = ("run_id", "step_key", "step_row", "attempt", "method", "url", "headers", "body", "timeout")

    def __init__(self, run_id: str, step_key: str, step_row: int, attempt: int, method: str, url: str,
                 headers: dict[str, str], body: Any, timeout: float):
        self.run_id = run_id
        self.step_key = step_key
        self.step_row = step_row
        self.attempt = attempt
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout


class _Run:
    __slots__ = RUN_COLUMNS + ("new", "payload", "last")

    def __init__(self, row: dict | None = None):
        self.new = row is None
        if row is not None:
            for k in RUN_COLUMNS:
                setattr(self, k, row[k])
            self.payload = json.loads(row["trigger_payload"]) if row["trigger_payload"] else {}
            self.last = json.loads(row["last_event"]) if row["last_event"] else None

    def values(self) -> tuple:
        self.trigger_payload = json.dumps(self.payload) if self.new else self.trigger_payload
        self.last_event = json.dumps(self.last) if self.last is not None else None
        return tuple(getattr(self, k) for k in RUN_COLUMNS)


def _match_key(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _short(seconds: float) -> str:
    """30m, 1h30m, 90s → 1m30s, 0.2 → 200ms: durations as a definition would write them."""
    if seconds < 1:
        return f"{int(round(seconds * 1000))}ms"
    out, rest = "", int(round(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out


class Engine:
    """One engine over one store. Not thread-safe: give each thread its own Engine
    (on the same database file), as separate processes would."""

    def __init__(
        self,
        store: Store,
        clock: Clock | None = None,
        *,
        sandbox: bool = False,
        lease_seconds: float = 30.0,
        owner: str | None = None,
        batch_size: int = 500,
        crash_hook: Callable[[str], None] | None = None,
        sandbox_http: Callable[[str, str, int], str | None] | None = None,
        concurrency: int = 8,
    ):
        self.store = store
        self.clock = clock or RealClock()
        self.sandbox = sandbox
        # With sandbox: (run id, step key, attempt) → an error for that HTTP attempt,
        # or None for success. Replay answers with what the recorded run's endpoint did.
        self.sandbox_http = sandbox_http
        self.lease_seconds = lease_seconds
        # HTTP requests in flight at once (each on a thread of a pool); the store is
        # only ever touched from the engine's own thread.
        self.concurrency = max(1, int(concurrency))
        self._pool: Any = None
        self.owner = owner or f"{_HOST}:{os.getpid()}:{os.urandom(4).hex()}"
        self.batch_size = batch_size
        # Test hook: called with "before_commit:<label>" / "after_commit:<label>".
        self._hook = crash_hook
        self._defs: dict[tuple[str, int], Definition] = {}
        self._depth = 0
        self._jobs: list[_HttpJob] = []
        self._http: Any = None
        self._stats = WorkStats()
        self._fields: dict[str, list[str]] = {}
        self._fields_count = -1

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
    def memory(cls, clock: Clock | None = None, **kwargs: Any) -> Engine:
        """A non-durable engine on a :class:`MemoryStore` (replay, tests): the same
        semantics as on SQLite, several times faster, nothing kept."""
        from autorun_cli.engine.memstore import MemoryStore

        return cls(MemoryStore(), clock, **kwargs)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._http is not None:
            self._http.close()
            self._http = None
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- transactions -----------------------------------------------------------
    @contextmanager
    def _tx(self, label: str) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.store.begin()
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self.store.rollback()
            self._jobs.clear()
            raise
        self._depth = 0
        try:
            if self._hook:
                self._hook("before_commit:" + label)
            self.store.commit()
        except BaseException:
            self.store.rollback()  # e.g. the disk is full: the transaction never happened
            self._jobs.clear()
            raise
        if self._hook:
            self._hook("after_commit:" + label)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group several operations into one transaction (one commit).

        HTTP requests that the batch reaches are sent after the commit."""
        with self._tx("batch"):
            yield
        self._drain()

    # -- definitions ------------------------------------------------------------
    def load(self, source: str | Path | Definition | Iterable[Definition]) -> list[LoadResult]:
        """Store definitions (a file, a folder, or parsed ones). Loading an unchanged
        definition again stores nothing; a changed one becomes a new version, which
        new runs use while existing runs keep the version they started on."""
        from autorun_cli.engine.definition import Definition, load_definitions

        if isinstance(source, (str, Path)):
            defs = load_definitions(source)
        elif isinstance(source, Definition):
            defs = [source]
        else:
            defs = list(source)
        out = []
        with self._tx("load"):
            now = self.clock.time()
            for d in defs:
                digest = d.digest()
                latest = self.store.latest_definition(d.id)
                if latest is not None and latest["digest"] == digest:
                    out.append(LoadResult(d.id, latest["version"], False, d.source_path))
                    continue
                version = (latest["version"] + 1) if latest else 1
                source_text = None
                if d.source_path:
                    try:
                        source_text = Path(d.source_path).read_text(encoding="utf-8")
                    except OSError:
                        source_text = None
                self.store.insert_definition({
                    "id": d.id, "version": version, "name": d.name, "trigger_event": d.trigger,
                    "digest": digest, "spec": json.dumps(d.spec()), "source": source_text,
                    "source_path": d.source_path, "loaded_at": now,
                })
                self._defs[(d.id, version)] = d
                out.append(LoadResult(d.id, version, True, d.source_path))
        return out

    def definitions(self, all_versions: bool = False) -> list[dict[str, Any]]:
        """Stored automations (latest version of each unless ``all_versions``)."""
        return [self._definition_dict(r) for r in self.store.list_definitions(all_versions)]

    def definition(self, def_id: str, version: int | None = None) -> dict[str, Any]:
        row = (self.store.get_definition(def_id, version) if version is not None
               else self.store.latest_definition(def_id))
        if row is None:
            known = ", ".join(r["id"] for r in self.store.list_definitions()) or "none loaded"
            raise NotFoundError(
                f"no automation {def_id!r}" + (f" version {version}" if version is not None else ""),
                hint=f"known automations: {known}; load one with `autorun automations load FILE`",
            )
        return self._definition_dict(row)

    def definition_model(self, def_id: str, version: int | None = None) -> Definition:
        d = self.definition(def_id, version)
        return self._def(d["id"], d["version"])

    def _definition_dict(self, row: dict) -> dict[str, Any]:
        spec = json.loads(row["spec"])
        return {
            "id": row["id"], "version": row["version"], "name": row["name"],
            "trigger": row["trigger_event"], "digest": row["digest"], "loaded_at": iso(row["loaded_at"]),
            "source_path": row["source_path"], "source": row["source"], "spec": spec,
            "identity": spec.get("identity"),
            "steps": [{"key": s["key"], "type": s["type"], "name": s.get("name")} for s in spec["steps"]],
        }

    def _wait_fields(self, event: str) -> list[str]:
        """Payload fields that waits on ``event`` match on, from every stored
        definition version (so a lookup never scans the open waits)."""
        count = self.store.definition_count()
        if count != self._fields_count:
            fields: dict[str, set[str]] = {}
            for row in self.store.list_definitions(all_versions=True):
                d = self._def(row["id"], row["version"])
                for st in d.steps:
                    if st.type == "wait_for_event":
                        fields.setdefault(st.event, set()).add(st.match.field or d.identity.from_)
            self._fields = {k: sorted(v) for k, v in fields.items()}
            self._fields_count = count
        return self._fields.get(event, [])

    def _def(self, def_id: str, version: int) -> Definition:
        d = self._defs.get((def_id, version))
        if d is None:
            row = self.store.get_definition(def_id, version)
            if row is None:
                raise NotFoundError(f"automation {def_id!r} version {version} is not in the store",
                                    hint="load it again with `autorun automations load FILE`")
            from autorun_cli.engine.definition import from_spec

            d = from_spec(json.loads(row["spec"]))
            self._defs[(def_id, version)] = d
        return d

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
                    for w in self.store.find_open_waits(event, fld, _match_key(value)):
                        candidates.setdefault(w["id"], w)
                if identity is not None:
                    for w in self.store.find_open_waits(event, fld, identity):
                        if w["match_equals"] == "identity":
                            candidates.setdefault(w["id"], w)
            by_event = json.dumps({"id": eid, "event": event, "occurred_at": occurred, "payload": payload})
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

    # -- scheduling ---------------------------------------------------------------
    def work(self, *, forever: bool = False, settle: float = 0.0, poll: float = 1.0,
             stop: Callable[[], bool] | None = None) -> WorkStats:
        """Fire due timers (delays, retries, wait timeouts) and take over runs whose
        worker died, until nothing is due. ``settle``: also sleep for timers due
        within that many seconds. ``forever``: keep going as a worker (sleeping until
        the next timer, at most ``poll`` seconds so other processes' work is seen)
        until ``stop()`` is true or the process is interrupted."""
        if forever and self.clock.virtual:
            raise UsageError("work(forever=True) needs a real clock", hint="use advance() on a virtual clock")
        stats = WorkStats()
        self._stats = stats
        while True:
            stats.loops += 1
            stats.recovered += self._recover()
            stats.timers_fired += self._process_due()
            if stop is not None and stop():
                break
            nd = self.store.next_due()
            now = self.clock.time()
            if forever:
                wait = poll if nd is None else min(max(nd - now, 0.0), poll)
                self.clock.sleep(wait)
                continue
            pending_lease = self._soonest_lease_expiry() if settle > 0 else None
            soonest = min((t for t in (nd, pending_lease) if t is not None), default=None)
            if settle > 0 and soonest is not None and soonest - now <= settle:
                pause = max(soonest - now, 0.0) + 0.001
                self.clock.sleep(pause)
                settle -= pause
                continue
            break
        return stats

    def next_due(self) -> datetime | None:
        nd = self.store.next_due()
        return None if nd is None else datetime.fromtimestamp(nd, tz=self.clock.now().tzinfo)

    def advance_to(self, when: datetime | float | str) -> int:
        """Virtual clock only: move time forward to ``when``, firing every timer at
        its own due time on the way (so timestamps are exact). Returns timers fired."""
        if not self.clock.virtual:
            raise UsageError("advance_to() needs a VirtualClock", hint="Engine(store, clock=VirtualClock())")
        target = _to_epoch(when)
        fired = 0
        clock = self.clock
        while True:
            nd = self.store.next_due()
            if nd is None or nd > target:
                break
            if nd > clock.time():
                clock.set(nd)  # type: ignore[attr-defined]
            fired += self._process_due()
        if target > clock.time():
            clock.set(target)  # type: ignore[attr-defined]
        return fired

    def advance(self, seconds: float) -> int:
        return self.advance_to(self.clock.time() + seconds)

    def _process_due(self) -> int:
        nd = self.store.next_due()  # a read: no write lock when nothing is due
        if nd is None or nd > self.clock.time():
            return 0
        fired = 0
        while True:
            with self._tx("timers"):
                now = self.clock.time()
                timers = self.store.pop_due(now, self.batch_size)
                for _tid, run_id, kind, ref, _due in timers:
                    self._fire(kind, run_id, ref, now)
            self._drain()
            fired += len(timers)
            if len(timers) < self.batch_size:
                return fired

    def _fire(self, kind: str, run_id: str, ref: str | None, now: float) -> None:
        if kind == "wait_timeout":
            self._fire_wait_timeout(ref or "", now)
            return
        run = self._load(run_id)
        if run is None:
            return
        defn = self._def(run.definition_id, run.definition_version)
        if kind == "delay":
            if run.status != "waiting":
                return
            step = defn.step(run.cursor)
            self.store.finish_step(int(ref or 0), "completed", now)
            self._move(run, defn, step, None)
            run.status = "running"
            self._advance(run)
        elif kind == "retry":
            if run.status != "running" or run.cursor != ref:
                return
            self._advance(run)

    def _fire_wait_timeout(self, wait_id: str, now: float) -> None:
        row = self.store.resolve_wait(wait_id, "timed_out", now, "timed_out")
        if row is None:
            return  # the event won: nothing to do
        run = self._load(row["run_id"])
        if run is None or run.status != "waiting" or run.cursor != row["step_key"]:
            return
        defn = self._def(run.definition_id, run.definition_version)
        step = defn.step(row["step_key"])
        waited = _short(step.timeout or 0)
        if step.on_timeout is None:
            self.store.finish_step(row["step_id"], "timed_out", now, info=f"no {step.event} within {waited}",
                                   branch="timed_out")
            run.error_message = f"no {step.event} event arrived within {waited}"
            run.error_step = step.key
            run.error_detail = None
            self._finish(run, defn, "timed_out", now)
            self._save(run)
            return
        self.store.finish_step(row["step_id"], "completed", now, info=f"no {step.event} within {waited}",
                               branch="timed_out")
        self._log(run, now, "info", f"wait {step.key}: timed out after {waited}, taking the timeout path",
                  defn, step.key)
        self._move(run, defn, step, step.on_timeout)
        run.status = "running"
        self._advance(run)

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

    def _close_open(self, run: _Run, now: float, status: str) -> None:
        for w in self.store.open_waits_for(run.id):
            self.store.resolve_wait(w["id"], status, now, None)
        self.store.delete_timers(run.id)
        self.store.interrupt_steps(run.id, ("waiting", "running"), status, now, None)
        self.store.drop_lease(run.id)

    # -- recovery -----------------------------------------------------------------
    def _owner_dead(self, owner: str) -> bool:
        host, _, rest = owner.partition(":")
        pid_text = rest.partition(":")[0]
        if host != _HOST or not pid_text.isdigit() or int(pid_text) == os.getpid():
            return False
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False

    def _soonest_lease_expiry(self) -> float | None:
        leases = [lease["expires_at"] for lease in self.store.leases() if lease["owner"] != self.owner]
        return min(leases) if leases else None

    def _recover(self) -> int:
        """Take over runs whose worker stopped mid-step (lease expired, or its
        process on this host is gone) and re-execute that step."""
        now = self.clock.time()
        stale = [(lease, self._owner_dead(lease["owner"])) for lease in self.store.leases()
                 if lease["owner"] != self.owner]
        stale = [(lease, dead) for lease, dead in stale if dead or lease["expires_at"] <= now]
        taken = 0
        for lease, dead in stale:
            with self._tx("recover"):
                # Conditional on the same owner, epoch and expiry: a holder that
                # renewed its lease meanwhile keeps it, and only one process takes it.
                if not self.store.steal_lease(lease["run_id"], lease["owner"], lease["epoch"], self.clock.time(), dead):
                    continue
                run = self._load(lease["run_id"])
                if run is None or run.status != "running":
                    continue
                defn = self._def(run.definition_id, run.definition_version)
                now = self.clock.time()
                n = self.store.interrupt_steps(
                    run.id, ("running",), "failed", now,
                    "interrupted: the worker running this attempt stopped; re-executed with the same idempotency key",
                )
                if n:
                    run.attempt_floor += 1  # an interrupted attempt does not use up the retry budget
                self._log(run, now, "warning",
                          f"worker {lease['owner']} stopped during step {run.cursor}; resuming it here",
                          defn, run.cursor)
                self._advance(run)
                taken += 1
            self._drain()
        return taken

    # -- execution ----------------------------------------------------------------
    def _new_run(self, defn: Definition, version: int, event: str, event_id: str, payload: dict,
                 occurred_at: str, now: float, identity: str | None = None) -> _Run:
        run = _Run()
        run.id = new_id("run", now)
        run.definition_id = defn.id
        run.definition_version = version
        run.name = defn.name
        run.cursor = defn.first
        run.attempt = 0
        run.attempt_floor = 0
        run.trigger_event = event
        run.trigger_event_id = event_id
        run.payload = payload
        run.trigger_payload = None
        run.trigger_occurred_at = occurred_at
        run.identity_type = defn.identity.type
        value = identity if identity is not None else dig(payload, defn.identity.from_)
        run.identity_value = None if value is None else str(value)
        run.last = None
        run.last_event = None
        run.created_at = run.updated_at = run.started_at = now
        run.finished_at = None
        run.error_message = run.error_step = run.error_detail = None
        run.status = "running"
        self._log(run, now, "info", f"started by {event} ({event_id})"
                  + (f" for {run.identity_type} {run.identity_value}" if value is not None else ""), defn, None)
        if value is None:
            run.error_message = f"identity not resolved: the payload has no {defn.identity.from_}"
            run.error_step = None
            run.error_detail = f"automation {defn.id} resolves its {defn.identity.type} identity from {defn.identity.from_}"
            self._finish(run, defn, "failed", now)
        return run

    def _load(self, run_id: str) -> _Run | None:
        row = self.store.get_run(run_id)
        return _Run(row) if row is not None else None

    def _require(self, run_id: str) -> _Run:
        run = self._load(run_id)
        if run is None:
            raise NotFoundError(f"no local run {run_id!r}", hint="list local runs with `autorun list`")
        return run

    def _save(self, run: _Run) -> None:
        run.updated_at = self.clock.time()
        if run.new:
            self.store.insert_run(run.values())
            run.new = False
        else:
            self.store.update_run(run.values())

    def _log(self, run: _Run, now: float, level: str, message: str, defn: Definition | None,
             step_key: str | None) -> None:
        index = defn.index(step_key) if (defn is not None and step_key) else None
        self.store.add_log(run.id, now, level, message, step_key, index)

    def _ctx(self, run: _Run) -> dict[str, Any]:
        return {
            "payload": run.payload,
            "identity": {"type": run.identity_type, "value": run.identity_value},
            "event": (run.last or {}).get("payload") or {},
            "run": {"id": run.id, "automation_id": run.definition_id},
            "trigger": {"event": run.trigger_event, "id": run.trigger_event_id},
        }

    def _move(self, run: _Run, defn: Definition, step: Any, target: str | None) -> None:
        run.cursor = defn.resolve(step, target)
        run.attempt = 0
        run.attempt_floor = 0

    def _finish(self, run: _Run, defn: Definition, status: str, now: float) -> None:
        run.status = status
        run.finished_at = now
        if status == "completed":
            run.cursor = None
        self._log(run, now, "error" if status in ("failed", "timed_out") else "info",
                  f"run {status}" + (f": {run.error_message}" if run.error_message and status != "completed" else ""),
                  defn, run.cursor)

    def _advance(self, run: _Run) -> None:
        """Execute steps until the run ends or must wait; then save it."""
        defn = self._def(run.definition_id, run.definition_version)
        store = self.store
        while run.status == "running":
            key = run.cursor
            now = self.clock.time()
            if key is None:
                self._finish(run, defn, "completed", now)
                break
            step = defn.step(key)
            kind = step.type
            run.attempt += 1
            idx = defn.index(key)
            if kind in CHANNELS or kind == "http_request" and self.sandbox:
                ok, info, error = self._deliver(run, step, now)
                if ok:
                    store.insert_step((run.id, key, kind, step.name, idx, run.attempt, "completed", now, now,
                                       info, None, None))
                    self._move(run, defn, step, None)
                else:
                    row = store.insert_step((run.id, key, kind, step.name, idx, run.attempt, "failed", now, now,
                                             None, error, None))
                    if self._failed(run, defn, step, now, error or "failed", row):
                        break
            elif kind == "http_request":
                self._begin_http(run, defn, step, now, idx)
                break
            elif kind == "wait_for_event":
                self._begin_wait(run, defn, step, now, idx)
            elif kind == "delay":
                row = store.insert_step((run.id, key, kind, step.name, idx, run.attempt, "waiting", now, None,
                                         f"until {iso(now + step.duration)}", None, None))
                store.add_timer(run.id, "delay", str(row), now + step.duration)
                run.status = "waiting"
            elif kind == "condition":
                actual = dig(self._ctx(run), step.field)
                try:
                    result = compare(actual, step.op, step.value)
                except TypeError:
                    result = False
                branch = "true" if result else "false"
                store.insert_step((run.id, key, kind, step.name, idx, run.attempt, "completed", now, now,
                                   f"{step.field} {step.op} {step.value!r}: {actual!r} → {branch}", None, branch))
                self._move(run, defn, step, step.on_true if result else step.on_false)
            elif kind == "fail":
                message = render(step.message, self._ctx(run))
                row = store.insert_step((run.id, key, kind, step.name, idx, run.attempt, "failed", now, now,
                                         None, message, None))
                if self._failed(run, defn, step, now, message, row):
                    break
        self._save(run)

    def _failed(self, run: _Run, defn: Definition, step: Any, now: float, error: str, step_row: int) -> bool:
        """Schedule a retry (True: stop advancing until it is due) or fail the run."""
        used = run.attempt - run.attempt_floor
        if used < step.retry.attempts:
            due = now + step.retry.delay(used)
            self.store.add_timer(run.id, "retry", step.key, due)
            self._log(run, now, "warning",
                      f"step {step.key} attempt {run.attempt} failed: {error}; retry {used + 1}/{step.retry.attempts}"
                      f" in {_short(due - now)}", defn, step.key)
            run.status = "running"  # still running: the retry timer resumes it
            return True
        run.error_message = f"step {step.key} failed" + (f" after {used} attempts" if used > 1 else "") + f": {error}"
        run.error_step = step.key
        run.error_detail = error
        self._finish(run, defn, "failed", now)
        return False

    def _deliver(self, run: _Run, step: Any, now: float) -> tuple[bool, str | None, str | None]:
        """Messages (and sandboxed HTTP) go to the outbox, keyed by run and step."""
        ctx = self._ctx(run)
        key = f"{run.id}:{step.key}"
        kind = step.type
        if kind == "http_request":
            url = render(step.url, ctx)
            failure = self.sandbox_http(run.id, step.key, run.attempt - run.attempt_floor) if self.sandbox_http else None
            if failure:
                return False, None, f"sandbox: {step.method} {url}: {failure}"
            body = render_any(step.body, ctx)
            values = (new_id("msg", now), key, run.id, step.key, "http", url, f"{step.method} {url}",
                      json.dumps(body) if body is not None else None, None, "sandboxed", now,
                      json.dumps({"headers": render_any(step.headers, ctx), "Idempotency-Key": key}))
            info = f"sandbox: {step.method} {url} recorded, not sent"
        else:
            to = render(step.to, ctx) if step.to else run.identity_value
            if not to:
                return False, None, f"no recipient: {step.to or 'the run identity'} is empty"
            channel = CHANNELS[kind]
            if kind == "send_sms":
                title, body, template = render(step.text, ctx), None, None
            else:
                title = render(step.subject if kind == "send_email_template" else step.title, ctx)
                body = render(step.body, ctx) if step.body else None
                template = step.template
            values = (new_id("msg", now), key, run.id, step.key, channel, to, title, body, template, "sent", now, None)
            info = f"{channel} to {to}: {title}"
        if not self.store.add_message(values):
            info = f"already delivered (idempotency key {key}); not sent again"
        return True, info, None

    def _begin_wait(self, run: _Run, defn: Definition, step: Any, now: float, idx: int) -> None:
        match = step.match
        fld = match.field or defn.identity.from_
        if match.equals == "identity":
            expected = run.identity_value
        else:
            value = dig(self._ctx(run), match.equals)
            expected = None if value is None else _match_key(value)
        timeout_at = now + step.timeout if step.timeout is not None else None
        info = f"for {step.event} where {fld} = {expected}" + (
            f", until {iso(timeout_at)}" if timeout_at is not None else "")
        row = self.store.insert_step((run.id, step.key, step.type, step.name, idx, run.attempt, "waiting", now,
                                      None, info, None, None))
        wait_id = new_id("wait", now)
        self.store.insert_wait((wait_id, run.id, row, step.key, step.event, fld, match.equals, expected,
                                "waiting", now, timeout_at))
        if timeout_at is not None:
            self.store.add_timer(run.id, "wait_timeout", wait_id, timeout_at)
        run.status = "waiting"

    def _begin_http(self, run: _Run, defn: Definition, step: Any, now: float, idx: int) -> None:
        ctx = self._ctx(run)
        url = render(step.url, ctx)
        row = self.store.insert_step((run.id, step.key, step.type, step.name, idx, run.attempt, "running", now,
                                      None, f"{step.method} {url}", None, None))
        # The attempt's step row is the lease's epoch: unique per attempt, so a late
        # result of an earlier attempt (or of another worker) never matches.
        self.store.set_lease(run.id, self.owner, row, now + self.lease_seconds)
        self._jobs.append(_HttpJob(run.id, step.key, row, run.attempt, step.method, url,
                                   render_any(dict(step.headers), ctx), render_any(step.body, ctx), step.timeout))

    def _drain(self) -> None:
        """Send the HTTP requests the last transactions reached, up to
        ``concurrency`` at once, and record each result.

        A request is sent only while its lease is provably held: right before the
        send, one conditional statement renews the lease if this engine still holds
        it at the attempt's epoch; while requests are queued or in flight, every
        lease this engine holds is renewed each ``lease_seconds / 3``. So a lease
        never expires under a live worker, and one that was taken over is never sent."""
        if self._depth or not self._jobs:
            return
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        self._client()  # built here, not raced by the pool's threads
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="autorun-http")
        beat = max(self.lease_seconds / 3, 0.01)
        inflight: dict[Any, _HttpJob] = {}
        last_beat = _time.monotonic()
        while self._jobs or inflight:
            while self._jobs and len(inflight) < self.concurrency:
                job = self._jobs.pop(0)
                if self._renew([job]):
                    self._stats.http_requests += 1
                    inflight[self._pool.submit(self._send, job)] = job
            if not inflight:
                continue
            done, _ = wait(list(inflight), timeout=beat, return_when=FIRST_COMPLETED)
            for fut in done:
                job = inflight.pop(fut)
                self._record(job, fut.result())
            if _time.monotonic() - last_beat >= beat:
                last_beat = _time.monotonic()
                # Heartbeat: keep the leases of queued and in-flight requests.
                lost = set(self._renew(list(inflight.values()) + self._jobs, keep=False))
                self._jobs = [j for j in self._jobs if j.step_row not in lost]

    def _renew(self, jobs: list[_HttpJob], keep: bool = True) -> list[Any]:
        """Renew the leases of ``jobs`` (one conditional UPDATE each, one commit).
        ``keep``: return the jobs still held; else the epochs of those lost."""
        if not jobs:
            return []
        expires = self.clock.time() + self.lease_seconds
        held, lost = [], []
        self.store.begin()
        try:
            for job in jobs:
                if self.store.renew_lease(job.run_id, self.owner, job.step_row, expires):
                    held.append(job)
                else:
                    lost.append(job.step_row)
            self.store.commit()
        except BaseException:
            self.store.rollback()
            raise
        return held if keep else lost

    def _record(self, job: _HttpJob, result: tuple[bool, str | None, str | None]) -> None:
        """Commit one request's outcome, fenced: only while this engine still holds
        the run's lease at the attempt's epoch (the release is the check)."""
        ok, info, error = result
        with self._tx("http_result"):
            if not self.store.release_lease(job.run_id, self.owner, job.step_row):
                return  # cancelled, or the lease was taken over: drop the result
            run = self._load(job.run_id)
            if run is None or run.status != "running" or run.cursor != job.step_key or run.attempt != job.attempt:
                return
            defn = self._def(run.definition_id, run.definition_version)
            step = defn.step(job.step_key)
            now = self.clock.time()
            if ok:
                self.store.finish_step(job.step_row, "completed", now, info=info)
                self._move(run, defn, step, None)
                self._advance(run)
            else:
                self.store.finish_step(job.step_row, "failed", now, error=error)
                self._failed(run, defn, step, now, error or "failed", job.step_row)
                self._save(run)

    def _client(self) -> Any:
        import httpx

        if self._http is None:
            self._http = httpx.Client(follow_redirects=False, limits=httpx.Limits(max_connections=self.concurrency))
        return self._http

    def _send(self, job: _HttpJob) -> tuple[bool, str | None, str | None]:
        """One request (on a pool thread: it touches no store)."""
        import httpx

        client = self._client()
        headers = dict(job.headers)
        headers["Idempotency-Key"] = f"{job.run_id}:{job.step_key}"
        try:
            kwargs: dict[str, Any] = {"headers": headers, "timeout": job.timeout}
            if job.body is not None and job.method != "GET":
                kwargs["json"] = job.body
            resp = client.request(job.method, job.url, **kwargs)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as exc:
            # Any failure to send is a failed attempt (retried per the step's policy).
            return False, None, f"{job.method} {job.url}: {type(exc).__name__}: {exc}"
        if 200 <= resp.status_code < 300:
            return True, f"{job.method} {job.url} → HTTP {resp.status_code}", None
        text = resp.text[:200].strip()
        return False, None, f"{job.method} {job.url} → HTTP {resp.status_code}" + (f": {text}" if text else "")


    # -- read side ------------------------------------------------------------------
    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run in full (see the package docstring for the shape). NotFoundError (exit 3)."""
        row = self.store.get_run(run_id)
        if row is None:
            raise NotFoundError(f"no local run {run_id!r}", hint="list local runs with `autorun list`")
        return self._run_dict(row, full=True)

    def list_runs(self, *, statuses: Iterable[str] | None = None, automation: str | None = None,
                  since: datetime | float | str | None = None, until: datetime | float | str | None = None,
                  ids: Iterable[str] | None = None, event_id: str | None = None, sort: str = "-created_at",
                  limit: int | None = None, offset: int = 0, full: bool = False) -> list[dict[str, Any]]:
        """Runs, newest first by default; ``sort`` is created_at, updated_at, status,
        name, started_at or finished_at with an optional leading ``-``. ``full`` adds
        steps, waits, messages and logs to every run."""
        rows = self.store.query_runs(
            statuses=list(statuses) if statuses else None, automation=automation,
            since=_to_epoch(since) if since is not None else None,
            until=_to_epoch(until) if until is not None else None,
            ids=list(ids) if ids else None, event_id=event_id, sort=sort, limit=limit, offset=offset,
        )
        return [self._run_dict(r, full=full) for r in rows]

    def count_runs(self) -> dict[str, int]:
        """Number of runs per status."""
        return self.store.count_runs()

    def outbox(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Messages the engine delivered (every run's, or one run's), oldest first."""
        return [_message_dict(m) for m in self.store.messages(run_id)]

    def event(self, event_id: str) -> dict[str, Any] | None:
        """A recorded inbound event (trigger or event) and the runs it started/resumed."""
        row = self.store.get_event(event_id)
        if row is None:
            return None
        return {
            "id": row["id"], "kind": row["kind"], "event": row["name"],
            "payload": json.loads(row["payload"]) if row["payload"] else {},
            "identity": row["identity"], "occurred_at": row["occurred_at"], "received_at": iso(row["received_at"]),
            "run_ids": json.loads(row["run_ids"]) if row["run_ids"] else [],
        }

    def _run_dict(self, row: dict, *, full: bool) -> dict[str, Any]:
        status = row["status"]
        start, end = row["started_at"], row["finished_at"]
        out: dict[str, Any] = {
            "id": row["id"],
            "automation_id": row["definition_id"],
            "definition_version": row["definition_version"],
            "name": row["name"],
            "status": status,
            "current_step": None if status in TERMINAL else row["cursor"],
            "attempt": row["attempt"],
            "trigger": {
                "event": row["trigger_event"], "id": row["trigger_event_id"],
                "payload": json.loads(row["trigger_payload"]) if row["trigger_payload"] else {},
                "occurred_at": row["trigger_occurred_at"],
            },
            "identity": {"type": row["identity_type"], "value": row["identity_value"]},
            "created_at": iso(row["created_at"]),
            "updated_at": iso(row["updated_at"]),
            "started_at": iso(start),
            "finished_at": iso(end),
            "duration_ms": int(round((end - start) * 1000)) if start is not None and end is not None else None,
            "error": ({"message": row["error_message"], "step": row["error_step"], "detail": row["error_detail"]}
                      if row["error_message"] else None),
        }
        if not full:
            return out
        run_id = row["id"]
        out["steps"] = [_step_dict(s) for s in self.store.steps_for(run_id)]
        out["waits"] = [_wait_dict(w) for w in self.store.waits_for(run_id)]
        out["messages"] = [_message_dict(m) for m in self.store.messages(run_id)]
        out["logs"] = [
            {"timestamp": iso(lg["ts"]), "level": lg["level"], "message": lg["message"],
             "step_key": lg["step_key"], "step_index": lg["step_index"]}
            for lg in self.store.logs_for(run_id)
        ]
        lease = self.store.get_lease(run_id)
        out["lease"] = ({"owner": lease["owner"], "epoch": lease["epoch"], "expires_at": iso(lease["expires_at"])}
                        if lease else None)
        out["definition_steps"] = self._definition_steps(row["definition_id"], row["definition_version"])
        return out

    def _definition_steps(self, def_id: str, version: int) -> list[dict[str, Any]]:
        """The automation's steps from its stored spec, read as plain JSON: showing
        a run must not pay for building the pydantic definition models."""
        key = (def_id, version)
        if key in self._defs:
            return [{"key": s.key, "type": s.type, "name": s.name} for s in self._defs[key].steps]
        row = self.store.get_definition(def_id, version)
        if row is None:
            return []
        return [{"key": s.get("key"), "type": s.get("type"), "name": s.get("name")} for s in json.loads(row["spec"]).get("steps", [])]


def _step_dict(s: dict) -> dict[str, Any]:
    start, end = s["started_at"], s["finished_at"]
    return {
        "id": f"step_{s['id']}", "key": s["key"], "name": s["name"], "type": s["type"],
        "index": s["step_index"], "status": s["status"], "attempt": s["attempt"],
        "started_at": iso(start), "finished_at": iso(end),
        "duration_ms": int(round((end - start) * 1000)) if start is not None and end is not None else None,
        "info": s["info"], "error": s["error"], "branch": s["branch"],
    }


def _wait_dict(w: dict) -> dict[str, Any]:
    by = json.loads(w["resumed_by"]) if w["resumed_by"] else None
    return {
        "id": w["id"], "step_key": w["step_key"], "event": w["event"], "status": w["status"],
        "match": {"field": w["match_field"], "equals": w["match_equals"], "value": w["match_value"]},
        "created_at": iso(w["created_at"]), "timeout_at": iso(w["timeout_at"]),
        "resumed_at": iso(w["resumed_at"]), "timed_out_at": iso(w["timed_out_at"]),
        "branch": w["branch"], "resumed_by_event": by,
    }


def _message_dict(m: dict) -> dict[str, Any]:
    return {
        "id": m["id"], "channel": m["channel"], "step_key": m["step_key"], "run_id": m["run_id"],
        "to": m["recipient"], "title": m["title"], "body": m["body"], "template": m["template"],
        "status": m["status"], "created_at": iso(m["created_at"]), "idempotency_key": m["idempotency_key"],
        "detail": json.loads(m["detail"]) if m["detail"] else None,
    }
