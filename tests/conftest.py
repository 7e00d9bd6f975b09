"""Shared fixtures.

``api_server``: the four-vendor test server (tests/apiserver.py) on 127.0.0.1.
``api``: respx mocking the API at ``respx_helpers.BASE``; ``delays``: the HTTP layer's
backoffs recorded instead of slept (the provider unit tests use both).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# tests/ holds helper modules (apiserver) imported by name from test files.
_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from apiserver import ApiServer  # noqa: E402
from respx_helpers import BASE  # noqa: E402


@pytest.fixture
def api_server() -> Iterator[ApiServer]:
    """A fresh server per test (seeds loaded, no faults), on a free port; stopped afterwards."""
    server = ApiServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def api() -> Iterator[Any]:
    """respx in front of ``BASE``; routes a test does not call are fine."""
    import respx

    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def delays(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record every backoff instead of sleeping, so tests stay fast."""
    import autorun_cli.http as http_mod

    recorded: list[float] = []
    monkeypatch.setattr(http_mod, "sleep", recorded.append)
    return recorded
