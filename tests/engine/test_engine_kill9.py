"""Real worker processes, real ``kill -9`` (issue 11): every run ends, every HTTP step
reaches the sink, and a key reaches it twice only where the killed worker had that
very send in flight.

``autorun engine work --forever`` workers (real CLI processes) share one store; the
test triggers runs whose HTTP step posts to a loopback sink that counts requests per
Idempotency-Key (every request counted: duplicates are never folded into a set). A
killer, at moments spread over the whole run, freezes a random worker (SIGSTOP), reads the leases it holds and which of
them the sink has already received (the sends it had in flight), then SIGKILLs it
and starts a new worker. At the end each key's repeats must be covered by the kills
that had that key in flight. Without kills no key may repeat at all.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from autorun_cli.engine import Engine, parse_toml
from autorun_cli.engine.base import HOST

DEFINITION = """
id = "kill9"
name = "Kill -9"
trigger = "signup"
identity = {{ type = "email", from = "email" }}

[[steps]]
key = "pause"
type = "delay"
duration = "10ms"

[[steps]]
key = "crm"
type = "http_request"
url = "{url}/crm"
body = {{ email = "{{{{ payload.email }}}}" }}
retry = {{ attempts = 5, backoff = "100ms" }}

[[steps]]
key = "welcome"
type = "send_email_template"
template = "welcome"
subject = "Welcome"
"""


class Sink:
    """Counts every request per Idempotency-Key; answers after 20-60 ms."""

    def __init__(self) -> None:
        self.sends: Counter[str] = Counter()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    outer.sends[self.headers.get("Idempotency-Key") or ""] += 1
                time.sleep(random.uniform(0.02, 0.06))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a killed worker's connection resets mid-answer: expected here

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def snapshot(self) -> Counter[str]:
        with self.lock:
            return Counter(self.sends)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _worker(url: str, home: Path) -> subprocess.Popen:
    env = {**os.environ, "AUTORUN_ENGINE_URL": url, "AUTORUN_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "autorun_cli", "engine", "work", "--forever", "--poll", "100ms", "--concurrency", "8"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _chaos(url: str, home: Path, workers: int, runs: int, kills: int) -> None:
    sink = Sink()
    engine = Engine.connect(url)
    engine.load(parse_toml(DEFINITION.format(url=sink.url), "kill9"))
    with engine.batch():  # one commit: the runs wait 10 ms, then the workers take them
        ids = [engine.trigger("signup", {"email": f"u{i}@example.com"}, event_id=f"evt_{i}")[0] for i in range(runs)]
    procs = [_worker(url, home) for _ in range(workers)]
    rng = random.Random(1234)
    in_flight: list[set[str]] = []  # per kill: the keys the killed worker had sent, unanswered or unrecorded
    try:
        while len(in_flight) < kills:
            # The kills are spread over the whole run (the k-th once the sink has seen
            # k/(kills+1) of the keys), so they land while workers have sends in
            # flight, not before the first claim commits.
            target = (len(in_flight) + 1) * runs // (kills + 1)
            progress_by = time.monotonic() + 60
            while len(sink.snapshot()) < target and time.monotonic() < progress_by:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.05))
            i = rng.randrange(workers)
            victim = procs[i]
            victim.send_signal(signal.SIGSTOP)  # frozen: its leases and sends stop changing
            prefix = f"{HOST}:{victim.pid}:"
            held = {lease["run_id"] + ":crm" for lease in engine.store.leases() if lease["owner"].startswith(prefix)}
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            time.sleep(0.1)  # bytes the victim wrote to its sockets still reach the sink
            sent = sink.snapshot()
            # Its sends in flight: requests it held a lease for that reached the sink.
            in_flight.append({key for key in held if sent[key] > 0})
            procs[i] = _worker(url, home)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            counts = engine.count_runs()
            if set(counts) == {"completed"}:
                break
            time.sleep(0.2)
    finally:
        # A worker restarted late may still be starting: SIGTERM it once it has said it
        # is up (its heartbeat: its drain handler is in place), so exit 0 means drained.
        up_by = time.monotonic() + 30
        while time.monotonic() < up_by and any(
            p.poll() is None and p.pid not in {w["pid"] for w in engine.store.workers(0)} for p in procs
        ):
            time.sleep(0.05)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                _, err = p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                err = b""
            assert p.returncode in (0, -signal.SIGKILL), err.decode()[-2000:]
        sink.stop()

    runs_by_status = engine.count_runs()
    assert runs_by_status == {"completed": runs}, runs_by_status
    sends = sink.snapshot()
    keys = {f"{run_id}:crm" for run_id in ids}
    assert set(sends) == keys  # every key reached the sink, and nothing else did
    repeated = {key: n - 1 for key, n in sends.items() if n > 1}
    for key, extra in repeated.items():
        covering = sum(1 for flight in in_flight if key in flight)
        assert extra <= covering, (key, extra, covering)
    total_in_flight = sum(len(f) for f in in_flight)
    assert sum(repeated.values()) <= total_in_flight
    assert len(in_flight) == kills
    if kills:  # the kills hit workers in the middle of their sends, or this proves nothing
        assert sum(1 for flight in in_flight if flight) >= kills // 4, [len(f) for f in in_flight]
    for run_id in ids[:: max(1, runs // 50)]:  # each run sent its welcome once
        run = engine.get_run(run_id)
        assert [m["step_key"] for m in run["messages"]] == ["welcome"]
        assert [s["key"] for s in run["steps"] if s["status"] == "completed"] == ["pause", "crm", "welcome"]
    assert engine.store.leases() == [] and engine.store.count_timers() == 0
    engine.close()


@pytest.mark.parametrize("kills", [20, 0], ids=["kill9", "no-kills"])
def test_four_workers_on_postgres_survive_kill9(pg_url: str, tmp_path: Path, kills: int) -> None:
    _chaos(pg_url, tmp_path, workers=4, runs=2000 if kills else 300, kills=kills)


@pytest.mark.parametrize("kills", [20, 0], ids=["kill9", "no-kills"])
def test_two_workers_on_sqlite_survive_kill9(tmp_path: Path, kills: int) -> None:
    _chaos(f"sqlite:///{tmp_path / 'engine.db'}", tmp_path, workers=2, runs=2000 if kills else 300, kills=kills)
