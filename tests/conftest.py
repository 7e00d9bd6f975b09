"""Shared fixtures.

``api_server``: the four-vendor test server (tests/apiserver.py) on 127.0.0.1.
``api``: respx mocking the API at ``respx_helpers.BASE``; ``delays``: the HTTP layer's
backoffs recorded instead of slept (the provider unit tests use both).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# tests/ holds helper modules (apiserver) imported by name from test files.
_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

import typer.main  # noqa: E402
import typer.testing  # noqa: E402
from apiserver import ApiServer  # noqa: E402
from pgserver import PgServer, PgUnavailable, schema_url  # noqa: E402
from respx_helpers import BASE  # noqa: E402

# CliRunner.invoke has Typer build the whole Click command tree again on every call (a
# pydantic adapter per parameter: ~75 ms, minutes over the suite). The tree of an app
# is the same every time, so it is built once per app.
typer.testing._get_command = functools.cache(typer.main.get_command)  # type: ignore[attr-defined]

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


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server for this test session (tests/pgserver.py), or the one at
    ``AUTORUN_TEST_PG_URL``. Without one the tests that need it skip, except under
    ``CI=true``, where they fail."""
    url = os.environ.get("AUTORUN_TEST_PG_URL")
    if url:
        yield url
        return
    server = PgServer()
    try:
        url = server.start()
    except (PgUnavailable, OSError, subprocess.SubprocessError) as exc:
        server.stop()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is needed and could not start: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield url
    finally:
        from autorun_cli.engine import pgstore

        pgstore.close_pools()
        server.stop()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty schema on the session's PostgreSQL server, as an engine URL."""
    import psycopg

    schema = "t_" + os.urandom(6).hex()
    try:
        with psycopg.connect(pg_server, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.Error as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL at {pg_server} cannot be reached: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    yield schema_url(pg_server, schema)
