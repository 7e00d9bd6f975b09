"""Reading odd vendor values without crashing: shared by the provider modules.

Seeds send numbers where names belong, objects where strings belong and
placeholders everywhere; these helpers decide once how such a value becomes text.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any


def scalar_text(value: Any) -> str | None:
    """A scalar as text; a container (an object where a name belongs) is None."""
    if value is None or isinstance(value, (dict, list)):
        return None
    return value if isinstance(value, str) else str(value)


def nonempty_text(value: Any) -> str | None:
    """A non-blank string as given, anything else None."""
    return value if isinstance(value, str) and value.strip() else None


def as_text(value: Any) -> str | None:
    """Any value as text: containers as compact JSON, None stays None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


# An integer as JSON or a form field spells it: optional sign, ASCII digits only
# ("²".isdigit() is True but int("²") raises), and short enough that int() never
# meets Python's 4300-digit limit.
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,100}", re.ASCII)


def as_int(value: Any) -> int | None:
    """An integer from a vendor value, else None. One rule for every provider:

    * an int is itself (``True``/``False`` are not numbers here: None);
    * a float counts when it is finite and integral (``3.0`` → 3; ``2.5``, ``inf``,
      ``nan`` → None);
    * a string counts when it is an optional sign and ASCII digits, blanks around it
      allowed (``" -3 "`` → -3; ``"3.0"``, ``"1e3"``, ``"²"`` → None).

    The sign is kept: whether a negative number makes sense is the caller's call
    (see :func:`as_count`).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        return int(text) if _INT_TEXT.fullmatch(text) else None
    return None


def as_count(value: Any) -> int | None:
    """A count or an index: :func:`as_int`, and None when negative."""
    number = as_int(value)
    return number if number is not None and number >= 0 else None


def as_ms(value: Any) -> int | None:
    """A duration in milliseconds: a non-negative finite number, rounded; else None.

    ``inf`` (what ``1e400`` decodes to), ``nan``, negatives, booleans and strings are
    None, so the caller can fall back to the timestamps.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value >= 0:
        return round(value)
    return None
