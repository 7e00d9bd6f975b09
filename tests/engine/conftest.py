"""Fixtures for the engine tests: engines on real SQLite files, a webhook server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from engine_helpers import HookServer  # noqa: E402


@pytest.fixture
def hook_server() -> Iterator[HookServer]:
    server = HookServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
