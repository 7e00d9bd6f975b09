"""Small helpers shared by the engine: ids, timestamps, dotted paths, templates."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from typing import Any, overload

_MISSING = object()  # dig's "no default given"
_ABSENT = object()  # a default that tells an absent value from a null one
_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")


def new_id(prefix: str, t: float) -> str:
    """Time-ordered id: ``run_`` + ms timestamp (hex) + 40 random bits."""
    return f"{prefix}_{int(t * 1000):011x}{os.urandom(5).hex()}"


_ISO_CACHE: dict[float, str] = {}


@overload
def iso(t: float) -> str: ...
@overload
def iso(t: None) -> None: ...
@overload
def iso(t: float | None) -> str | None: ...
def iso(t: float | None) -> str | None:
    """Epoch seconds → ISO 8601 UTC with an explicit offset, millisecond precision."""
    if t is None:
        return None
    text = _ISO_CACHE.get(t)
    if text is None:
        # A run's timestamps repeat (a step starts when the previous one ends), and
        # read-heavy callers (replay, list) format thousands of them.
        if len(_ISO_CACHE) > 4096:
            _ISO_CACHE.clear()
        try:
            text = datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")
        except (OverflowError, ValueError, OSError):
            return None  # beyond the calendar (an infinite timeout stored by an old version)
        _ISO_CACHE[t] = text
    return text


def dig(data: Any, path: str, default: Any = _MISSING) -> Any:
    """Follow a dotted path (``customer.email``, ``items.0.sku``) through dicts and lists."""
    cur = data
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None if default is _MISSING else default
    return cur


def has_path(data: Any, path: str) -> bool:
    return dig(data, path, _ABSENT) is not _ABSENT


class MissingVariable(LookupError):
    """A ``{{ path }}`` placeholder whose value the run's context does not hold."""

    def __init__(self, path: str):
        super().__init__(path)
        self.path = path

    def explain(self) -> str:
        root, _, rest = self.path.partition(".")
        where = {"payload": "the trigger's payload", "event": "the event that resumed the run"}.get(root)
        if where and rest:
            return f"template variable {{{{ {self.path} }}}} is missing: {where} has no {rest}"
        if where:
            return f"template variable {{{{ {self.path} }}}} is missing: there is no {where}"
        return (f"template variable {{{{ {self.path} }}}} is not known: use payload.…, event.…, identity.value,"
                " run.id or trigger.event")


def render(text: str, ctx: dict[str, Any], *, strict: bool = False) -> str:
    """Replace ``{{ payload.order_id }}`` placeholders. A value that is absent renders
    empty, or with ``strict`` raises :class:`MissingVariable` (a message that would
    read "Welcome aboard, !" is a failed step, not a sent one); a null value renders empty."""
    if "{{" not in text:
        return text

    def sub(m: re.Match[str]) -> str:
        value = dig(ctx, m.group(1), _ABSENT)
        if value is _ABSENT:
            if strict:
                raise MissingVariable(m.group(1))
            return ""
        return "" if value is None else str(value)

    return _TEMPLATE.sub(sub, text)


def render_any(value: Any, ctx: dict[str, Any], *, strict: bool = False) -> Any:
    if isinstance(value, str):
        return render(value, ctx, strict=strict)
    if isinstance(value, dict):
        return {k: render_any(v, ctx, strict=strict) for k, v in value.items()}
    if isinstance(value, list):
        return [render_any(v, ctx, strict=strict) for v in value]
    return value


def variables(value: Any) -> list[str]:
    """The ``{{ path }}`` placeholders in a template (a string, or dicts/lists of them)."""
    if isinstance(value, str):
        return _TEMPLATE.findall(value) if "{{" in value else []
    if isinstance(value, dict):
        return [v for item in value.values() for v in variables(item)]
    if isinstance(value, list):
        return [v for item in value for v in variables(item)]
    return []


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def compare(actual: Any, op: str, expected: Any) -> bool:
    """The condition step's operators. Ordering compares numbers, else strings."""
    if op == "exists":
        return actual is not None
    if op == "not_exists":
        return actual is None
    if op == "eq":
        return actual == expected or (_num(actual) is not None and _num(actual) == _num(expected))
    if op == "ne":
        return not compare(actual, "eq", expected)
    if op == "in":
        return isinstance(expected, list) and actual in expected
    if op == "contains":
        if isinstance(actual, (list, dict)):
            return expected in actual
        return isinstance(actual, str) and str(expected) in actual
    if actual is None:
        return False
    a, b = _num(actual), _num(expected)
    if a is None or b is None:
        a, b = str(actual), str(expected)  # type: ignore[assignment]
    if op == "gt":
        return a > b  # type: ignore[operator]
    if op == "gte":
        return a >= b  # type: ignore[operator]
    if op == "lt":
        return a < b  # type: ignore[operator]
    if op == "lte":
        return a <= b  # type: ignore[operator]
    raise ValueError(f"unknown operator {op!r}")
