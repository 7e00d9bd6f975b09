"""Re-execute recorded runs on the local engine, on a virtual clock, in a sandbox.

One in-memory engine serves every run of a replay: the definition is loaded once,
and for each recorded run the clock is set to the recorded start, the run is
triggered with the recorded payload and identity, the recorded inbound events are
injected at their recorded offsets, and the clock is moved on until nothing is due.
A 30-minute wait costs no real time, and nothing leaves the machine (``sandbox``:
HTTP steps are recorded, not sent).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from autorun_cli.engine.util import dig
from autorun_cli.errors import UsageError
from autorun_cli.replay.compare import Report, compare
from autorun_cli.replay.source import replay_input
from autorun_cli.status import TERMINAL
from autorun_cli.timeutil import parse_ts

if TYPE_CHECKING:
    from autorun_cli.engine import Definition, Engine
    from autorun_cli.model import Run

# A run whose timers keep firing past this horizon is reported as it stands then.
HORIZON_S = 366 * 86400
MAX_TIMERS = 10_000


def _with_path(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``data`` with ``value`` at the dotted ``path`` unless one is there.

    Only the dicts along the path are copied: the recorded payload stays untouched
    and no deep copy is paid per run.
    """
    head, _, rest = path.partition(".")
    out = dict(data)
    if rest:
        inner = out.get(head)
        out[head] = _with_path(inner if isinstance(inner, dict) else {}, rest, value)
    else:
        out.setdefault(head, value)
    return out


class Replayer:
    """Replays runs against one definition. Not thread-safe; cheap per run."""

    def __init__(self, definition: Definition):
        from autorun_cli.engine import Engine, VirtualClock

        self.definition = definition
        self.clock = VirtualClock(0)
        # What the recorded run's HTTP endpoints answered, per step key and attempt
        # (None: success), for the run being replayed now.
        self._http: dict[str, list[str | None]] = {}
        self.engine: Engine = Engine.memory(self.clock, sandbox=True, sandbox_http=self._sandbox_http)
        self.engine.load(definition)
        self._waits = {s.key: s for s in definition.steps if s.type == "wait_for_event"}
        self._names = {s.key: s.name for s in definition.steps if s.name}
        self._count = 0

    def close(self) -> None:
        self.engine.close()

    def _sandbox_http(self, run_id: str, step_key: str, attempt: int) -> str | None:
        """A sandboxed HTTP attempt fails where the recorded one failed: the
        endpoint's answer is an input of the run, like an event. Past the recorded
        attempts, the last recorded outcome holds."""
        outcomes = self._http.get(step_key) or self._http.get(self._names.get(step_key) or "")
        if not outcomes:
            return None
        return outcomes[min(attempt, len(outcomes)) - 1]

    @staticmethod
    def _recorded_http(recorded: Run) -> dict[str, list[str | None]]:
        out: dict[str, list[str | None]] = {}
        for step in recorded.steps:
            if step.status in ("completed", "failed"):
                failure = (step.error or "failed when recorded") if step.status == "failed" else None
                # Under its key and its name: a definition step matches either (a
                # vendor's key with spaces is a draft step's name).
                for ident in dict.fromkeys(i for i in (step.key, step.name) if i):
                    out.setdefault(ident, []).append(failure)
        return out

    def __enter__(self) -> Replayer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _event_payload(self, identity: str | None, step_key: str | None, payload: dict[str, Any]) -> dict[str, Any]:
        """The recorded event's payload, plus the field the wait matches on when the
        vendor's record left it out (it records *that* the event matched, not how)."""
        wait = self._waits.get(step_key or "")
        if wait is not None and identity is not None and wait.match.equals == "identity":
            return _with_path(payload, wait.match.field or self.definition.identity.from_, identity)
        return payload

    def replay(self, recorded: Run) -> Report:
        from autorun_cli.providers.local import map_run
        from autorun_cli.timeutil import iso

        inp = replay_input(recorded)
        event = inp.trigger_event or self.definition.trigger
        if event != self.definition.trigger:
            # The recorded trigger is kept as data; the definition decides what starts it.
            event = self.definition.trigger
        payload = inp.payload if isinstance(inp.payload, dict) else {}
        identity = inp.identity_value
        notes: list[str] = []
        if identity is None and dig(payload, self.definition.identity.from_) is None:
            # The vendor ran it without one (tenant, generic): the run's ID stands in,
            # so the definition's identity is resolved and the replay can start.
            identity = recorded.id
            notes.append("the recorded run has no identity; its run ID stood in for one")
        if identity is not None:
            payload = _with_path(payload, self.definition.identity.from_, identity)
        t0 = inp.started_at.timestamp()
        self._http = self._recorded_http(recorded)
        self._count += 1
        self.clock.set(t0)
        dispatch = self.engine.trigger(event, payload, event_id=f"replay-{self._count}-{recorded.id}", occurred_at=iso(inp.started_at))
        if not dispatch:
            raise UsageError(
                f"automation {self.definition.id!r} started no run for {recorded.id}",
                hint=f"its trigger is {self.definition.trigger!r}; check --definition",
            )
        run_id = dispatch[0]
        # A cancellation is an input too: delivered at the recorded time, after the
        # events recorded before (or at) it.
        cancel_at = _cancelled_at(recorded, t0)
        cancelled = False
        for n, ev in enumerate(inp.events):
            if cancel_at is not None and not cancelled and ev.offset_s > cancel_at - t0:
                cancelled = self._cancel(run_id, cancel_at)
            self.engine.advance_to(t0 + ev.offset_s)
            self.engine.send_event(
                ev.event,
                self._event_payload(identity, ev.step_key, ev.payload),
                event_id=f"replay-{self._count}-{n}-{ev.event_id or ''}",
                identity=identity,
                occurred_at=iso(datetime.fromtimestamp(t0 + ev.offset_s, UTC)),
            )
        if cancel_at is not None and not cancelled:
            self._cancel(run_id, cancel_at)
        # A recorded run that had ended is replayed to its end; one that had not is
        # replayed only up to when it was recorded (a wait still open then stays open).
        # A cancelled one was cancelled above, at its recorded time, and has no timers.
        horizon = t0 + HORIZON_S
        if recorded.status not in TERMINAL:
            seen = parse_ts(recorded.finished_at) or parse_ts(recorded.updated_at)
            if seen is not None:
                horizon = max(t0, seen.timestamp())
        fired = 0
        due = None
        while fired < MAX_TIMERS:
            # The store's own epoch float: a datetime (engine.next_due) rounds to the
            # microsecond and could land just before the timer it names.
            due = self.engine.store.next_due()
            if due is None or due > horizon:
                break
            self.engine.advance_to(due)
            fired += 1
        replayed = map_run(self.engine.get_run(run_id))
        report = compare(recorded, replayed)
        report.notes += notes
        if fired >= MAX_TIMERS or (due is not None and due - t0 > HORIZON_S and recorded.status in TERMINAL):
            report.notes.append("stopped moving the clock: timers were still due a year after the start")
        return report


    def _cancel(self, run_id: str, when: float) -> bool:
        """Cancel the replayed run at ``when`` unless it has ended by then."""
        self.engine.advance_to(when)
        if self.engine.get_run(run_id)["status"] not in TERMINAL:
            self.engine.cancel(run_id)
        return True


def _cancelled_at(recorded: Run, t0: float) -> float | None:
    """When a cancelled recorded run was cancelled (its finish, else its last update)."""
    if recorded.status != "cancelled":
        return None
    when = parse_ts(recorded.finished_at) or parse_ts(recorded.updated_at)
    return max(t0, when.timestamp()) if when is not None else t0


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector around bulk work.

    Mapping and replaying runs allocate many short-lived objects and free none of
    them in cycles: the collector's passes are pure overhead there (about a fifth
    of the time, measured with benchmarks/replay.py).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def iter_replays(recorded: list[Run], definition: Definition) -> Iterator[Report]:
    """Each run's report as soon as that run is replayed (a progress bar counts them)."""
    with paused_gc(), Replayer(definition) as replayer:
        for run in recorded:
            yield replayer.replay(run)


def replay_runs(recorded: list[Run], definition: Definition) -> list[Report]:
    return list(iter_replays(recorded, definition))
