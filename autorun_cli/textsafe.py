"""Make API text safe to print: control characters become visible escapes.

No Rich here, so the error path can use it before any console exists.
"""

from __future__ import annotations

import json
import re
from typing import Any

_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: Any) -> str:
    """A display string with control characters escaped (ESC shows as ``\\x1b``)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return _CTRL.sub(_escape, text)


def excerpt(text: str, secrets: list[str] | None = None, limit: int = 160) -> str:
    """A short, single-line, secret-free quote of server text (a response body)."""
    from autorun_cli.errors import redact

    text = redact(clean(" ".join(text.split())), secrets)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def readable_info(value: Any) -> str:
    """Step info for people: a JSON string inside a string is unwrapped, and
    structured values become compact JSON. JSON output keeps the value as given."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value.strip()
        for _ in range(2):
            if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
                try:
                    inner = json.loads(text)
                except ValueError:
                    inner = text[1:-1]
                if isinstance(inner, str):
                    text = inner.strip()
                    continue
                return json.dumps(inner, ensure_ascii=False)
            break
        return text
    return json.dumps(value, ensure_ascii=False, default=str)
