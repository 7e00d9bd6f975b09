"""The local engine's store failing in the middle of a command: the service failed
(exit 5), said in one ``error:`` line and one ``hint:`` line, never a traceback and
never the password of the store's URL.

PostgreSQL for real: a server of the test's own (tests/pgserver.py) is stopped with
``pg_ctl stop -m immediate`` after the command opened its store (in-process, right
after the store's constructor) or while ``engine work --forever`` runs (a real
process). SQLite: a store whose write lock another connection holds past the busy
timeout, and a file damaged under an open store.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autorun_cli.cli.app import app
from autorun_cli.errors import EXIT_SERVICE, ServiceError

ROOT = Path(__file__).resolve().parents[1]
SECRET = "pg-Secr3t-pw"
runner = CliRunner()


class Server:
    """A throwaway PostgreSQL that the test may stop (the session's one must stay up)."""

    def __init__(self) -> None:
        from pgserver import PgServer, PgUnavailable

        self.pg = PgServer()
        try:
            base = self.pg.start()
        except (PgUnavailable, OSError, subprocess.SubprocessError) as exc:
            self.pg.stop()
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"PostgreSQL is needed and could not start: {exc}")
            pytest.skip(f"PostgreSQL unavailable: {exc}")
        # trust authentication: the server ignores the password, the URL carries it
        self.url = base.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@")

    def kill(self) -> None:
        """Stop the server now (connections cut, as when it crashes or is restarted)."""
        from pgserver import _binary

        data = os.path.join(self.pg.dir, "data")
        done = self.pg._run([_binary("pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"])
        assert done.returncode == 0, done.stderr

    def close(self) -> None:
        from autorun_cli.engine import pgstore

        pgstore.close_pools()
        self.pg.stop()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))
    for var in ("AUTORUN_PROVIDER", "AUTORUN_OUTPUT", "AUTORUN_DEBUG", "AUTORUN_ENGINE_URL", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)


def _assert_service_failure(code: int, out: str, err: str) -> None:
    assert code == EXIT_SERVICE, (code, out, err)
    assert "Traceback" not in out + err and SECRET not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), err


@pytest.mark.parametrize("args", [["list"], ["show", "run_0000000000000_abcdef"],
                                  ["trigger", "signup", "--payload", '{"email": "a@b.c"}'],
                                  ["engine", "work"]])
def test_postgres_gone_after_the_store_opened_is_exit_5(server: Server, monkeypatch: pytest.MonkeyPatch,
                                                        args: list[str]) -> None:
    from autorun_cli.engine import pgstore

    opened = pgstore.PostgresStore.__init__

    def open_then_lose_the_server(self, *a, **kw) -> None:  # type: ignore[no-untyped-def]
        opened(self, *a, **kw)
        server.kill()

    monkeypatch.setattr(pgstore.PostgresStore, "__init__", open_then_lose_the_server)
    result = runner.invoke(app, args, env={"AUTORUN_ENGINE_URL": server.url})
    _assert_service_failure(result.exit_code, result.stdout, result.stderr)
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: the engine's store postgresql://postgres@127.0.0.1:") and " failed: " in first
    assert "PostgreSQL is running" in result.stderr.splitlines()[1]


def test_postgres_stopped_under_a_running_worker_is_exit_5(server: Server, tmp_path: Path) -> None:
    import psycopg

    env = {**os.environ, "AUTORUN_ENGINE_URL": server.url, "AUTORUN_HOME": str(tmp_path / "home"),
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "autorun_cli", "engine", "work", "--forever", "--poll", "50ms"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:  # the worker is up once its heartbeat is in the store
            with psycopg.connect(server.url, autocommit=True) as conn:
                has = conn.execute("SELECT to_regclass('workers') IS NOT NULL").fetchone()
                if has and has[0] and conn.execute("SELECT COUNT(*) FROM workers").fetchone()[0]:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        server.kill()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    banner, _, err = err.partition("\n")  # the worker says where it works, on stderr
    assert banner.startswith("worker ") and " on postgresql://postgres@127.0.0.1:" in banner
    _assert_service_failure(proc.returncode, out, err)
    assert err.startswith("error: the engine's store postgresql://postgres@127.0.0.1:")


def test_sqlite_store_locked_past_the_busy_timeout_is_a_service_error(tmp_path: Path) -> None:
    from autorun_cli.engine import Engine
    from autorun_cli.engine.sqlite import SQLiteStore

    path = tmp_path / "engine.db"
    engine = Engine(SQLiteStore(path, busy_timeout_ms=100))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction
    try:
        with pytest.raises(ServiceError) as caught:
            engine.trigger("signup", {"email": "a@b.c"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert caught.value.exit_code == EXIT_SERVICE
    assert caught.value.message == f"the engine's store sqlite:///{path} is locked: another process held its write " \
                                   "lock longer than the busy timeout"
    assert "engine work" in (caught.value.hint or "")
    assert engine.trigger("signup", {"email": "a@b.c"}) == []  # the lock gone, the store works again
    engine.close()


def test_sqlite_store_damaged_under_a_command_is_exit_5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from autorun_cli.engine import sqlite as sqlite_store

    path = tmp_path / "home" / "engine.db"
    assert runner.invoke(app, ["list"]).exit_code == 0  # the store exists
    with sqlite3.connect(path) as conn:  # every page in the main file, none in the WAL
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    opened = sqlite_store.SQLiteStore.__init__

    def open_then_damage(self, *a, **kw) -> None:  # type: ignore[no-untyped-def]
        opened(self, *a, **kw)
        with open(path, "r+b") as f:  # every page after the first (the schema): garbage
            f.seek(4096)
            f.write(b"\xa5" * (size - 4096))

    monkeypatch.setattr(sqlite_store.SQLiteStore, "__init__", open_then_damage)
    result = runner.invoke(app, ["list"])
    _assert_service_failure(result.exit_code, result.stdout, result.stderr)
    assert result.stderr.startswith(f"error: the engine's store sqlite:///{path} is damaged: ")
