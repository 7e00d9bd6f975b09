"""Shared fixtures. ``api_server``: the four-vendor test server (tests/apiserver.py) on 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/ holds helper modules (apiserver) imported by name from test files.
_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from apiserver import ApiServer  # noqa: E402


@pytest.fixture
def api_server() -> Iterator[ApiServer]:
    """A fresh server per test (seeds loaded, no faults), on a free port; stopped afterwards."""
    server = ApiServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
