"""The one HTTP layer every API provider uses, in four parts:

* :mod:`~autorun_cli.http.transport` — one httpx pool per sending thread, TLS, no
  cookies, and an overall deadline on every request;
* :mod:`~autorun_cli.http.retry` — which failures are retried, backoff and jitter,
  ``Retry-After`` and the pause it puts on all of a client's threads;
* :mod:`~autorun_cli.http.errors` — status → AutorunError (the contract's exit
  codes) and the API's own message from its error body;
* :mod:`~autorun_cli.http.paging` — following pages in the server's style;

tied together by :class:`~autorun_cli.http.client.HttpClient`, which is all a
provider uses. ``HttpClient`` (and httpx with it) is imported on first use, so a
provider module can be loaded to read a saved document without an HTTP stack.

``sleep`` is the one function every backoff and pause calls: tests patch it here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from autorun_cli.http.errors import ErrorHooks, default_error_message
from autorun_cli.http.paging import PageSpec, extract_items
from autorun_cli.textsafe import excerpt

if TYPE_CHECKING:
    from autorun_cli.http.client import HttpClient

sleep: Callable[[float], None] = time.sleep

__all__ = ["ErrorHooks", "HttpClient", "PageSpec", "default_error_message", "excerpt", "extract_items", "sleep"]


def __getattr__(name: str) -> Any:
    if name == "HttpClient":
        from autorun_cli.http.client import HttpClient

        return HttpClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
