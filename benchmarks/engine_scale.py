"""Horizontal scaling of the local engine on PostgreSQL, and DBOS 3.4 on the same server.

    python benchmarks/engine_scale.py [--runs 2000] [--workers 1 2 4] [--concurrency 8]
        [--latency-ms 50] [--fsync on|off] [--pg-url URL] [--dbos-runs 1000]
        [--at-once-concurrency 64] [--no-dbos] [--only-dbos]

The run: 3 steps, a wait that times out, an HTTP POST to a loopback sink, an email
(wait_for_event timeout → http_request → send_email_template). The runs are triggered
first (500 per transaction); the figure is runs / (last run finished − first timeout
due), read from the store, so it measures the workers alone.

1. Workers: 1, 2 and 4 processes of ``autorun engine work --forever --concurrency N``
   on one PostgreSQL, and 1 on SQLite, the sink answering in ``--latency-ms`` (50 ms).
   One worker is bounded by the sink's latency (N requests at once), not by the two
   cores, so this measures horizontal scaling (goal: 4 workers ≥ 3× one).
2. The same with one run per transaction (every claim, renewal and result committed
   alone), 1 worker.
3. DBOS 3.4 (``pip install dbos==3.4.0`` into a venv of the benchmark's own, never a
   dependency of autorun) on the same PostgreSQL: the same workflow shape (``recv``
   timing out at once, a step that POSTs to the sink, a step for the email), one
   process, the sink answering at once; autorun one worker the same way, sending up to
   ``--at-once-concurrency`` (64) requests at once: with a sink that answers at once a
   worker is bounded by its CPU and its commits, and more requests per claim mean fewer
   commits per run (goal ≥ 10×).

Commit policy, stated next to every figure: a worker claims up to 2 × concurrency due
timers per transaction, and that transaction also records the answers that came back
since its last claim (results of a drain are committed as they complete); the lease of
each request is checked right before its send by one read per batch (a renewal, written
and committed, only for a lease near its expiry); fsync and synchronous_commit as
``--fsync`` says (the server's defaults when ``--pg-url``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from autorun_cli.engine import Engine, parse_toml  # noqa: E402

DEFINITION = """
id = "scale"
name = "Scale"
trigger = "signup"
identity = {{ type = "email", from = "email" }}

[[steps]]
key = "wait_for_open"
type = "wait_for_event"
event = "email.opened"
match = {{ field = "email" }}
timeout = "{timeout}"
on_timeout = "crm"

[[steps]]
key = "crm"
type = "http_request"
url = "{url}/crm"
body = {{ email = "{{{{ payload.email }}}}" }}

[[steps]]
key = "welcome"
type = "send_email_template"
template = "welcome"
subject = "Welcome"
"""

WORKER = """
import sys
from autorun_cli.engine import Engine
url, concurrency, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
Engine.connect(url, concurrency=concurrency, batch_size=batch).work(forever=True, poll=0.05)
"""


def _sink(port_out: multiprocessing.Queue, latency: float) -> None:  # type: ignore[type-arg]
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if latency:
                time.sleep(latency)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.request_queue_size = 256
    port_out.put(httpd.server_address[1])
    httpd.serve_forever()


class Sink:
    """A loopback HTTP sink in its own process (it must not share the GIL with us)."""

    def __init__(self, latency_ms: float):
        q: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
        self.proc = multiprocessing.Process(target=_sink, args=(q, latency_ms / 1000), daemon=True)
        self.proc.start()
        self.url = f"http://127.0.0.1:{q.get(timeout=10)}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(5)


def _schema_url(base: str) -> tuple[str, str]:
    import psycopg
    from pgserver import schema_url

    schema = "bench_" + os.urandom(4).hex()
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return schema_url(base, schema), schema


def _drop_schema(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def measure(url: str, *, workers: int, concurrency: int, runs: int, sink: Sink, batch: int = 500) -> float:
    """Runs/s of ``workers`` worker processes on the store at ``url``."""
    timeout = 3.0
    engine = Engine.connect(url)
    engine.load(parse_toml(DEFINITION.format(url=sink.url, timeout=f"{int(timeout * 1000)}ms"), "scale"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if batch >= 500:
        cmd = [sys.executable, "-m", "autorun_cli", "engine", "work", "--forever", "--poll", "50ms",
               "--concurrency", str(concurrency), "--engine-url", url]
    else:
        cmd = [sys.executable, "-c", WORKER, url, str(concurrency), str(batch)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(workers)]
    try:
        deadline = time.monotonic() + 60
        while len(engine.store.workers(time.time() - 30)) < workers:
            if time.monotonic() > deadline:
                raise SystemExit("workers did not start: " + procs[0].stderr.read().decode()[-800:] if procs[0].stderr else "")
            time.sleep(0.05)
        for start in range(0, runs, 500):
            with engine.batch():
                for i in range(start, min(runs, start + 500)):
                    engine.trigger("signup", {"email": f"u{i}@example.com"})
        # all timeouts are due within the trigger time; wait for every run to end
        deadline = time.monotonic() + 600
        while engine.count_runs().get("completed", 0) < runs:
            if time.monotonic() > deadline:
                raise SystemExit(f"runs did not finish: {engine.count_runs()}")
            time.sleep(0.05)
        first = engine.list_runs(sort="created_at", limit=1)[0]
        last = engine.list_runs(sort="-finished_at", limit=1)[0]
        from datetime import datetime

        t0 = datetime.fromisoformat(first["created_at"]).timestamp() + timeout
        t1 = datetime.fromisoformat(last["finished_at"]).timestamp()
        return runs / (t1 - t0)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        engine.close()


DBOS_APP = """
import sys, time, urllib.request
from dbos import DBOS, DBOSConfig

url, sink, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
DBOS(config=DBOSConfig(name="autorun_bench", system_database_url=url))

@DBOS.step()
def post(i):
    req = urllib.request.Request(sink + "/crm", data=b"{}", method="POST",
                                 headers={"Idempotency-Key": f"{DBOS.workflow_id}:crm", "Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()

@DBOS.step()
def welcome(i):
    return f"welcome {i}"

@DBOS.workflow()
def scale(i):
    DBOS.recv("email.opened", timeout_seconds=0)  # the wait times out at once
    post(i)
    welcome(i)

DBOS.launch()
start = time.time()
handles = [DBOS.start_workflow(scale, i) for i in range(runs)]
for h in handles:
    h.get_result()
print("RESULT", runs / (time.time() - start), flush=True)
DBOS.destroy()
"""


def dbos_python() -> Path | None:
    """A venv of the benchmark's own with dbos==3.4.0 (created once, in the user cache)."""
    venv = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "autorun-bench" / "dbos-3.4.0"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        done = subprocess.run([str(py), "-m", "pip", "install", "-q", "dbos==3.4.0"], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"dbos could not be installed: {done.stderr.strip()[-300:]}", file=sys.stderr)
            return None
    return py


def measure_dbos(base: str, runs: int, sink: Sink) -> float | None:
    import psycopg

    py = dbos_python()
    if py is None:
        return None
    db = "dbos_" + os.urandom(4).hex()
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db}")
    url = base.rsplit("/", 1)[0] + "/" + db
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(textwrap.dedent(DBOS_APP))
    try:
        done = subprocess.run([str(py), f.name, url, sink.url, str(runs)], capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            print(f"dbos run failed: {done.stderr.strip()[-800:]}", file=sys.stderr)
            return None
        return float(next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("RESULT ")))
    finally:
        os.unlink(f.name)
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {db} WITH (FORCE)")


class _Skip(Exception):
    pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--fsync", choices=["on", "off"], default="on")
    ap.add_argument("--pg-url", help="an existing server (default: a throwaway one, as the tests start)")
    ap.add_argument("--dbos-runs", type=int, default=1000)
    ap.add_argument("--at-once-concurrency", type=int, default=64,
                    help="autorun's --concurrency for the comparison with DBOS (default 64)")
    ap.add_argument("--no-dbos", action="store_true")
    ap.add_argument("--only-dbos", action="store_true", help="only the comparison with DBOS")
    args = ap.parse_args()

    server = None
    base = args.pg_url
    if base is None:
        from pgserver import PgServer

        server = PgServer(durable=args.fsync == "on")
        base = server.start()
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('fsync'), current_setting('synchronous_commit')").fetchone()
    policy = f"fsync={row[0]}, synchronous_commit={row[1]}" if row else ""
    claim = 2 * args.concurrency
    print(f"runs per figure: {args.runs}; sink latency {args.latency_ms:.0f} ms; --concurrency {args.concurrency}; "
          f"PostgreSQL {policy}; load {os.getloadavg()[0]:.1f}")
    results: dict[str, float | None] = {}
    sink = Sink(args.latency_ms)
    try:
        for n in [] if args.only_dbos else args.workers:
            url, schema = _schema_url(base)
            try:
                rate = measure(url, workers=n, concurrency=args.concurrency, runs=args.runs, sink=sink)
            finally:
                _drop_schema(base, schema)
            results[f"postgres_{n}"] = rate
            print(f"PostgreSQL, {n} worker(s): {rate:8.1f} runs/s   (up to {claim} timers claimed per transaction, "
                  f"with the answers since the last claim; {policy}; load {os.getloadavg()[0]:.1f})", flush=True)
        if args.only_dbos:
            raise _Skip
        with tempfile.TemporaryDirectory() as tmp:
            rate = measure(f"sqlite:///{tmp}/engine.db", workers=1, concurrency=args.concurrency, runs=args.runs, sink=sink)
        results["sqlite_1"] = rate
        print(f"SQLite, 1 worker:        {rate:8.1f} runs/s   (up to {claim} timers claimed per transaction; WAL, "
              "synchronous=NORMAL: no fsync per commit)", flush=True)
        url, schema = _schema_url(base)
        try:
            rate = measure(url, workers=1, concurrency=args.concurrency, runs=min(args.runs, 1000), sink=sink, batch=1)
        finally:
            _drop_schema(base, schema)
        results["postgres_1_one_per_tx"] = rate
        print(f"PostgreSQL, 1 worker, one run per transaction: {rate:8.1f} runs/s   (every claim and result "
              f"committed alone, each lease checked alone before its send; {policy}; load {os.getloadavg()[0]:.1f})",
              flush=True)
        if 1 in args.workers and 4 in args.workers:
            ratio = (results["postgres_4"] or 0) / (results["postgres_1"] or 1)
            print(f"scaling: 4 workers / 1 worker = {ratio:.2f}x (goal >= 3x)")
    except _Skip:
        pass
    finally:
        sink.stop()
    if not args.no_dbos:
        fast = Sink(0)
        try:
            url, schema = _schema_url(base)
            try:
                ours = measure(url, workers=1, concurrency=args.at_once_concurrency, runs=args.dbos_runs, sink=fast)
            finally:
                _drop_schema(base, schema)
            theirs = measure_dbos(base, args.dbos_runs, fast)
        finally:
            fast.stop()
        print(f"sink answering at once, {args.dbos_runs} runs, 1 worker process each ({policy}; "
              f"load {os.getloadavg()[0]:.1f}):")
        print(f"  autorun: {ours:8.1f} runs/s   (--concurrency {args.at_once_concurrency}: up to "
              f"{2 * args.at_once_concurrency} timers claimed per transaction, with the answers since the last claim)")
        if theirs:
            print(f"  DBOS 3.4: {theirs:8.1f} runs/s   (its defaults: a checkpoint transaction per step and per "
                  "workflow status change)")
            print(f"  autorun / DBOS = {ours / theirs:.1f}x (goal >= 10x)")
        results["autorun_at_once"], results["dbos_at_once"] = ours, theirs
    print(json.dumps(results))
    if server is not None:
        server.stop()


if __name__ == "__main__":
    main()
