"""Option values that Typer cannot check alone: durations, times and their ranges.

Every out-of-range value is bad usage (exit 2) whose message names the accepted
range; nothing absurd reaches ``timedelta``, ``sleep`` or SQLite to end as an
internal error. Counts are plain ``int`` options with ``min=``/``max=`` (the
CLI's usage-error handler words Typer's message and adds the range).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from autorun_cli.errors import UsageError

# Ranges of the options that take them.
LIMIT_MAX = 1_000_000  # list --limit: more than this is --all
DAY = 86400.0
YEAR = 365 * DAY
LOOKBACK_MAX = 100 * YEAR  # --since/--until as a duration ago

_UNITS = ((DAY, "d"), (3600.0, "h"), (60.0, "m"), (1.0, "s"))


def human(seconds: float) -> str:
    """``0.01`` → ``10ms``, ``86400`` → ``1d``: how a range is shown."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    for size, unit in _UNITS:
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def duration(text: str, flag: str, *, low: float, high: float, example: str) -> float:
    """A duration option in seconds: ``90``, ``1.5``, ``500ms``, ``30s``, ``15m``,
    ``2h``, ``1d``, ``1w``; more than ``low`` (``low`` itself when it is not zero)
    and at most ``high``."""
    from autorun_cli.timeutil import parse_duration

    accepted = f"from {human(low)} to {human(high)}" if low else f"more than 0, up to {human(high)}"
    try:
        value = parse_duration(text)
    except ValueError:
        raise UsageError(
            f"{flag} {text!r} is not a duration (accepted: {accepted})",
            hint=f"e.g. {flag} {example}; units ms, s, m, h, d, w (no unit: seconds)",
        ) from None
    if not (value >= low and value > 0 and value <= high):
        raise UsageError(f"{flag} {text!r} is out of range (accepted: {accepted})", hint=f"e.g. {flag} {example}")
    return value


def _utc(dt: datetime) -> datetime | None:
    """``dt`` in UTC, or None at the edge of the calendar (``0001-01-01T00:00+14:00``)."""
    try:
        return dt.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def when(text: str, flag: str, now: datetime | None = None) -> datetime:
    """``--since``/``--until``: a duration ago (``2h``, ``3d``, at most 100 years) or an
    ISO 8601 time (a date, or a date and time with or without an offset)."""
    from autorun_cli.timeutil import parse_duration, parse_ts

    accepted = f"a duration ago up to {human(LOOKBACK_MAX)}, or an ISO 8601 time"
    hint = f"e.g. {flag} 2h, {flag} 2026-06-01, {flag} 2026-06-08T14:00:00Z"
    now = now or datetime.now(UTC)
    try:
        ago = parse_duration(text)
    except ValueError:
        ago = None
    if ago is not None:
        if ago > LOOKBACK_MAX:
            raise UsageError(f"{flag} {text!r} is out of range (accepted: {accepted})", hint=hint)
        return now - timedelta(seconds=ago)
    dt = parse_ts(text)
    if dt is None:
        raise UsageError(f"{flag} {text!r} is not a time (accepted: {accepted})", hint=hint)
    utc = _utc(dt)
    if utc is None:
        raise UsageError(f"{flag} {text!r} is out of range: it falls outside the calendar in UTC", hint=hint)
    return utc


def iso_time(text: str | None, flag: str) -> str | None:
    """An ISO 8601 time passed on as given (``--occurred-at``); None stays None."""
    from autorun_cli.timeutil import parse_ts

    if text is None:
        return None
    hint = f"e.g. {flag} 2026-06-08T14:16:31Z"
    dt = parse_ts(text)
    if dt is None:
        raise UsageError(f"{flag} {text!r} is not an ISO 8601 time", hint=hint)
    if _utc(dt) is None:
        raise UsageError(f"{flag} {text!r} is out of range: it falls outside the calendar in UTC", hint=hint)
    return text
