"""A small hostile HTTP server on 127.0.0.1 for adversarial tests.

Each test hands it a ``route(request) -> Answer`` function and makes it misbehave
in ways the vendor test server (``apiserver.py``) never does: redirects on any
method, a reason phrase holding terminal escapes, answers trickled one byte at a
time, pages that never end, text that echoes the token back.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any

    def arg(self, name: str, default: str | None = None) -> str | None:
        vals = self.query.get(name)
        return vals[-1] if vals else default


@dataclass
class Answer:
    status: int = 200
    body: Any = None  # JSON-able, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    reason: str | None = None  # the status line's reason phrase, sent byte for byte
    trickle: float | None = None  # seconds between single bytes of the whole answer
    trickle_body_only: bool = False  # headers at once, then the body byte by byte


Route = Callable[[Seen], Answer]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def _handle(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        seen = Seen(self.command, split.path, parse_qs(split.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()}, body)
        owner = self.server.owner
        with owner.lock:
            owner.requests.append(seen)
        answer = owner.route(seen)
        data = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
        reason = answer.reason if answer.reason is not None else self.responses.get(answer.status, ("",))[0]
        head = [f"HTTP/1.1 {answer.status} {reason}"]
        headers = {"Content-Type": "application/json", "Content-Length": str(len(data)), **answer.headers}
        head += [f"{k}: {v}" for k, v in headers.items()]
        blob_head = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        try:
            if answer.trickle is None:
                self.wfile.write(blob_head + data)
            else:
                if answer.trickle_body_only:
                    self.wfile.write(blob_head)
                    rest = data
                else:
                    rest = blob_head + data
                for i in range(len(rest)):
                    self.wfile.write(rest[i:i + 1])
                    self.wfile.flush()
                    time.sleep(answer.trickle)
            self.wfile.flush()
        except OSError:  # the client gave up: that is the point of a trickle
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: HostileServer


class HostileServer:
    def __init__(self, route: Route):
        self.route = route
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
