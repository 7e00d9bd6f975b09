"""Helpers shared by the engine tests (and the crash scenario subprocess)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from autorun_cli.engine import Engine, SQLiteStore, VirtualClock, parse_toml
from autorun_cli.engine.memstore import MemoryStore

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z, the virtual start of most scenarios

RECEIPT = """
id = "order_receipt"
name = "Order receipt"
trigger = "order.completed"
identity = { type = "email", from = "customer.email" }

[[steps]]
key = "send_receipt"
type = "send_email_template"
template = "receipt"
subject = "Receipt {{ payload.order_id }}"

[[steps]]
key = "wait_for_open"
type = "wait_for_event"
event = "email.opened"
match = { field = "email" }
timeout = "30m"
on_received = "send_push"
on_timeout = "send_sms"

[[steps]]
key = "send_push"
type = "send_push_template"
template = "follow_up"
title = "Need anything else?"
next = "end"

[[steps]]
key = "send_sms"
type = "send_sms"
to = "{{ payload.customer.phone }}"
text = "You have a receipt waiting"
"""


# "sqlite": every engine_at() opens the SQLite file; "memory": engines given the same
# path share one MemoryStore; "postgres": every engine_at() connects to PG_URLS[path]
# (a schema of its own per path). test_engine_semantics runs under all three.
STORE_KIND = "sqlite"
_MEMORY_STORES: dict[str, MemoryStore] = {}
PG_URLS: dict[str, str] = {}
PG_SCHEMA_FACTORY = None  # set by the test fixture: () -> a fresh schema URL


def engine_at(db: Path | str, t: float = T0, **kw) -> Engine:
    """An engine on ``db`` (see STORE_KIND), on a virtual clock at ``t``."""
    if STORE_KIND == "memory":
        store = _MEMORY_STORES.setdefault(str(db), MemoryStore())
        return Engine(store, VirtualClock(t), **kw)
    if STORE_KIND == "postgres":
        from autorun_cli.engine.pgstore import PostgresStore

        if str(db) not in PG_URLS:
            assert PG_SCHEMA_FACTORY is not None
            PG_URLS[str(db)] = PG_SCHEMA_FACTORY()
        return Engine(PostgresStore(PG_URLS[str(db)]), VirtualClock(t), **kw)
    return Engine(SQLiteStore(db), VirtualClock(t), **kw)


def receipt_engine(db: Path | str, t: float = T0, **kw) -> Engine:
    e = engine_at(db, t, **kw)
    e.load(parse_toml(RECEIPT, "receipt"))
    return e


def order(i: int | str) -> dict:
    return {"order_id": f"ord_{i}", "customer": {"email": f"c{i}@example.com", "phone": f"+1555{i}"}}


def messages_by_step(engine: Engine, run_id: str) -> list[str]:
    return [m["step_key"] for m in engine.outbox(run_id)]


class HookServer:
    """A webhook receiver on 127.0.0.1 that honours Idempotency-Key like a real API:
    the effect of a key is applied once, a replay with the same key is answered
    again without applying it. ``fail_first`` answers the first N requests of each
    key with 503."""

    def __init__(self, fail_first: int = 0, delay: float = 0.0):
        self.fail_first = fail_first
        self.delay = delay  # seconds each answer takes (a slow API)
        self.requests: list[dict] = []  # every request, in order
        self.applied: dict[str, int] = {}  # key -> times its effect was applied
        self._seen: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests it held at once
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                key = self.headers.get("Idempotency-Key")
                with outer._lock:  # counted on arrival: a request in flight is a sent one
                    outer.requests.append({"path": self.path, "key": key, "body": json.loads(body or b"null")})
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                if outer.delay:
                    time.sleep(outer.delay)
                with outer._lock:
                    outer.in_flight -= 1
                    n = outer._seen.get(key, 0) + 1
                    outer._seen[key] = n
                    if n <= outer.fail_first:
                        code = 503
                    else:
                        code = 200
                        if key not in outer.applied:
                            outer.applied[key] = 1
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}' if code == 200 else b'{"error": "busy"}')

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def sends_per_key(self) -> Counter[str | None]:
        """How many requests reached the sink for each Idempotency-Key (duplicates counted)."""
        with self._lock:
            return Counter(r["key"] for r in self.requests)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
