"""Decoding JSON that comes from outside (an API answer, a saved run) without surprises.

``json.loads`` alone lets three kinds of documents through that later crash the
tool far from where they came in:

* nesting deeper than the interpreter's recursion limit raises ``RecursionError``
  (not a ``ValueError``), and nesting a little less deep decodes but then breaks
  pydantic's serializer (about 250 levels) or ``json.dumps``;
* ``1e400`` decodes to ``inf`` and ``NaN``/``Infinity`` to floats that
  ``json.dumps`` writes back as invalid JSON, and ``int(inf)`` raises.

:func:`loads` refuses the first (:class:`DocumentError`, a ``ValueError``) and keeps
the second as the text the document gave, so it is shown as given and every JSON
autorun prints stays valid.
"""

from __future__ import annotations

import json
import math
from typing import Any

# Real run documents nest a dozen levels; the normalized model wraps a vendor
# document a few levels deeper, and pydantic serializes up to ~250.
MAX_DEPTH = 128


class DocumentError(ValueError):
    """A JSON document autorun will not read (too deeply nested)."""


def _float(text: str) -> Any:
    value = float(text)
    return value if math.isfinite(value) else text


def _constant(text: str) -> str:
    # NaN, Infinity, -Infinity: not JSON at all; kept as the text that was sent.
    return text


def too_deep(doc: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``doc`` nests lists/objects more than ``limit`` levels.

    Level by level, holding only containers: no recursion, and about a third of
    what decoding the document cost (a 100-run page: ~0.2 ms).
    """
    if type(doc) is not dict and type(doc) is not list:
        return False
    level: list[Any] = [doc]
    for _ in range(limit):
        below: list[Any] = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        if not below:
            return False
        level = below
    return True


def loads(data: str | bytes | bytearray) -> Any:
    """``json.loads`` with the rules above; raises ValueError (DocumentError) on refusal."""
    try:
        doc = json.loads(data, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise DocumentError(f"the JSON is nested more than {MAX_DEPTH} levels deep") from None
    # Fewer brackets than the limit cannot nest deeper than it: skip the walk.
    opened = data.count("[") + data.count("{") if isinstance(data, str) else data.count(b"[") + data.count(b"{")
    if opened > MAX_DEPTH and too_deep(doc):
        raise DocumentError(f"the JSON is nested more than {MAX_DEPTH} levels deep")
    return doc
