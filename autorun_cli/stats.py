"""Aggregates over many runs (contract, "autorun stats"): pure, streaming, no CLI.

:class:`Stats` takes runs one at a time and keeps only counters and the duration
samples (one int per run and per step, in compact arrays), so memory does not grow
with the number of runs beyond those samples. Error messages are grouped up to
:data:`MAX_ERROR_GROUPS` distinct messages (a run whose message is new after that is
counted in ``errors_ungrouped``); the step and wait tables grow with the number of
distinct steps, not runs.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from autorun_cli.timeutil import parse_ts

MAX_ERROR_GROUPS = 1000


def nearest_rank(sorted_values: Any, p: float) -> int | None:
    """The nearest-rank percentile ``p`` (0-100) of ascending ``sorted_values``."""
    n = len(sorted_values)
    if n == 0:
        return None
    rank = max(1, math.ceil(p / 100 * n))
    return int(sorted_values[rank - 1])


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def step_identity(key: str | None, name: str | None, position: int) -> str:
    # As `diff` matches steps: key, else name, else position.
    if key:
        return "key:" + key
    if name:
        return "name:" + name
    return f"position:{position}"


class _StepAgg:
    __slots__ = ("key", "name", "runs", "failed", "durations")

    def __init__(self, key: str | None, name: str | None):
        self.key, self.name = key, name
        self.runs = 0
        self.failed = 0
        self.durations = array("q")


class _WaitAgg:
    __slots__ = ("step_key", "event", "waits", "received", "timed_out", "waiting")

    def __init__(self, step_key: str | None, event: str | None):
        self.step_key, self.event = step_key, event
        self.waits = self.received = self.timed_out = self.waiting = 0


class _ErrorAgg:
    __slots__ = ("message", "step", "count", "last_when", "last_run_id")

    def __init__(self, message: str):
        self.message = message
        self.step: str | None = None
        self.count = 0
        self.last_when: datetime | None = None
        self.last_run_id: str | None = None


class Stats:
    """Add runs with :meth:`add`; :meth:`to_json` is the contract's document."""

    def __init__(self) -> None:
        self.runs = 0
        self.by_status: dict[str, int] = {}
        self.durations = array("q")
        # Step identity → aggregate, in the order of the automation's steps as the
        # runs show it (a step first seen is placed after the step before it).
        self._steps: dict[str, _StepAgg] = {}
        self._order: list[str] = []
        self._waits: dict[tuple[str | None, str | None], _WaitAgg] = {}
        self._errors: dict[str, _ErrorAgg] = {}
        self.errors_ungrouped = 0

    def add_all(self, runs: Iterable[dict[str, Any]]) -> Stats:
        for run in runs:
            self.add(run)
        return self

    def add(self, run: dict[str, Any]) -> None:
        """One run as its normalized JSON (``show -o json``; only the keys read here
        need be present): plain dicts, so the local engine's runs need no model."""
        self.runs += 1
        status = run.get("status") or "unknown"
        self.by_status[status] = self.by_status.get(status, 0) + 1
        duration = run.get("duration_ms")
        if duration is not None:
            self.durations.append(duration)
        self._add_steps(run.get("steps") or ())
        for wait in run.get("waits") or ():
            wkey = (wait.get("step_key"), wait.get("event"))
            wagg = self._waits.get(wkey)
            if wagg is None:
                wagg = self._waits[wkey] = _WaitAgg(*wkey)
            wagg.waits += 1
            wstatus = wait.get("status")
            if wstatus == "received":
                wagg.received += 1
            elif wstatus == "timed_out":
                wagg.timed_out += 1
            elif wstatus == "waiting":
                wagg.waiting += 1
        error = run.get("error")
        if error and error.get("message"):
            self._add_error(run, error)

    def _add_steps(self, steps: Iterable[dict[str, Any]]) -> None:
        # A retried step counts once per run, judged by its last attempt.
        last: dict[str, dict[str, Any]] = {}
        for i, step in enumerate(steps, 1):
            last[step_identity(step.get("key"), step.get("name"), i)] = step
        previous: str | None = None
        for ident, step in last.items():
            agg = self._steps.get(ident)
            if agg is None:
                agg = self._steps[ident] = _StepAgg(step.get("key"), step.get("name"))
                at = self._order.index(previous) + 1 if previous is not None else 0
                self._order.insert(at, ident)
            agg.runs += 1
            if step.get("status") == "failed":
                agg.failed += 1
            duration = step.get("duration_ms")
            if duration is not None:
                agg.durations.append(duration)
            previous = ident

    def _add_error(self, run: dict[str, Any], error: dict[str, Any]) -> None:
        message = error["message"]
        agg = self._errors.get(message)
        if agg is None:
            if len(self._errors) >= MAX_ERROR_GROUPS:
                self.errors_ungrouped += 1
                return
            agg = self._errors[message] = _ErrorAgg(message)
        agg.count += 1
        when = parse_ts(run.get("created_at")) or parse_ts(run.get("started_at"))
        # The last run that had it: the newest by creation (the first seen on a tie).
        if agg.last_run_id is None or (when is not None and (agg.last_when is None or when > agg.last_when)):
            agg.last_when, agg.last_run_id, agg.step = when, run.get("id"), error.get("step")

    # -- the document --------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        durations = sorted(self.durations)
        steps = []
        for ident in self._order:
            agg = self._steps[ident]
            samples = sorted(agg.durations)
            steps.append({
                "key": agg.key, "name": agg.name, "runs": agg.runs, "failed": agg.failed,
                "failure_rate": ratio(agg.failed, agg.runs),
                "p50_ms": nearest_rank(samples, 50), "p95_ms": nearest_rank(samples, 95),
            })
        waits = [
            {"step_key": w.step_key, "event": w.event, "waits": w.waits, "received": w.received,
             "timed_out": w.timed_out, "waiting": w.waiting, "timeout_rate": ratio(w.timed_out, w.received + w.timed_out)}
            for w in self._waits.values()
        ]
        # Most frequent first; equal counts: the most recent first.
        groups = sorted(self._errors.values(), key=lambda e: (-e.count, -(e.last_when.timestamp() if e.last_when else 0)))
        return {
            "runs": self.runs,
            "by_status": dict(sorted(self.by_status.items(), key=lambda kv: (-kv[1], kv[0]))),
            "duration_ms": {
                "p50": nearest_rank(durations, 50),
                "p95": nearest_rank(durations, 95),
                "max": int(durations[-1]) if durations else None,
            },
            "steps": steps,
            "waits": waits,
            "errors": [
                {"message": e.message, "step": e.step, "count": e.count, "last_run_id": e.last_run_id} for e in groups
            ],
        }
