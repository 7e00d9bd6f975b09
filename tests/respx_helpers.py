"""What the four provider unit tests share: the mocked API's base URL and the seed files.

The fixtures built on these (``api``, ``delays``) live in conftest.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BASE = "https://api.example.test"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load(name: str) -> Any:
    """A JSON document under tests/fixtures/ (seeds/ holds the vendor examples)."""
    return json.loads((FIXTURES / name).read_text())
