"""Timestamp parsing and formatting shared by providers, filters and renderers."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_ts(value: object) -> datetime | None:
    """Parse an API timestamp; ``None`` for anything that is not one.

    Accepts ``Z``, offsets, a space instead of ``T`` and plain dates. A naive
    value is taken as UTC so comparisons never raise.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt


def duration_ms(start: object, end: object) -> int | None:
    a, b = parse_ts(start), parse_ts(end)
    if a is None or b is None:
        return None
    ms = int(round((b - a).total_seconds() * 1000))
    return ms if ms >= 0 else None


def parse_duration(text: str) -> float:
    """``90``, ``1.5s``, ``30m``, ``2h``, ``1d`` → seconds. Raises ValueError."""
    m = _DURATION.match(text or "")
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 2h, 1d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """``--since 2h`` (ago) or an ISO timestamp/date. Raises ValueError."""
    now = now or datetime.now(UTC)
    try:
        return now - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    dt = parse_ts(text)
    if dt is None:
        raise ValueError(f"not a time: {text!r} (use a duration like 2h or an ISO 8601 time)")
    return dt


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def human_duration(ms: int | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms}ms"
    if ms >= 10**15:
        return _huge_duration(ms)
    s = ms / 1000
    if s < 60:
        return f"{s:.1f}s".replace(".0s", "s")
    m, s = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def _huge_duration(ms: int) -> str:
    """Days and hours in integer arithmetic: ``ms / 1000`` overflows a float past ~1e308."""
    d, h = divmod(ms // 3_600_000, 24)
    return f"{d}d{h:02d}h"


def relative(value: object, now: datetime | None = None) -> str:
    """``3m ago`` / ``in 12m``; the original text when it is not a timestamp."""
    dt = parse_ts(value)
    if dt is None:
        return "" if value is None else str(value)
    now = now or datetime.now(UTC)
    delta = (now - dt).total_seconds()
    future = delta < 0
    secs = abs(delta)
    if secs < 45:
        text = f"{int(secs)}s"
    elif secs < 3600:
        text = f"{int(round(secs / 60))}m"
    elif secs < 86400 * 2:
        text = f"{int(round(secs / 3600))}h"
    else:
        text = f"{int(round(secs / 86400))}d"
    return f"in {text}" if future else f"{text} ago"


def fmt_time(value: object, mode: str, now: datetime | None = None) -> str:
    if value is None:
        return ""
    if mode == "relative":
        return relative(value, now)
    return str(value)
