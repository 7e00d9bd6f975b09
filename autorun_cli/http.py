"""The one HTTP layer every API provider uses: transport, retries, errors, pages.

Retries: idempotent requests (GET, HEAD) are retried on 408/425/429/5xx and on
connection failures, at most ``max_retries`` times, with exponential backoff and
full jitter; ``Retry-After`` (seconds or an HTTP date) is honoured up to 60 s.
A POST/PATCH is only repeated when the server cannot have acted on it: the
connection was never made, or it answered 429.

``sleep`` is a module attribute so tests can patch it.
"""

from __future__ import annotations

import json
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http.cookiejar import CookieJar
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit, urlunsplit

import httpx

from autorun_cli import __version__
from autorun_cli.errors import (
    AuthError,
    AutorunError,
    BadResponseError,
    NotAllowedError,
    NotFoundError,
    NotSupportedError,
    ServiceError,
    UsageError,
    redact,
)

sleep: Callable[[float], None] = time.sleep

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_RETRY_AFTER = 60.0
USER_AGENT = f"autorun/{__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class _NoCookies(CookieJar):
    """Keeps no cookies: an API token authenticates each request, and a Set-Cookie
    from one answer must not ride along on the next (parsing it cost time, too)."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


def _tls_context(base_url: str) -> Any:
    """Certificate verification for https; for an http base URL no TLS is ever used
    (links must keep the base URL's scheme), so skip loading the CA bundle (~20 ms)
    and hand httpx a context that trusts nothing: it fails closed if one were."""
    if base_url.startswith("https:"):
        return httpx.create_ssl_context()
    import ssl

    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def excerpt(text: str, secrets: list[str] | None = None, limit: int = 160) -> str:
    """A short, single-line, secret-free quote of a response body."""
    text = " ".join(text.split())
    text = _CTRL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    text = redact(text, secrets)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def default_error_message(body: Any) -> str | None:
    """Pull the API's own message out of the common error envelopes."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail") or err.get("code")
            if isinstance(msg, str) and msg:
                return msg
        if isinstance(err, str) and err:
            return err
        for key in ("message", "detail", "title", "error_description"):
            val = body.get(key)
            if isinstance(val, str) and val:
                return val
            if key == "detail" and isinstance(val, list) and val:
                # FastAPI validation errors: [{"loc": [...], "msg": "..."}]
                parts = []
                for item in val:
                    if isinstance(item, dict):
                        loc = ".".join(str(x) for x in item.get("loc", []) if x != "body")
                        parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
                    else:
                        parts.append(str(item))
                return "; ".join(parts)
    if isinstance(body, str) and body:
        return body
    return None


class ErrorHooks:
    """What a provider may customise about error responses (defaults here)."""

    @staticmethod
    def error_message(body: Any) -> str | None:
        return default_error_message(body)

    @staticmethod
    def classify_error(status: int, message: str) -> AutorunError | None:
        """Return an error to raise instead of the status-based default."""
        return None


@dataclass
class PageSpec:
    """How a provider asks for pages; which style applies is read off each response."""

    size_param: str | None = "limit"
    max_size: int = 100
    page_param: str = "page"
    cursor_param: str = "cursor"
    offset_param: str = "offset"
    first_page: int | None = None  # e.g. 1 to send page=1 on the first request


def extract_items(doc: Any) -> list[Any] | None:
    """The list of records in a list response, or None when the shape is unknown."""
    if isinstance(doc, list):
        # A list nested one level too deep ([[...]]) is accepted (tenant quirk).
        if len(doc) == 1 and isinstance(doc[0], list):
            return doc[0]
        if doc and all(isinstance(x, list) for x in doc):
            return [item for sub in doc for item in sub]
        return doc
    if isinstance(doc, dict):
        for key in ("data", "items", "results", "runs", "sessions", "executions"):
            if key in doc:
                val = doc[key]
                if isinstance(val, dict):
                    inner = extract_items(val)
                    if inner is not None:
                        return inner
                    continue
                if isinstance(val, list):
                    return extract_items(val)
    return None


class HttpClient:
    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        secrets: list[str] | None = None,
        verbose: bool = False,
        # ErrorHooks or anything with its two static methods (a Provider class).
        error_parser: Any = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ):
        if not re.match(r"^https?://", base_url or ""):
            raise UsageError(
                f"base URL {base_url!r} is not an http(s) URL",
                hint="pass e.g. --base-url https://api.example.com",
            )
        self.base_url = base_url.rstrip("/")
        self.secrets = [s for s in (secrets or []) if s]
        self.verbose = verbose
        self.hooks = error_parser or ErrorHooks
        self.max_retries = max_retries
        all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        all_headers.update(headers or {})
        self._client_args: dict[str, Any] = dict(
            base_url=self.base_url,
            headers=all_headers,
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )
        # One httpx client (connection pool) per thread that sends: `show ID…` fetches
        # from a thread pool, and one shared pool re-scans every connection under one
        # lock per request, which cost ~40% more CPU at 32 workers. The TLS context
        # (the CA bundle, ~20 ms to load) is built once and shared.
        self._tls: Any = None
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    @property
    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            with self._lock:
                if self._tls is None:
                    self._tls = _tls_context(self.base_url)
                client = httpx.Client(**self._client_args, verify=self._tls, cookies=_NoCookies())
                self._clients.append(client)
            self._local.client = client
        return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
            self._local = threading.local()
        for client in clients:
            client.close()

    # -- logging -----------------------------------------------------------
    def _log(self, text: str) -> None:
        if self.verbose:
            sys.stderr.write(redact(text, self.secrets) + "\n")
            sys.stderr.flush()

    # -- core --------------------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send with retries; return a 2xx/3xx response or raise an AutorunError."""
        method = method.upper()
        idempotent = method in IDEMPOTENT
        attempt = 0
        while True:
            started = time.monotonic()
            self._log(f"> {method} {self._display_url(url, params)}")
            try:
                resp = self._client.request(method, url, params=params, json=json_body, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Never connected: the server cannot have acted, any method may retry.
                err: AutorunError = self._connection_error(exc)
                if attempt < self.max_retries:
                    self._backoff(attempt, None, f"{type(exc).__name__}")
                    attempt += 1
                    continue
                raise err from None
            except httpx.TransportError as exc:
                err = self._connection_error(exc)
                if idempotent and attempt < self.max_retries:
                    self._backoff(attempt, None, f"{type(exc).__name__}")
                    attempt += 1
                    continue
                raise err from None
            elapsed = (time.monotonic() - started) * 1000
            self._log(f"< {resp.status_code} {resp.reason_phrase} ({elapsed:.0f} ms)")
            if resp.status_code < 400:
                return resp
            retryable = resp.status_code in RETRY_STATUSES and (idempotent or resp.status_code == 429)
            if retryable and resp.status_code != 429:
                # A provider quirk may say this answer is final (tenant: a 500 that
                # means "not found"); retrying it only delays the same answer.
                err = self.error_for(resp, retried=attempt)
                if not isinstance(err, ServiceError):
                    raise err
            if retryable and attempt < self.max_retries:
                wait = parse_retry_after(resp.headers.get("Retry-After"))
                if wait is None or wait <= MAX_RETRY_AFTER:
                    self._backoff(attempt, wait, f"HTTP {resp.status_code}")
                    attempt += 1
                    continue
            raise self.error_for(resp, retried=attempt)

    def _backoff(self, attempt: int, retry_after: float | None, why: str) -> None:
        if retry_after is not None:
            delay = min(retry_after, MAX_RETRY_AFTER)
        else:
            # Exponential backoff with full jitter: 0.5 s, 1 s, 2 s caps.
            delay = random.uniform(0, min(8.0, 0.5 * (2**attempt)))
        self._log(f"  retrying after {why} in {delay:.2f} s (retry {attempt + 1}/{self.max_retries})")
        sleep(delay)

    def _display_url(self, url: str, params: dict[str, Any] | None) -> str:
        full = url if url.startswith("http") else self.base_url + url
        if params:
            full += "?" + "&".join(f"{k}={v}" for k, v in params.items() if v is not None)
        return full

    def _connection_error(self, exc: Exception) -> ServiceError:
        host = urlsplit(self.base_url).netloc
        kind = type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            msg = f"timed out talking to {host} ({kind})"
        else:
            msg = f"could not reach {host}: {excerpt(str(exc) or kind, self.secrets)}"
        return ServiceError(
            msg,
            hint="check the base URL (--base-url / AUTORUN_BASE_URL) and your network, then try again",
            code="connection",
        )

    def error_for(self, resp: httpx.Response, retried: int = 0) -> AutorunError:
        """Map an error response onto the exception table (contract exit codes)."""
        status = resp.status_code
        body: Any = None
        text = resp.text
        try:
            body = resp.json()
        except ValueError:
            body = None
        message = self.hooks.error_message(body) if body is not None else None
        if message is None:
            if text.strip():
                kind = "an HTML page" if "html" in resp.headers.get("content-type", "").lower() or text.lstrip().startswith("<") else "a non-JSON body"
                message = f"HTTP {status} {resp.reason_phrase} with {kind}: {excerpt(text, self.secrets, 100)}"
            else:
                message = f"HTTP {status} {resp.reason_phrase}"
        else:
            message = excerpt(message, self.secrets, 300)
        special = self.hooks.classify_error(status, message)
        if special is not None:
            return special
        after = f" (after {retried} retries)" if retried else ""
        if status == 401:
            return AuthError(
                f"authentication refused: {message}",
                hint="check the token: AUTORUN_TOKEN, or token/token_env in the profile (autorun config show)",
            )
        if status == 403:
            return NotAllowedError(
                f"permission refused: {message}",
                hint="the token is valid but lacks permission for this; ask an admin for access",
            )
        if status == 404:
            return NotFoundError(message, hint="check the ID and the provider/profile; `autorun list` shows what exists")
        if status in (405, 501):
            return NotSupportedError(message, hint="the API does not offer this operation here")
        if status == 409:
            return NotAllowedError(f"the API refused: {message}", hint="check the run's status with `autorun show ID`")
        if status == 429:
            wait = parse_retry_after(resp.headers.get("Retry-After"))
            when = f"; it asks to wait {wait:.0f} s" if wait is not None else ""
            return ServiceError(
                f"rate limited by the API{after}: {message}",
                hint=f"slow down and try again later{when}",
                code="rate_limited",
            )
        if status >= 500 or status in RETRY_STATUSES:
            return ServiceError(
                f"the service failed{after}: {message}",
                hint="try again later; add -v to see each request",
            )
        if status in (400, 422):
            return UsageError(f"the API rejected the request: {message}", hint="check the IDs and filters you passed")
        return UsageError(f"HTTP {status}: {message}")

    # -- JSON helpers ------------------------------------------------------
    def decode(self, resp: httpx.Response) -> Any:
        try:
            return resp.json()
        except ValueError:
            ctype = resp.headers.get("content-type", "")
            kind = "an HTML page" if "html" in ctype.lower() or resp.text.lstrip().startswith("<") else "malformed JSON"
            raise BadResponseError(
                f"the API answered {kind} where JSON was expected: {excerpt(resp.text, self.secrets) or '(empty body)'}",
                hint="check the base URL points at the API root (not a web page) and the provider is right",
            ) from None

    def get_json(self, url: str, params: dict[str, Any] | None = None) -> Any:
        return self.decode(self.request("GET", url, params=params))

    def send_json(
        self, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        resp = self.request(method, url, json_body=body, headers=headers)
        if not resp.content.strip():
            return None
        return self.decode(resp)

    def resolve(self, href: str) -> str:
        """An absolute URL for a link, refusing one that leaves the API's origin.

        The token is sent with every request, so a link must stay on the base URL's
        scheme and host.
        """
        target = urljoin(self.base_url + "/", href)
        if urlsplit(target)[:2] != urlsplit(self.base_url)[:2]:
            raise BadResponseError(
                f"the API returned a link to another host: {excerpt(target, self.secrets)}",
                hint="autorun only follows links on the base URL's host; set the path in the profile instead",
            )
        return target

    # -- pagination --------------------------------------------------------
    def paginate(
        self,
        path: str,
        params: dict[str, Any] | None,
        spec: PageSpec,
        *,
        want: int | None = None,
    ) -> Iterator[Any]:
        """Yield records page by page, following whatever style the server returns.

        Styles: Laravel (``links.next`` / ``meta.current_page``+``last_page``), cursor
        (``next_cursor`` / ``has_more``), page (``pagination.hasNext`` /
        ``totalPages``), offset (``total``). A response with none is one page.
        Pages are fetched only as the caller consumes records.
        """
        params = {k: v for k, v in (params or {}).items() if v is not None}
        if spec.size_param:
            params[spec.size_param] = min(want, spec.max_size) if want else spec.max_size
        if spec.first_page is not None:
            params.setdefault(spec.page_param, spec.first_page)
        url: str = path
        seen: set[str] = set()
        offset = 0
        while True:
            doc = self.get_json(url, params)
            items = extract_items(doc)
            if items is None:
                raise BadResponseError(
                    f"the list response has no list of runs: {excerpt(json.dumps(doc)[:300], self.secrets)}",
                    hint="check the provider and list_path of the profile",
                )
            yield from items
            offset += len(items)
            if not items:
                return
            nxt = self._next_page(doc, path, params, spec, offset)
            if nxt is None:
                return
            url, params = nxt
            key = url + "?" + json.dumps(params, sort_keys=True, default=str)
            if key in seen:  # a server that repeats itself must not loop us forever
                return
            seen.add(key)

    @staticmethod
    def _follow_link(target: str, params: dict[str, Any], spec: PageSpec) -> tuple[str, dict[str, Any]]:
        """Split a next link into URL and params, carrying over the request's own params.

        httpx replaces (not merges) a URL's query with ``params``, so the link's query
        travels as params. Laravel's default paginator links hold only ``page``: the
        filters, sort and page size the link lacks are sent again (the link wins).
        """
        parts = urlsplit(target)
        carried = {
            k: v
            for k, v in params.items()
            if k not in (spec.page_param, spec.cursor_param, spec.offset_param)
        }
        linked: dict[str, Any] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in linked:
                prev = linked[key]
                linked[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
            else:
                linked[key] = value
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), {**carried, **linked}

    def _next_page(
        self, doc: Any, path: str, params: dict[str, Any], spec: PageSpec, offset: int
    ) -> tuple[str, dict[str, Any]] | None:
        if not isinstance(doc, dict):
            return None
        links, meta = doc.get("links"), doc.get("meta")
        # Laravel
        if isinstance(links, dict) and "next" in links:
            nxt = links.get("next")
            if isinstance(nxt, str) and nxt:
                return self._follow_link(self.resolve(nxt), params, spec)
            return None
        if isinstance(meta, dict) and "current_page" in meta and "last_page" in meta:
            try:
                cur, last = int(meta["current_page"]), int(meta["last_page"])
            except (TypeError, ValueError):
                return None
            return (path, {**params, spec.page_param: cur + 1}) if cur < last else None
        # Cursor
        for holder in (doc, meta if isinstance(meta, dict) else {}, doc.get("pagination") or {}):
            if isinstance(holder, dict) and ("next_cursor" in holder or "has_more" in holder):
                cursor = holder.get("next_cursor")
                if cursor and holder.get("has_more", True) is not False:
                    return path, {**params, spec.cursor_param: cursor}
                return None
        # Page
        pag = doc.get("pagination")
        if isinstance(pag, dict):
            page = pag.get("page") or pag.get("currentPage") or pag.get("current_page") or params.get(spec.page_param) or 1
            try:
                page = int(page)
            except (TypeError, ValueError):
                return None
            has_next = pag.get("hasNext", pag.get("has_next"))
            total_pages = pag.get("totalPages", pag.get("total_pages"))
            if has_next is None and isinstance(total_pages, int):
                has_next = page < total_pages
            return (path, {**params, spec.page_param: page + 1}) if has_next else None
        # Offset
        total = doc.get("total")
        if isinstance(total, int) and not isinstance(total, bool):
            if offset < total:
                return path, {**params, spec.offset_param: offset}
            return None
        return None
