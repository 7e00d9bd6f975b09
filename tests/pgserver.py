"""A throwaway PostgreSQL server for the tests: its own temp folder, its own free port
on 127.0.0.1, so concurrent test runs on one machine never collide.

PostgreSQL refuses to run as root: as root the cluster is created and started as
the ``postgres`` user (``runuser``). ``AUTORUN_TEST_PG_URL`` points the tests at a
server that is already running instead (its database must allow CREATE SCHEMA).

Fast rather than durable for the tests: fsync, synchronous_commit and
full_page_writes are off (``PgServer(durable=True)`` keeps PostgreSQL's defaults, as
benchmarks/engine_scale.py does).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time


class PgUnavailable(RuntimeError):
    pass


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise PgUnavailable(f"{name} not found (install Debian's postgresql package)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        self.dir = ""
        self.port = 0
        self.url = ""
        self._as: list[str] = []

    def _run(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self._as + args, capture_output=True, text=True, timeout=timeout)

    def start(self) -> str:
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        self.dir = tempfile.mkdtemp(prefix="autorun-pg-")
        if os.geteuid() == 0:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise PgUnavailable("running as root and there is no postgres user to run the server as") from None
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        data = os.path.join(self.dir, "data")
        done = self._run([initdb, "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
        if done.returncode != 0:
            raise PgUnavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
        for _ in range(5):  # a port taken between choosing and binding: choose again
            self.port = _free_port()
            opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=300 "
                    "-c shared_buffers=64MB")
            if not self.durable:
                opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            done = self._run([pg_ctl, "-D", data, "-l", os.path.join(self.dir, "log"), "-o", opts, "-w", "-t", "60",
                              "start"], timeout=90)
            if done.returncode == 0:
                self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
                return self.url
            time.sleep(0.2)
        log = ""
        try:
            with open(os.path.join(self.dir, "log")) as f:
                log = f.read()[-800:]
        except OSError:
            pass
        raise PgUnavailable(f"pg_ctl start failed: {done.stderr.strip()[-300:]} {log}")

    def stop(self) -> None:
        if self.dir:
            data = os.path.join(self.dir, "data")
            if os.path.isdir(data):
                self._run([_binary("pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"])
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = ""


def schema_url(base: str, schema: str) -> str:
    """``base`` with every table in ``schema`` (libpq ``options=-csearch_path=…``)."""
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"
