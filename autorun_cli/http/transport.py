"""Transport: one httpx client per sending thread, and an overall deadline on
every request.

httpx's timeouts bound each network operation (connect 5 s, each read 30 s), so a
server that trickles one byte every few seconds never trips them. Here every socket
operation of a request — connect, TLS handshake, each write and each read of the
headers and the body — gets at most what is left of the request's deadline
(``DEADLINE``, 60 s from sending to the last byte of the answer): the connection
pool's network backend clamps each timeout. Running out raises
:class:`DeadlineExceeded`, which is never retried.
"""

from __future__ import annotations

import ssl
import threading
import time
from http.cookiejar import CookieJar
from typing import Any

import httpcore
import httpx

from autorun_cli import __version__

USER_AGENT = f"autorun/{__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# Seconds one attempt of a request may take in all; read when each request starts.
DEADLINE = 60.0


class DeadlineExceeded(httpx.TimeoutException):
    """The request's overall deadline passed before its answer was complete."""


class _NoCookies(CookieJar):
    """Keeps no cookies: an API token authenticates each request, and a Set-Cookie
    from one answer must not ride along on the next (parsing it cost time, too)."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


def _tls_context(base_url: str) -> ssl.SSLContext:
    """Certificate verification for https; for an http base URL no TLS is ever used
    (links must keep the base URL's scheme), so skip loading the CA bundle (~20 ms)
    and hand httpx a context that trusts nothing: it fails closed if one were."""
    if base_url.startswith("https:"):
        return httpx.create_ssl_context()
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


# The deadline of the request this thread is sending (each thread has its own
# client and sends one request at a time): ``end`` in time.monotonic(), and whether
# the last socket operation's timeout was cut short by it.
_current = threading.local()


def _budget(timeout: float | None, on_expiry: type[Exception]) -> float | None:
    end: float | None = getattr(_current, "end", None)
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        _current.cut = True
        raise on_expiry("the request's deadline passed")
    cut = timeout is None or left < timeout
    _current.cut = cut
    return left if cut else timeout


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _budget(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _budget(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(ssl_context, server_hostname, _budget(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        budget = _budget(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_tcp(host, port, budget, local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> httpcore.NetworkStream:
        budget = _budget(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, budget, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport (request mapping, exception mapping) on a connection pool
    whose sockets keep the deadline. httpx has no argument for a network backend,
    so the pool it built is replaced by an equal one that has ours."""

    def __init__(self, ssl_context: ssl.SSLContext):
        super().__init__(verify=ssl_context)
        limits = httpx.Limits()  # httpx's defaults, as HTTPTransport applies them
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_DeadlineBackend(),
        )


class Transport:
    """Sends one request attempt; owns the connection pools.

    One httpx client (pool) per thread that sends: ``show ID…`` fetches from a
    thread pool, and one shared pool re-scans every connection under one lock per
    request, which cost ~40% more CPU at 32 workers. The TLS context (the CA bundle,
    ~20 ms to load) is built once and shared.
    """

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str] | None = None,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        deadline: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = base_url
        self._deadline = deadline
        all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        all_headers.update(headers or {})
        self._client_args: dict[str, Any] = dict(
            base_url=base_url,
            headers=all_headers,
            timeout=timeout,
            follow_redirects=False,
        )
        self._transport = transport  # tests may hand one in (httpx.MockTransport)
        self._tls: ssl.SSLContext | None = None
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    @property
    def deadline(self) -> float:
        return DEADLINE if self._deadline is None else self._deadline

    @property
    def client(self) -> httpx.Client:
        """This thread's httpx client."""
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            with self._lock:
                if self._tls is None:
                    self._tls = _tls_context(self.base_url)
                transport = self._transport or _DeadlineTransport(self._tls)
                client = httpx.Client(**self._client_args, transport=transport, verify=self._tls, cookies=_NoCookies())
                self._clients.append(client)
            self._local.client = client
        return client

    def send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One attempt, answer read in full, within the deadline."""
        client = self.client
        deadline = self.deadline
        _current.end, _current.cut = time.monotonic() + deadline, False
        try:
            return client.request(method, url, params=params, json=json_body, headers=headers)
        except httpx.TimeoutException as exc:
            if getattr(_current, "cut", False):
                raise DeadlineExceeded(f"no complete answer within {deadline:g} s") from exc
            raise
        finally:
            _current.end = None

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
            self._local = threading.local()
        for client in clients:
            client.close()
