"""A non-durable Store in plain Python structures, for replay and tests.

Same interface and semantics as :class:`SQLiteStore` (write lock from ``begin`` to
``commit``, ``rollback`` undoes the transaction's writes, the conditional wait
update, the outbox's unique idempotency key), minus durability and SQL: it is what
lets ``replay`` push thousands of recorded runs through the engine per second.
Several engines in one process (threads) may share one MemoryStore.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial

from autorun_cli.engine.store import MESSAGE_COLUMNS, RUN_COLUMNS, STEP_COLUMNS, WAIT_COLUMNS, Store

_SORTABLE = {"created_at", "updated_at", "status", "name", "started_at", "finished_at", "id"}


class MemoryStore(Store):
    retryable: tuple[type[BaseException], ...] = ()

    def __init__(self) -> None:
        self.path = ":memory:"
        self.settings = {"path": ":memory:", "journal_mode": "none (Python memory store)",
                         "synchronous": "OFF", "transactions": "one lock from begin to commit"}
        self._lock = threading.RLock()
        self._undo: list[Callable[[], object]] | None = None
        self._defs: dict[tuple[str, int], dict] = {}
        self._events: dict[str, dict] = {}
        self._runs: dict[str, dict] = {}
        self._steps: dict[int, dict] = {}
        self._run_steps: dict[str, list[int]] = {}
        self._step_ids = itertools.count(1)
        self._waits: dict[str, dict] = {}
        self._run_waits: dict[str, list[str]] = {}
        self._open: dict[tuple, dict[str, None]] = {}  # (event, field, value) -> wait ids
        self._timers: dict[int, tuple] = {}
        self._run_timers: dict[str, set[int]] = {}
        self._heap: list[tuple[float, int]] = []
        self._timer_ids = itertools.count(1)
        self._outbox: dict[str, dict] = {}
        self._run_msgs: dict[str, list[str]] = {}
        self._logs: dict[str, list[dict]] = {}
        self._log_ids = itertools.count(1)
        self._leases: dict[str, dict] = {}
        self._workers: dict[str, dict] = {}
        self.applied_on_open: list[int] = []

    def describe(self) -> str:
        return "memory"

    def schema_version(self) -> int:
        return 0

    def migrate(self) -> list[int]:
        return []

    def wait_for_work(self, timeout: float) -> None:
        if timeout > 0:
            time.sleep(timeout)

    # -- transactions ---------------------------------------------------------
    def begin(self) -> None:
        self._lock.acquire()
        self._undo = []

    def commit(self) -> None:
        self._undo = None
        self._lock.release()

    def rollback(self) -> None:
        if self._undo is None:
            return
        for fn in reversed(self._undo):
            fn()
        self._undo = None
        self._lock.release()

    def close(self) -> None:
        pass

    def _on_undo(self, fn: Callable[[], object]) -> None:
        if self._undo is not None:
            self._undo.append(fn)

    # -- definitions ----------------------------------------------------------
    def latest_definition(self, def_id: str) -> dict | None:
        versions = [v for (i, v) in self._defs if i == def_id]
        return dict(self._defs[(def_id, max(versions))]) if versions else None

    def get_definition(self, def_id: str, version: int) -> dict | None:
        row = self._defs.get((def_id, version))
        return dict(row) if row else None

    def insert_definition(self, row: dict) -> None:
        key = (row["id"], row["version"])
        self._defs[key] = dict(row)
        self._on_undo(lambda: self._defs.pop(key, None))

    def list_definitions(self, all_versions: bool = False) -> list[dict]:
        rows = sorted(self._defs.values(), key=lambda r: (r["id"], r["version"]))
        if not all_versions:
            latest: dict[str, dict] = {}
            for r in rows:
                latest[r["id"]] = r
            rows = list(latest.values())
        return [dict(r) for r in rows]

    def definition_count(self) -> int:
        return len(self._defs)

    def definitions_for_trigger(self, event: str) -> list[tuple[str, int]]:
        return [(r["id"], r["version"]) for r in self.list_definitions() if r["trigger_event"] == event]

    # -- events ---------------------------------------------------------------
    def add_event(self, row: dict) -> bool:
        if row["id"] in self._events:
            return False
        self._events[row["id"]] = dict(row, run_ids=None)
        self._on_undo(lambda: self._events.pop(row["id"], None))
        return True

    def set_event_runs(self, event_id: str, run_ids: list[str]) -> None:
        ev = self._events[event_id]
        old = ev["run_ids"]
        ev["run_ids"] = json.dumps(run_ids)
        self._on_undo(lambda: ev.__setitem__("run_ids", old))

    def get_event(self, event_id: str) -> dict | None:
        ev = self._events.get(event_id)
        return dict(ev) if ev else None

    # -- runs -----------------------------------------------------------------
    def insert_run(self, values: tuple) -> None:
        row = dict(zip(RUN_COLUMNS, values, strict=True))
        self._runs[row["id"]] = row
        self._on_undo(lambda: self._runs.pop(row["id"], None))

    def update_run(self, values: tuple) -> None:
        row = self._runs[values[0]]
        old = dict(row)
        row.update(zip(RUN_COLUMNS, values, strict=True))
        self._on_undo(lambda: row.update(old))

    def get_run(self, run_id: str) -> dict | None:
        row = self._runs.get(run_id)
        return dict(row) if row else None

    lock_run = get_run  # begin() holds the only lock

    def lock_runs(self, run_ids: Sequence[str]) -> None:
        pass

    def query_runs(self, *, statuses=None, automation=None, since=None, until=None, ids=None,
                   event_id=None, sort="-created_at", limit=None, offset=0) -> list[dict]:
        statuses = set(statuses) if statuses else None
        ids = set(ids) if ids else None
        out = []
        for seq, r in enumerate(self._runs.values()):
            if statuses and r["status"] not in statuses:
                continue
            if automation and r["definition_id"] != automation:
                continue
            if since is not None and r["created_at"] < since:
                continue
            if until is not None and r["created_at"] > until:
                continue
            if ids and r["id"] not in ids:
                continue
            if event_id and r["trigger_event_id"] != event_id:
                continue  # (SQLite goes through events.run_ids: the same runs)
            out.append((seq, r))
        field = sort.lstrip("+-")
        field = field if field in _SORTABLE else "created_at"
        # None sorts first, as in SQLite
        # Ties as in SQLite: creation order for created_at, else the run ID.
        out.sort(key=lambda p: ((p[1][field] is not None), p[1][field] if p[1][field] is not None else 0,
                                p[0] if field == "created_at" else p[1]["id"]),
                 reverse=sort.startswith("-"))
        rows = [dict(r) for _, r in out]
        if limit is not None:
            rows = rows[offset:offset + limit]
        return rows

    def count_runs(self, statuses=None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self._runs.values():
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        return {k: v for k, v in counts.items() if not statuses or k in statuses}

    # -- steps ----------------------------------------------------------------
    def insert_step(self, values: tuple) -> int:
        sid = next(self._step_ids)
        row = dict(zip(STEP_COLUMNS, values, strict=True))
        row["id"] = sid
        self._steps[sid] = row
        lst = self._run_steps.setdefault(row["run_id"], [])
        lst.append(sid)

        def undo() -> None:
            self._steps.pop(sid, None)
            lst.remove(sid)

        self._on_undo(undo)
        return sid

    def finish_step(self, step_id, status, finished_at, info=None, error=None, branch=None) -> None:
        row = self._steps[step_id]
        old = dict(row)
        row.update(status=status, finished_at=finished_at, error=error)
        if info is not None:
            row["info"] = info
        if branch is not None:
            row["branch"] = branch
        self._on_undo(lambda: row.update(old))

    def interrupt_steps(self, run_id, statuses, status, finished_at, error) -> int:
        n = 0
        for sid in self._run_steps.get(run_id, ()):
            row = self._steps[sid]
            if row["status"] in statuses:
                self.finish_step(sid, status, finished_at, None, error if error is not None else row["error"])
                n += 1
        return n

    def steps_for(self, run_id: str) -> list[dict]:
        return [dict(self._steps[s]) for s in self._run_steps.get(run_id, ())]

    # -- waits ----------------------------------------------------------------
    def insert_wait(self, values: tuple) -> None:
        row = dict(zip(WAIT_COLUMNS, values, strict=True))
        row.update(resumed_at=None, timed_out_at=None, branch=None, resumed_by=None)
        self._waits[row["id"]] = row
        lst = self._run_waits.setdefault(row["run_id"], [])
        lst.append(row["id"])
        key = (row["event"], row["match_field"], row["match_value"])
        bucket = self._open.setdefault(key, {})
        bucket[row["id"]] = None

        def undo() -> None:
            self._waits.pop(row["id"], None)
            lst.remove(row["id"])
            bucket.pop(row["id"], None)

        self._on_undo(undo)

    def resolve_wait(self, wait_id, status, at, branch, resumed_by=None) -> dict | None:
        row = self._waits.get(wait_id)
        if row is None or row["status"] != "waiting":
            return None
        old = dict(row)
        row["status"] = status
        row["branch"] = branch
        if status == "received":
            row["resumed_at"] = at
            row["resumed_by"] = resumed_by
        elif status == "timed_out":
            row["timed_out_at"] = at
        bucket = self._open.get((row["event"], row["match_field"], row["match_value"]), {})
        bucket.pop(wait_id, None)

        def undo() -> None:
            row.update(old)
            bucket[wait_id] = None

        self._on_undo(undo)
        return {k: row[k] for k in ("run_id", "step_id", "step_key", "event", "timeout_at")}

    def find_open_waits(self, event, field, value) -> list[dict]:
        bucket = self._open.get((event, field, value))
        return [dict(self._waits[w]) for w in bucket] if bucket else []

    def waits_for(self, run_id: str) -> list[dict]:
        return [dict(self._waits[w]) for w in self._run_waits.get(run_id, ())]

    def open_waits_for(self, run_id: str) -> list[dict]:
        return [w for w in self.waits_for(run_id) if w["status"] == "waiting"]

    # -- timers ---------------------------------------------------------------
    def add_timer(self, run_id, kind, ref, due_at) -> None:
        tid = next(self._timer_ids)
        self._timers[tid] = (tid, run_id, kind, ref, due_at)
        self._run_timers.setdefault(run_id, set()).add(tid)
        heapq.heappush(self._heap, (due_at, tid))
        self._on_undo(lambda: self._drop_timer(tid))

    def _drop_timer(self, tid: int) -> tuple | None:
        t = self._timers.pop(tid, None)
        if t is not None:
            self._run_timers.get(t[1], set()).discard(tid)
        return t

    def _restore_timer(self, t: tuple) -> None:
        self._timers[t[0]] = t
        self._run_timers.setdefault(t[1], set()).add(t[0])
        heapq.heappush(self._heap, (t[4], t[0]))

    def _clean_heap(self) -> None:
        heap = self._heap
        while heap and heap[0][1] not in self._timers:
            heapq.heappop(heap)

    def pop_due(self, now: float, limit: int) -> list[tuple]:
        out: list[tuple] = []
        heap = self._heap
        while len(out) < limit:
            self._clean_heap()
            if not heap or heap[0][0] > now:
                break
            _, tid = heapq.heappop(heap)
            t = self._drop_timer(tid)
            if t is not None:
                out.append(t)
        for t in out:
            self._on_undo(partial(self._restore_timer, t))
        return out

    def delete_timers(self, run_id, kind=None, ref=None) -> None:
        for tid in list(self._run_timers.get(run_id, ())):
            t = self._timers[tid]
            if (kind is None or t[2] == kind) and (ref is None or t[3] == ref):
                self._drop_timer(tid)
                self._on_undo(partial(self._restore_timer, t))

    def next_due(self) -> float | None:
        self._clean_heap()
        return self._heap[0][0] if self._heap else None

    def count_timers(self, due_by: float | None = None) -> int:
        if due_by is None:
            return len(self._timers)
        return sum(1 for t in self._timers.values() if t[4] <= due_by)

    # -- outbox ---------------------------------------------------------------
    def add_message(self, values: tuple) -> bool:
        row = dict(zip(MESSAGE_COLUMNS, values, strict=True))
        key = row["idempotency_key"]
        if key in self._outbox:
            return False
        self._outbox[key] = row
        lst = self._run_msgs.setdefault(row["run_id"], [])
        lst.append(key)

        def undo() -> None:
            self._outbox.pop(key, None)
            lst.remove(key)

        self._on_undo(undo)
        return True

    def messages(self, run_id: str | None = None) -> list[dict]:
        if run_id is None:
            return [dict(m) for m in sorted(self._outbox.values(), key=lambda m: m["created_at"])]
        return [dict(self._outbox[k]) for k in self._run_msgs.get(run_id, ())]

    # -- logs -----------------------------------------------------------------
    def add_log(self, run_id, ts, level, message, step_key, step_index) -> None:
        lst = self._logs.setdefault(run_id, [])
        lst.append({"id": next(self._log_ids), "run_id": run_id, "ts": ts, "level": level, "message": message,
                    "step_key": step_key, "step_index": step_index})
        self._on_undo(lst.pop)

    def logs_for(self, run_id: str) -> list[dict]:
        return sorted((dict(lg) for lg in self._logs.get(run_id, ())), key=lambda lg: (lg["ts"], lg["id"]))

    def rows_for_runs(self, table: str, run_ids: Sequence[str]) -> list[dict]:
        one = {"steps": self.steps_for, "waits": self.waits_for, "outbox": self.messages, "logs": self.logs_for,
               "leases": lambda rid: [lease] if (lease := self.get_lease(rid)) else []}[table]
        return [row for rid in run_ids for row in one(rid)]

    # -- leases ---------------------------------------------------------------
    def set_lease(self, run_id, owner, epoch, expires_at) -> None:
        old = self._leases.get(run_id)
        self._leases[run_id] = {"run_id": run_id, "owner": owner, "epoch": epoch, "expires_at": expires_at}
        self._on_undo(lambda: self._leases.__setitem__(run_id, old) if old else self._leases.pop(run_id, None))

    def _held(self, run_id: str, owner: str, epoch: int) -> dict | None:
        lease = self._leases.get(run_id)
        return lease if lease is not None and lease["owner"] == owner and lease["epoch"] == epoch else None

    def renew_lease(self, run_id, owner, epoch, expires_at) -> bool:
        lease = self._held(run_id, owner, epoch)
        if lease is None:
            return False
        old = lease["expires_at"]
        lease["expires_at"] = expires_at
        self._on_undo(lambda: lease.__setitem__("expires_at", old))
        return True

    def release_lease(self, run_id, owner, epoch) -> bool:
        if self._held(run_id, owner, epoch) is None:
            return False
        self.drop_lease(run_id)
        return True

    def steal_lease(self, run_id, owner, epoch, now, holder_dead=False) -> bool:
        lease = self._held(run_id, owner, epoch)
        if lease is None or not (lease["expires_at"] <= now or holder_dead):
            return False
        self.drop_lease(run_id)
        return True

    def get_lease(self, run_id: str) -> dict | None:
        lease = self._leases.get(run_id)
        return dict(lease) if lease else None

    def drop_lease(self, run_id: str) -> None:
        old = self._leases.pop(run_id, None)
        if old is not None:
            self._on_undo(lambda: self._leases.__setitem__(run_id, old))

    def leases(self, expired_by: float | None = None, host: str | None = None) -> list[dict]:
        rows = [dict(lease) for lease in self._leases.values()
                if expired_by is None or lease["expires_at"] <= expired_by
                or (host is not None and lease["owner"].startswith(host + ":"))]
        return sorted(rows, key=lambda lease: lease["expires_at"])

    # -- workers ----------------------------------------------------------------
    def heartbeat(self, worker_id, host, pid, now) -> None:
        row = self._workers.setdefault(worker_id, {"id": worker_id, "host": host, "pid": pid, "started_at": now})
        row["last_seen"] = now

    def workers(self, seen_since: float) -> list[dict]:
        return [dict(w) for w in self._workers.values() if w["last_seen"] >= seen_since]

    def remove_worker(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)
