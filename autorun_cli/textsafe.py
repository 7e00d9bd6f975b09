"""Make text from outside safe to print: the one sanitiser of autorun's output.

* Control characters (C0 but tab and newline, DEL, C1, the Unicode line/paragraph
  separators and the bidirectional overrides) become visible escapes: ESC shows as
  ``\\x1b``, so no API answer or file can move the cursor, clear the screen, set the
  title or open an OSC 8 link on the user's terminal.
* The configured secrets (the API token...) are redacted as ``***`` from all of it.

The secrets are registered once per command (:func:`set_secrets`, called when the
command's settings are resolved) and every writer of output applies them: ``clean``
for text, :func:`redact_data` for JSON documents. No Rich here, so the error path
can use it before any console exists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

_UNSAFE = r"\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
# Compiled on first use: this module loads on every command, most print no text.
_ctrl: re.Pattern[str] | None = None
_ctrl_line: re.Pattern[str] | None = None

# The configured secrets, and each one as it reads inside a JSON string.
_secrets: tuple[str, ...] = ()
_forms: tuple[str, ...] = ()
MASK = "***"


def set_secrets(secrets: Iterable[str | None]) -> None:
    """The secrets no output of this command may show (replaces any set before)."""
    global _secrets, _forms
    # Shorter than 3 characters would mask ordinary text; longest first, so a secret
    # that contains another is masked whole.
    kept = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)
    _secrets = tuple(kept)
    _forms = tuple(dict.fromkeys([*kept, *(json.dumps(s, ensure_ascii=False)[1:-1] for s in kept)]))


def add_secrets(secrets: Iterable[str | None]) -> None:
    """Mask these too, beside the ones already registered (an error raised before the
    command's settings were resolved may quote a secret the user put in the wrong place)."""
    set_secrets([*_secrets, *secrets])


def url_password(url: str | None) -> str | None:
    """The password of a URL's userinfo (``https://user:PW@host``): a secret as well."""
    if not url or "@" not in url:
        return None
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password or None
    except ValueError:
        return None


def redact(text: str, extra: Iterable[str] | None = None) -> str:
    """``text`` with every registered secret (and those in ``extra``) masked."""
    for secret in (*_secrets, *(s for s in extra or () if s and len(s) >= 3)):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: Any) -> str:
    """A display string: control characters escaped, secrets masked."""
    if value is None:
        return ""
    global _ctrl
    if _ctrl is None:
        _ctrl = re.compile(f"[{_UNSAFE}]")
    text = value if isinstance(value, str) else str(value)
    return redact(_ctrl.sub(_escape, text))


def clean_line(value: Any) -> str:
    """Like :func:`clean`, and newlines and tabs escaped too: one field on one line
    (``-o id`` prints one ID per line; a newline inside one would forge another)."""
    if value is None:
        return ""
    global _ctrl_line
    if _ctrl_line is None:
        # One field per line (IDs on stdout, the -v request log): newline and tab too.
        _ctrl_line = re.compile(f"[\\t\\n{_UNSAFE}]")
    text = value if isinstance(value, str) else str(value)
    return redact(_ctrl_line.sub(_escape, text))


def leaks(text: str) -> bool:
    """Whether serialized ``text`` shows a secret (as is, or JSON-escaped)."""
    return any(form in text for form in _forms)


def redact_data(value: Any) -> Any:
    """A copy of a JSON-like value with the secrets masked in every string (keys
    too). Only strings change, so the document keeps its shape and types."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_data(k) if isinstance(k, str) else k: redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v) for v in value]
    return value


def excerpt(text: str, secrets: list[str] | None = None, limit: int = 160) -> str:
    """A short, single-line, secret-free quote of server text (a response body)."""
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
