"""HttpClient: what providers call. It only ties the parts together — the transport
sends, the retry policy decides about failures, the status table names errors,
paging walks pages — and adds the JSON helpers, the -v log and link checking."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from autorun_cli import jsondoc
from autorun_cli.errors import AutorunError, BadResponseError, UsageError
from autorun_cli.http import errors, paging
from autorun_cli.http.errors import ErrorHooks
from autorun_cli.http.retry import MAX_RETRIES, RetryPolicy
from autorun_cli.http.transport import DEFAULT_TIMEOUT, Transport
from autorun_cli.textsafe import clean_line, excerpt, redact


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
        deadline: float | None = None,
        max_retries: int = MAX_RETRIES,
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
        self.transport = Transport(self.base_url, headers, timeout=timeout, deadline=deadline, transport=transport)
        self.retry = RetryPolicy(max_retries=max_retries, log=self.log)
        # List pages read so far (paginate counts them; progress bars show them).
        self.pages = 0

    # Kept for tests and callers that reach the pools directly.
    @property
    def _client(self) -> httpx.Client:
        return self.transport.client

    @property
    def _clients(self) -> list[httpx.Client]:
        return self.transport._clients

    def close(self) -> None:
        self.transport.close()

    # -- logging -----------------------------------------------------------
    def log(self, text: str) -> None:
        """One line of the -v request log on stderr. URLs, reason phrases and links
        come from the server: the line passes the output sanitiser, secrets masked."""
        if self.verbose:
            sys.stderr.write(clean_line(redact(text, self.secrets)) + "\n")
            sys.stderr.flush()

    def _display_url(self, url: str, params: dict[str, Any] | None) -> str:
        full = url if url.startswith("http") else self.base_url + url
        if params:
            full += "?" + "&".join(f"{k}={v}" for k, v in params.items() if v is not None)
        return full

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
        """Send with retries; return a 2xx response or raise an AutorunError."""
        method = method.upper()
        attempts = self.retry.start(method)
        while True:
            self.retry.before_send()
            started = time.monotonic()
            self.log(f"> {method} {self._display_url(url, params)}")
            try:
                resp = self.transport.send(method, url, params=params, json_body=json_body, headers=headers)
            except httpx.TransportError as exc:
                err: AutorunError = errors.connection_error(exc, self.base_url, self.secrets)
                if self.retry.retry_exception(attempts, exc):
                    continue
                raise err from None
            elapsed = (time.monotonic() - started) * 1000
            self.log(f"< {resp.status_code} {resp.reason_phrase} ({elapsed:.0f} ms)")
            if resp.status_code < 300:
                return resp
            if resp.status_code < 400:
                raise errors.redirect_error(resp, method, self.secrets)
            err = errors.error_for(resp, self.hooks, self.secrets, retried=attempts.retried)
            if self.retry.retry_response(attempts, resp, err):
                continue
            raise err

    def error_for(self, resp: httpx.Response, retried: int = 0) -> AutorunError:
        """Map an error response onto the exception table (contract exit codes)."""
        return errors.error_for(resp, self.hooks, self.secrets, retried)

    # -- JSON helpers ------------------------------------------------------
    def decode(self, resp: httpx.Response) -> Any:
        try:
            return jsondoc.loads(resp.content)
        except jsondoc.DocumentError as exc:
            raise BadResponseError(
                f"the API answered a document autorun will not read: {exc}",
                hint="this is not a run document the API documents; check the base URL and the provider",
            ) from None
        except ValueError:
            raise errors.decode_error(resp, self.secrets) from None

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
        spec: paging.PageSpec,
        *,
        want: int | None = None,
    ) -> Iterator[Any]:
        """Yield records page by page (see :mod:`autorun_cli.http.paging`)."""
        return paging.paginate(self, path, params, spec, want=want)
