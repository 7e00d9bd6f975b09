"""HTTP delivery: requests leave the machine outside any transaction, up to
``concurrency`` at once on a thread pool, each only while its lease is held."""

from __future__ import annotations

import time as _time
from typing import Any

from autorun_cli.engine.base import EngineBase
from autorun_cli.engine.records import HttpJob


class Delivery(EngineBase):
    def _drain(self) -> None:
        """Send the HTTP requests the last transactions reached, up to
        ``concurrency`` at once, and record each result; returns when none is left.

        A request is sent only while its lease is provably held: right before the
        send, one conditional statement renews the lease if this engine still holds
        it at the attempt's epoch; while requests are queued or in flight, every
        lease this engine holds is renewed each ``lease_seconds / 3``. So a lease
        never expires under a live worker, and one that was taken over is never sent."""
        if self._depth:
            return
        while self._jobs or self._inflight or self._done:
            self._pump(max(self.lease_seconds / 3, 0.01))

    def _pump(self, wait_s: float, record: bool = True) -> None:
        """One turn of delivery: send queued requests while fewer than ``concurrency``
        are in flight, wait up to ``wait_s`` for one to finish, record what finished,
        and keep the leases alive. The worker loop calls it between claims, so
        requests stay in flight while it claims more (a pipeline, not batch by batch).
        ``record=False``: what finished waits in ``_done`` for the worker's next claim,
        which records it in the same transaction (one commit for both)."""
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        if self._pool is None:
            self._client()  # built here, not raced by the pool's threads
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="autorun-http")
        inflight = self._inflight
        if self._stopping and self._jobs:
            self._hand_back(self._jobs)
            self._jobs = []
        free = self.concurrency - len(inflight)
        if self._jobs and free > 0:
            batch, self._jobs = self._jobs[:free], self._jobs[free:]
            for job in self._held(batch):  # one conditional statement for the batch, right before the send
                self._stats.http_requests += 1
                inflight[self._pool.submit(self._send, job)] = job
        if inflight:
            done, _ = wait(list(inflight), timeout=wait_s, return_when=FIRST_COMPLETED)
            self._done += [(inflight.pop(fut), fut.result()) for fut in done]
        if record and self._done:
            finished, self._done = self._done, []
            for i in range(0, len(finished), self.batch_size):  # batch_size=1: one run per transaction
                self._record(finished[i:i + self.batch_size])
        if self._working:
            self._beat()
        if _time.monotonic() - self._last_renew >= max(self.lease_seconds / 3, 0.01):
            self._last_renew = _time.monotonic()
            # Heartbeat: keep the leases of queued, in-flight and unrecorded requests.
            lost = set(self._renew(list(inflight.values()) + self._jobs + [j for j, _ in self._done], keep=False))
            self._jobs = [j for j in self._jobs if j.step_row not in lost]

    def _held(self, jobs: list[HttpJob]) -> list[HttpJob]:
        """The jobs whose lease this engine provably holds until their send starts.

        One read first: a lease of ours that is good for another ``lease_seconds / 2``
        stays ours through the send's start (only its holder extends it, a take-over
        needs it expired, a cancel deletes it as it would right after a renewal), so
        it needs no write and no commit. The others (lost, or near their expiry) go
        through the conditional renewal."""
        if not jobs:
            return []
        now = self.clock.time()
        ok = self.store.check_leases(self.owner, [(j.run_id, j.step_row) for j in jobs], now + self.lease_seconds / 2)
        rest = [j for j in jobs if j.step_row not in ok]
        return [j for j in jobs if j.step_row in ok] + (self._renew(rest) if rest else [])

    def _renew(self, jobs: list[HttpJob], keep: bool = True) -> list[Any]:
        """Renew the leases of ``jobs`` (one conditional statement and one commit per
        ``batch_size`` of them). ``keep``: return the jobs still held; else the
        epochs of those lost."""
        expires = self.clock.time() + self.lease_seconds
        held, lost = [], []
        for i in range(0, len(jobs), self.batch_size):
            chunk = jobs[i:i + self.batch_size]
            self.store.begin()
            try:
                kept = self.store.renew_leases(self.owner, [(j.run_id, j.step_row) for j in chunk], expires)
                for job in chunk:
                    if job.step_row in kept:
                        held.append(job)
                    else:
                        lost.append(job.step_row)
                self.store.commit()
            except BaseException:
                self.store.rollback()
                raise
        return held if keep else lost

    def _hand_back(self, jobs: list[HttpJob]) -> None:
        """Stopping: requests not sent yet are given up; their leases expire now, so
        another worker takes the runs over at once (same idempotency keys)."""
        now = self.clock.time()
        self.store.begin()
        try:
            self.store.renew_leases(self.owner, [(j.run_id, j.step_row) for j in jobs], now)
            self.store.commit()
        except BaseException:
            self.store.rollback()
            raise

    def _record(self, results: list[tuple[HttpJob, tuple[bool, str | None, str | None]]]) -> None:
        """Commit request outcomes (one transaction for those that finished together),
        each fenced: recorded only while this engine still holds the run's lease at
        the attempt's epoch (the release is the check)."""
        for _attempt in range(5):
            try:
                with self._tx("http_result"):
                    self.store.lock_runs(sorted({job.run_id for job, _ in results}))
                    self._record_locked(results)
                return
            except self.store.retryable:
                continue
        raise RuntimeError("could not record HTTP results after 5 tries")  # pragma: no cover

    def _record_locked(self, results: list[tuple[HttpJob, tuple[bool, str | None, str | None]]]) -> None:
        """Inside a transaction that locked the results' runs: the fence of every
        result in one statement, then each result whose lease was still held."""
        ordered = sorted(results, key=lambda r: r[0].run_id)
        held = self.store.release_leases(self.owner, [(job.run_id, job.step_row) for job, _ in ordered])
        for job, result in ordered:
            if job.step_row in held:  # else cancelled or taken over: drop the result
                self._record_one(job, result)

    def _record_one(self, job: HttpJob, result: tuple[bool, str | None, str | None]) -> None:
        """One result whose lease this transaction released (the fence held)."""
        ok, info, error = result
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
        from autorun_cli.engine.sender import Sender

        if self._http is None:
            self._http = Sender()
        return self._http

    def _send(self, job: HttpJob) -> tuple[bool, str | None, str | None]:
        """One request (on a pool thread: it touches no store)."""
        from http.client import HTTPException

        headers = dict(job.headers)
        headers["Idempotency-Key"] = f"{job.run_id}:{job.step_key}"
        body = job.body if job.method != "GET" else None
        try:
            status, text = self._client().request(job.method, job.url, headers, body, job.timeout)
        except (HTTPException, ValueError, OSError) as exc:
            # Any failure to send is a failed attempt (retried per the step's policy).
            return False, None, f"{job.method} {job.url}: {type(exc).__name__}: {exc}"
        if 200 <= status < 300:
            return True, f"{job.method} {job.url} → HTTP {status}", None
        text = text[:200].strip()
        return False, None, f"{job.method} {job.url} → HTTP {status}" + (f": {text}" if text else "")
