"""Injected clocks: the engine never reads the wall clock directly.

Times are float epoch seconds (UTC) inside the engine and the store; they become
ISO 8601 strings only on the read side.
"""

from __future__ import annotations

import time as _time
from datetime import UTC, datetime


class Clock:
    """What the engine needs from a clock."""

    virtual = False

    def time(self) -> float:
        raise TypeError(f"{type(self).__name__} does not tell the time")

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def sleep(self, seconds: float) -> None:
        raise TypeError(f"{type(self).__name__} cannot sleep")


class RealClock(Clock):
    def time(self) -> float:
        return _time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            _time.sleep(seconds)


def _to_epoch(value: datetime | float | int | str) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, str):
        from autorun_cli.timeutil import parse_ts

        dt = parse_ts(value)
        if dt is None:
            raise ValueError(f"not a timestamp: {value!r}")
        return dt.timestamp()
    return float(value)


class VirtualClock(Clock):
    """A clock that only moves when told to (replay, tests, benchmarks).

    ``sleep`` advances it instantly. ``set`` may move it backwards, which replay
    uses to start each recorded run at its own recorded time; timers already in
    the store keep their absolute due times.
    """

    virtual = True

    def __init__(self, start: datetime | float | int | str | None = None):
        self._t = _time.time() if start is None else _to_epoch(start)

    def time(self) -> float:
        return self._t

    def set(self, when: datetime | float | int | str) -> None:
        self._t = _to_epoch(when)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a virtual clock advances by a non-negative number of seconds")
        self._t += seconds

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._t += seconds
