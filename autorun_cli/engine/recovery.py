"""Leases and recovery: a run whose worker stopped mid-step (its lease expired, or
its process on this host is gone) is taken over and the step executed again with
the same idempotency key."""

from __future__ import annotations

import os

from autorun_cli.engine.base import HOST, EngineBase


class Recovery(EngineBase):
    def _owner_dead(self, owner: str) -> bool:
        host, _, rest = owner.partition(":")
        pid_text = rest.partition(":")[0]
        if host != HOST or not pid_text.isdigit() or int(pid_text) == os.getpid():
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
        stale = [(lease, self._owner_dead(lease["owner"])) for lease in self.store.leases(expired_by=now, host=HOST)
                 if lease["owner"] != self.owner]
        stale = [(lease, dead) for lease, dead in stale if dead or lease["expires_at"] <= now]
        taken = 0
        for lease, dead in stale:
            if self._stopping:
                break
            with self._tx("recover"):
                run = self._load(lease["run_id"])  # the run first: the engine's lock order
                # Conditional on the same owner, epoch and expiry: a holder that
                # renewed its lease meanwhile keeps it, and only one process takes it.
                if not self.store.steal_lease(lease["run_id"], lease["owner"], lease["epoch"], self.clock.time(), dead):
                    continue
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
        # The requests of every run taken over leave together, up to ``concurrency``
        # at once (each lease re-checked right before its send), not one run at a time.
        self._drain()
        return taken
