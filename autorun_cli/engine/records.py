"""The engine's small value types: the run record it moves between the store and
its steps, an HTTP job in flight, and what its public methods return.

Plain slotted classes rather than dataclasses: the engine loads on every local
command, and building a dataclass costs start-up time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from autorun_cli.engine.store import RUN_COLUMNS

TERMINAL = frozenset({"completed", "failed", "cancelled", "timed_out", "skipped"})
RETRYABLE = frozenset({"failed", "cancelled", "timed_out"})
CHANNELS = {"send_email_template": "email", "send_push_template": "push", "send_sms": "sms"}


class Dispatch(list):
    """Run ids started (trigger) or resumed (send_event); a list with two extra facts."""

    def __init__(self, run_ids: Iterable[str] = (), *, event_id: str, duplicate: bool = False):
        super().__init__(run_ids)
        self.event_id = event_id
        self.duplicate = duplicate

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


class HttpJob:
    """One HTTP attempt reached by a committed transaction, waiting to be sent.
    ``step_row`` is the attempt's step row, and the epoch of the run's lease."""

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


class RunRecord:
    """A run row as the engine changes it inside one transaction (RUN_COLUMNS, typed),
    plus the decoded trigger payload and last event."""

    __slots__ = (*RUN_COLUMNS, "new", "payload", "last")

    id: str
    definition_id: str
    definition_version: int
    name: str | None
    status: str
    cursor: str | None              # the step being executed or waited on; None once completed
    attempt: int                    # attempts of the current step so far
    attempt_floor: int              # attempts that do not count against the retry budget
    trigger_event: str | None
    trigger_event_id: str | None
    trigger_payload: str | None     # JSON text, as stored
    trigger_occurred_at: str | None
    identity_type: str | None
    identity_value: str | None
    last_event: str | None          # JSON text of the event that resumed the last wait
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    error_message: str | None
    error_step: str | None
    error_detail: str | None
    new: bool                       # not inserted yet
    payload: dict[str, Any]
    last: dict[str, Any] | None

    def __init__(self, row: dict[str, Any] | None = None):
        self.new = row is None
        if row is not None:
            for k in RUN_COLUMNS:
                setattr(self, k, row[k])
            self.payload = json.loads(row["trigger_payload"]) if row["trigger_payload"] else {}
            self.last = json.loads(row["last_event"]) if row["last_event"] else None

    def values(self) -> tuple[Any, ...]:
        self.trigger_payload = json.dumps(self.payload) if self.new else self.trigger_payload
        self.last_event = json.dumps(self.last) if self.last is not None else None
        return tuple(getattr(self, k) for k in RUN_COLUMNS)


def match_key(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)

def short(seconds: float) -> str:
    """30m, 1h30m, 90s → 1m30s, 0.2 → 200ms: durations as a definition would write them."""
    if seconds < 1:
        return f"{int(round(seconds * 1000))}ms"
    out, rest = "", int(round(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out
