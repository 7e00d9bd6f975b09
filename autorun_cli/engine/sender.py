"""The engine's HTTP client: keep-alive HTTP/1.1 connections over the standard
library's ``http.client``, one per delivery thread and origin.

Why not httpx (which the CLI's API clients use): a worker sends every request of
its runs, and httpx's layers (httpcore's pool, its locks and traces, h11's event
machine) cost a delivery thread several times the CPU of the request itself; with
the sink answering at once that was half of a worker's CPU. A request here is one
``http.client`` round trip on a connection the thread already holds, so the
delivery pool's size bounds the connections (as httpx's ``max_connections`` did).
No redirects are followed (a 3xx is a failed attempt, as before).
"""

from __future__ import annotations

import http.client
import json
import select
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

from autorun_cli import __version__

USER_AGENT = f"autorun/{__version__}"


def _readable(sock: Any) -> bool:
    if hasattr(select, "poll"):  # select() fails past FD_SETSIZE descriptors
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


class Sender:
    """Thread-safe: each thread gets its own connections."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[http.client.HTTPConnection] = []
        self._tls: ssl.SSLContext | None = None

    def _conn(self, scheme: str, host: str, port: int | None, timeout: float) -> http.client.HTTPConnection:
        conns: dict[tuple[str, str, int | None], http.client.HTTPConnection] | None = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        key = (scheme, host, port)
        conn = conns.get(key)
        if conn is not None and conn.sock is not None:
            # Readable while idle means closed (or garbage) from the other side: a
            # request must not be written into a connection the server dropped.
            if _readable(conn.sock):
                conn.close()
            else:
                conn.sock.settimeout(timeout)
                return conn
        if scheme == "https":
            with self._lock:
                if self._tls is None:
                    self._tls = ssl.create_default_context()
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=self._tls)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conns[key] = conn
        with self._lock:
            self._open.append(conn)
        return conn

    def request(self, method: str, url: str, headers: dict[str, str], body: Any, timeout: float) -> tuple[int, str]:
        """(status, body text). Raises OSError, http.client.HTTPException or
        ValueError when the request could not be made or answered."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        conn = self._conn(parts.scheme, parts.hostname, parts.port, timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        send = {"User-Agent": USER_AGENT, "Accept": "*/*"}
        payload = None
        if body is not None:
            payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
            send["Content-Type"] = "application/json"
        lower = {k.lower() for k in headers}
        send = {k: v for k, v in send.items() if k.lower() not in lower}
        send.update(headers)
        try:
            conn.request(method, target, body=payload, headers=send)
            resp = conn.getresponse()
            data = resp.read()
        except BaseException:
            conn.close()  # half a request or response: never reused
            raise
        if resp.will_close:
            conn.close()
        charset = resp.headers.get_content_charset() or "utf-8"
        try:
            text = data.decode(charset, errors="replace")
        except LookupError:
            text = data.decode("utf-8", errors="replace")
        return resp.status, text

    def close(self) -> None:
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            conn.close()
