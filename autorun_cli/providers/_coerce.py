"""Reading odd vendor values without crashing: shared by the provider modules.

Seeds send numbers where names belong, objects where strings belong and
placeholders everywhere; these helpers decide once how such a value becomes text.
"""

from __future__ import annotations

import json
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
