"""Scheduling: timers (delays, retry backoffs, wait timeouts) fire at their due time,
once, claimed in batches; ``work`` is the worker loop and ``advance_to`` the
virtual clock's."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime

from autorun_cli.engine.base import HOST, EngineBase
from autorun_cli.engine.clock import _to_epoch
from autorun_cli.engine.records import WorkStats, short
from autorun_cli.errors import UsageError


class Scheduling(EngineBase):
    def work(self, *, forever: bool = False, settle: float = 0.0, poll: float = 1.0,
             stop: Callable[[], bool] | None = None) -> WorkStats:
        """Fire due timers (delays, retries, wait timeouts) and take over runs whose
        worker died, until nothing is due. ``settle``: also sleep for timers due
        within that many seconds. ``forever``: keep going as a worker (sleeping until
        the next timer, at most ``poll`` seconds, woken at once where the store can
        signal new work) until ``stop()`` is true or :meth:`request_stop` was called;
        requests in flight are then finished and recorded, queued ones handed back."""
        if forever and self.clock.virtual:
            raise UsageError("work(forever=True) needs a real clock", hint="use advance() on a virtual clock")
        stats = WorkStats()
        self._stats = stats
        if forever:
            self._beat(force=True)
        self._working = forever
        try:
            while True:
                stats.loops += 1
                tried_at, claimed = self.clock.time(), self._claimed
                try:
                    stats.recovered += self._recover()
                    stats.timers_fired += self._process_due()
                except self.store.retryable:
                    continue  # rolled back (a deadlock victim): what it claimed is claimable again
                if self._stopping or (stop is not None and stop()):
                    break
                nd = self.store.next_due()
                now = self.clock.time()
                if forever:
                    self._beat()
                    if nd is not None and nd <= tried_at and self._claimed == claimed:
                        # Due before this turn claimed, yet none could be claimed: other
                        # workers' open transactions hold them (SKIP LOCKED). Their commit
                        # removes them; a crash hands them back unannounced: look again
                        # after ``poll``, instead of spinning against their row locks.
                        nd = now + poll
                    wait = poll if nd is None else min(max(nd - now, 0.0), poll)
                    self.store.wait_for_work(wait)
                    continue
                pending_lease = self._soonest_lease_expiry() if settle > 0 else None
                soonest = min((t for t in (nd, pending_lease) if t is not None), default=None)
                if settle > 0 and soonest is not None and soonest - now <= settle:
                    pause = max(soonest - now, 0.0) + 0.001
                    self.clock.sleep(pause)
                    settle -= pause
                    continue
                break
        finally:
            self._working = False
            if forever:
                self._retire()
        return stats

    def request_stop(self) -> None:
        """Ask a running :meth:`work` to stop (a signal handler may call it): no new
        work is claimed, requests in flight finish and are recorded, and the leases of
        requests not yet sent expire at once so another worker takes them."""
        self._stopping = True

    def _beat(self, force: bool = False) -> None:
        """A worker's heartbeat (``engine status`` lists live workers), at most once a second."""
        now = self.clock.time()
        if not force and now - self._last_beat < 1.0:
            return
        self._last_beat = now
        self.store.begin()
        try:
            self.store.heartbeat(self.owner, HOST, os.getpid(), now)
            self.store.commit()
        except BaseException:
            self.store.rollback()
            raise

    def _retire(self) -> None:
        try:
            self.store.begin()
            self.store.remove_worker(self.owner)
            self.store.commit()
        except Exception:
            self.store.rollback()  # a worker that cannot say goodbye ages out of status

    def next_due(self) -> datetime | None:
        nd = self.store.next_due()
        if nd is None:
            return None
        try:
            return datetime.fromtimestamp(nd, tz=self.clock.now().tzinfo)
        except (OverflowError, ValueError, OSError):
            return None  # a timer beyond the calendar (stored by an old version): never due

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
        """Fire due timers, claimed in batches, until none is due; HTTP requests they
        reach are sent while more are claimed (at most ``2 × concurrency`` queued or in
        flight per worker, so other workers take the rest), then all are recorded."""
        fired = 0
        while not self._stopping:
            now = self.clock.time()
            nd = self.store.next_due()  # a read: no write lock when nothing is due
            due = nd is not None and nd <= now
            backlog = len(self._jobs) + len(self._inflight)
            room = 2 * self.concurrency - backlog if self._claims_http else self.batch_size
            if due and room > 0:
                limit = min(self.batch_size, room)
                # Answers waiting to be recorded go in with the claim: one commit for
                # both (not with one run per transaction, batch_size 1).
                done, self._done = (self._done, []) if self.batch_size > 1 else ([], self._done)
                try:
                    with self._tx("timers"):
                        timers = self.store.pop_due(now, limit)
                        self._claimed += len(timers)
                        # Every run this batch touches, locked in ID order before any is changed.
                        self.store.lock_runs(sorted({t[1] for t in timers} | {job.run_id for job, _ in done}))
                        if done:
                            self._record_locked(done)
                        # The waits these timers time out, resolved in one statement.
                        timed_out = self.store.time_out_waits(
                            [ref for _t, _r, kind, ref, _d in timers if kind == "wait_timeout" and ref], now)
                        fired += sum(self._fire(kind, run_id, ref, now, timed_out)
                                     for _tid, run_id, kind, ref, _due in timers)
                except BaseException:
                    self._done[:0] = done  # rolled back: record them with the next claim
                    raise
                self._claims_http = self._claims_http or bool(self._jobs)
                if len(timers) == limit and not self._jobs and not self._inflight:
                    continue  # a full batch of timers that sent nothing: claim the next at once
                if not timers and not backlog:
                    break
                due = len(timers) == limit
            elif not backlog:
                break
            if self._jobs or self._inflight:
                # Room left and more due: only collect what finished (recorded by the
                # next claim); else wait for a send.
                more = due and 2 * self.concurrency > len(self._jobs) + len(self._inflight)
                self._pump(0.0 if more else max(self.lease_seconds / 3, 0.01), record=not more or self.batch_size == 1)
        self._drain()
        return fired

    def _fire(self, kind: str, run_id: str, ref: str | None, now: float,
              timed_out: dict[str, dict] | None = None) -> bool:
        """Fire one timer; False when it had nothing left to do (its run moved on:
        cancelled, retried, or the event beat the timeout). ``timed_out``: the waits
        this transaction already resolved (see _fire_wait_timeout)."""
        if kind == "wait_timeout":
            return self._fire_wait_timeout(ref or "", now, timed_out)
        run = self._load(run_id)
        if run is None:
            return False
        defn = self._def(run.definition_id, run.definition_version)
        if kind == "delay":
            if run.status != "waiting" or run.cursor is None:
                return False
            step = defn.step(run.cursor)
            self.store.finish_step(int(ref or 0), "completed", now)
            self._move(run, defn, step, None)
            run.status = "running"
            self._advance(run)
            return True
        if kind == "retry":
            if run.status != "running" or run.cursor != ref:
                return False
            self._advance(run)
            return True
        return False

    def _fire_wait_timeout(self, wait_id: str, now: float, timed_out: dict[str, dict] | None = None) -> bool:
        """``timed_out``: wait id → row of the waits already resolved as timed out (a
        wait missing from it was resolved before: the event won); each is taken once."""
        if timed_out is not None:
            row = timed_out.pop(wait_id, None)
        else:
            row = self.store.resolve_wait(wait_id, "timed_out", now, "timed_out")
        if row is None:
            return False  # the event won: nothing to do
        run = self._load(row["run_id"])
        if run is None or run.status != "waiting" or run.cursor != row["step_key"]:
            return False
        defn = self._def(run.definition_id, run.definition_version)
        step = defn.step(row["step_key"])
        waited = short(step.timeout or 0)
        if step.on_timeout is None:
            self.store.finish_step(row["step_id"], "timed_out", now, info=f"no {step.event} within {waited}",
                                   branch="timed_out")
            run.error_message = f"no {step.event} event arrived within {waited}"
            run.error_step = step.key
            run.error_detail = None
            self._finish(run, defn, "timed_out", now)
            self._save(run)
            return True
        self.store.finish_step(row["step_id"], "completed", now, info=f"no {step.event} within {waited}",
                               branch="timed_out")
        self._log(run, now, "info", f"wait {step.key}: timed out after {waited}, taking the timeout path",
                  defn, step.key)
        self._move(run, defn, step, step.on_timeout)
        run.status = "running"
        self._advance(run)
        return True
