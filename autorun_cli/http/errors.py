"""Status → error: every HTTP answer autorun cannot use becomes one AutorunError.

The table from status codes to the contract's exit codes lives here, once; a
provider customises only how its error bodies are read (``ErrorHooks``). Nothing
here imports httpx: responses are only read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from autorun_cli import jsondoc
from autorun_cli.errors import (
    AuthError,
    AutorunError,
    BadResponseError,
    NotAllowedError,
    NotFoundError,
    NotSupportedError,
    ServiceError,
    UsageError,
)
from autorun_cli.http.retry import RETRY_STATUSES, parse_retry_after
from autorun_cli.textsafe import excerpt

if TYPE_CHECKING:
    import httpx


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


def _markup(resp: httpx.Response) -> str | None:
    """What a body in angle brackets is, for the message: an HTML page (a proxy's or
    a login page), an XML document (another API), or None when it is neither."""
    ctype = resp.headers.get("content-type", "").lower()
    head = resp.text.lstrip()[:512].lower()
    if "html" in ctype or head.startswith(("<!doctype html", "<html")) or "<body" in head or "<head" in head:
        return "an HTML page"
    if "xml" in ctype or head.startswith("<?xml"):
        return "an XML document"
    return "markup (not JSON)" if head.startswith("<") else None


def error_for(resp: httpx.Response, hooks: Any, secrets: list[str], retried: int = 0) -> AutorunError:
    """Map an error response (4xx/5xx) onto the exception table (contract exit codes)."""
    status = resp.status_code
    body: Any = None
    text = resp.text
    try:
        # Deep or non-finite JSON in an error body must not crash the mapping either.
        body = jsondoc.loads(resp.content)
    except ValueError:
        body = None
    message = hooks.error_message(body) if body is not None else None
    if message is None:
        if text.strip():
            kind = _markup(resp) or "a non-JSON body"
            message = f"HTTP {status} {excerpt(resp.reason_phrase, secrets, 60)} with {kind}: {excerpt(text, secrets, 100)}"
        else:
            message = f"HTTP {status} {excerpt(resp.reason_phrase, secrets, 60)}"
    else:
        message = excerpt(message, secrets, 300)
    special = hooks.classify_error(status, message)
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


def redirect_error(resp: httpx.Response, method: str, secrets: list[str]) -> BadResponseError:
    """A 3xx answer. Redirects are never followed: the token would travel to wherever
    the API points, and a POST or PATCH sent again elsewhere could act twice. So a
    redirect is an error — never "success" for a mutating request — that names where
    the API pointed."""
    where = resp.headers.get("location")
    target = f" to {excerpt(where, secrets, 200)}" if where else ""
    path = excerpt(resp.request.url.path, secrets, 120)
    reason = excerpt(resp.reason_phrase, secrets, 60)
    return BadResponseError(
        f"the API answered {method} {path} with a redirect ({resp.status_code} {reason}){target}; "
        "autorun does not follow redirects, so the request was not sent there",
        hint="if the API moved, point the base URL (--base-url, AUTORUN_BASE_URL) or the profile's path "
        "templates (list_path, get_path, retry_path, cancel_path) at the new location",
        code="redirect",
    )


def decode_error(resp: httpx.Response, secrets: list[str]) -> BadResponseError:
    """A 2xx answer that is not the JSON the API promised."""
    kind = _markup(resp) or "malformed JSON"
    return BadResponseError(
        f"the API answered {kind} where JSON was expected: {excerpt(resp.text, secrets) or '(empty body)'}",
        hint="check the base URL points at the API root (not a web page) and the provider is right",
    )


def connection_error(exc: Exception, base_url: str, secrets: list[str]) -> ServiceError:
    import httpx  # loaded already: the exception came from it

    from autorun_cli.http.transport import DeadlineExceeded

    host = urlsplit(base_url).netloc
    kind = type(exc).__name__
    if isinstance(exc, DeadlineExceeded):
        return ServiceError(
            f"{host} did not finish its answer in time: {exc} (the overall deadline of one request)",
            hint="the API is stalled or very slow; try again later, and add -v to see each request",
            code="deadline",
        )
    if isinstance(exc, httpx.TimeoutException):
        msg = f"timed out talking to {host} ({kind})"
    else:
        msg = f"could not reach {host}: {excerpt(str(exc) or kind, secrets)}"
    return ServiceError(
        msg,
        hint="check the base URL (--base-url / AUTORUN_BASE_URL) and your network, then try again",
        code="connection",
    )
