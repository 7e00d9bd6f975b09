"""Reading what the user names — a file, or stdin for ``-`` — with a bound.

Recorded runs for ``replay``/``diff``/``automations draft`` and event payloads are
read through here: at most ``MAX_INPUT`` bytes, read with a limit rather than sized
first, so a device or a pipe that never ends (``/dev/zero``) stops at the limit too.
Every failure is bad input (exit 2) naming the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from autorun_cli.errors import UsageError

# 64 MB: far beyond a real input (10,000 recorded runs of ndjson are ~30 MB).
MAX_INPUT = 64 * 1024 * 1024
MAX_INPUT_TEXT = "64 MB"


def too_big(origin: str, what: str, hint: str) -> UsageError:
    return UsageError(f"{origin} holds more than {MAX_INPUT_TEXT}, the most autorun reads of {what}", hint=hint)


def not_utf8(origin: str, hint: str) -> UsageError:
    return UsageError(f"{origin} is not UTF-8 text", hint=hint)


def read_text(source: str, stdin: IO[str] | None = None, *, what: str, hint: str, origin: str | None = None) -> str:
    """All of file ``source`` (stdin for ``-``) as text, at most ``MAX_INPUT`` bytes."""
    origin = origin or ("stdin" if source == "-" else source)
    try:
        if source == "-":
            import sys

            stream = stdin or sys.stdin
            binary = getattr(stream, "buffer", None)
            data: bytes | str = binary.read(MAX_INPUT + 1) if binary is not None else stream.read(MAX_INPUT + 1)
        else:
            with open(source, "rb") as fh:
                data = fh.read(MAX_INPUT + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {origin}: {exc.strerror or exc}", hint="check the path") from None
    except UnicodeDecodeError:
        raise not_utf8(origin, hint) from None
    if len(data) > MAX_INPUT:
        raise too_big(origin, what, hint)
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise not_utf8(origin, hint) from None


def lines(stream: IO[str], *, what: str, hint: str, origin: str = "stdin") -> Iterator[tuple[int, str]]:
    """Numbered lines of ``stream``, at most ``MAX_INPUT`` characters in all: a line
    that never ends is cut at the limit, not read into memory whole."""
    total = n = 0
    try:
        while True:
            line = stream.readline(MAX_INPUT - total + 1)
            if not line:
                return
            total += len(line)
            if total > MAX_INPUT:
                raise too_big(origin, what, hint)
            n += 1
            yield n, line
    except UnicodeDecodeError:
        raise not_utf8(origin, hint) from None
