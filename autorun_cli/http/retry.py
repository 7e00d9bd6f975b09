"""Retry policy: which failures are tried again, how long to wait, and the pause
that one ``Retry-After`` puts on every thread of a client.

* A request that never reached the server (connection refused, connect timeout)
  may be retried whatever its method: the server cannot have acted on it.
* Otherwise only idempotent requests (GET, HEAD, OPTIONS) are retried on
  408/425/5xx and dropped connections, at most ``max_retries`` times, with
  exponential backoff and full jitter.
* 429 is retried for every method, POST and PATCH included: a rate-limited request
  was refused, not performed. Rate limits have their own budget
  (``max_rate_limit_retries``), so a burst of 429s across a bulk action does not use
  up the budget meant for failures.
* ``Retry-After`` (seconds or an HTTP date) is honoured up to ``max_retry_after``
  (60 s); a longer one is not waited for, the error says how long the API asked.
  The wait is not only that request's: it closes the client's :class:`PauseGate`,
  so every other thread of the same client holds its next request until the pause
  ends, as the server asked.
* A request that ran out its overall deadline is not retried: it would only take
  as long again.

No httpx at module level: ``autorun_cli.http`` loads this for start-up-light names.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from autorun_cli.errors import AutorunError, ServiceError

if TYPE_CHECKING:
    import httpx

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_RETRIES = 3
MAX_RATE_LIMIT_RETRIES = 10
MAX_RETRY_AFTER = 60.0


def _sleep(seconds: float) -> None:
    # Looked up on each call so tests patch one name: autorun_cli.http.sleep.
    import autorun_cli.http as package

    package.sleep(seconds)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN: no advice
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


class PauseGate:
    """A pause shared by the threads of one client.

    ``pause(s)`` is called by the thread whose request was told to wait; it sleeps
    ``s`` itself, and until then every other thread's ``wait()`` sleeps out the rest
    of the pause (with a little jitter, so they do not all return at once) before
    sending. Overlapping pauses extend to the latest end.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = 0.0  # time.monotonic() at which the pause ends; 0 = open

    def pause(self, seconds: float) -> None:
        with self._lock:
            end = time.monotonic() + seconds
            self._until = max(self._until, end)
        _sleep(seconds)
        self._reopen(end)

    def wait(self) -> float:
        """Hold the caller while a pause is on; return the seconds slept (0: none)."""
        with self._lock:
            end = self._until
            left = end - time.monotonic()
        if left <= 0:
            return 0.0
        delay = left + random.uniform(0, min(1.0, left / 4))
        _sleep(delay)
        self._reopen(end)
        return delay

    def _reopen(self, end: float) -> None:
        # With a real clock the pause is over by now anyway; with a patched sleep
        # (tests) no time passed, and later requests must not sleep it again.
        with self._lock:
            if self._until <= end:
                self._until = 0.0


class Attempts:
    """One request's retries so far: failures and rate limits are budgeted apart."""

    __slots__ = ("idempotent", "failures", "rate_limits")

    def __init__(self, method: str):
        self.idempotent = method in IDEMPOTENT
        self.failures = 0
        self.rate_limits = 0

    @property
    def retried(self) -> int:
        return self.failures + self.rate_limits


class RetryPolicy:
    def __init__(
        self,
        *,
        max_retries: int = MAX_RETRIES,
        max_rate_limit_retries: int = MAX_RATE_LIMIT_RETRIES,
        max_retry_after: float = MAX_RETRY_AFTER,
        log: Callable[[str], None] | None = None,
    ):
        self.max_retries = max_retries
        self.max_rate_limit_retries = max_rate_limit_retries
        self.max_retry_after = max_retry_after
        self.gate = PauseGate()
        self._log = log or (lambda text: None)

    def start(self, method: str) -> Attempts:
        return Attempts(method)

    def before_send(self) -> None:
        """Hold the request while another thread's Retry-After pause is on."""
        waited = self.gate.wait()
        if waited:
            self._log(f"  held {waited:.2f} s: the API asked this client to slow down")

    def retry_exception(self, attempts: Attempts, exc: Exception) -> bool:
        """After a transport failure: wait and return True to send again."""
        import httpx  # loaded already: the exception came from it

        from autorun_cli.http.transport import DeadlineExceeded

        if isinstance(exc, DeadlineExceeded):
            return False
        never_connected = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
        if not (never_connected or attempts.idempotent) or attempts.failures >= self.max_retries:
            return False
        attempts.failures += 1
        self._backoff(attempts.failures, self.max_retries, type(exc).__name__)
        return True

    def retry_response(self, attempts: Attempts, resp: httpx.Response, error: AutorunError) -> bool:
        """After an error status (``error`` is what it maps to): wait and return True
        to send again, False to raise ``error``."""
        status = resp.status_code
        if status not in RETRY_STATUSES:
            return False
        rate_limited = status == 429
        if not rate_limited:
            # A POST that failed with a 5xx may have been performed: never repeat it.
            # A provider may also say the answer is final (tenant: a 500 that means
            # "not found"); retrying it would only delay the same answer.
            if not attempts.idempotent or not isinstance(error, ServiceError):
                return False
            if attempts.failures >= self.max_retries:
                return False
        elif attempts.rate_limits >= self.max_rate_limit_retries:
            return False
        wait = parse_retry_after(resp.headers.get("Retry-After"))
        if wait is not None and wait > self.max_retry_after:
            return False  # the error's hint says how long the API asked for
        if rate_limited:
            attempts.rate_limits += 1
            n, budget = attempts.rate_limits, self.max_rate_limit_retries
        else:
            attempts.failures += 1
            n, budget = attempts.failures, self.max_retries
        if wait is None:
            self._backoff(n, budget, f"HTTP {status}")
        else:
            self._log(f"  HTTP {status} asks to wait {wait:.2f} s: pausing this client's requests (retry {n}/{budget})")
            self.gate.pause(wait)
        return True

    def _backoff(self, n: int, budget: int, why: str) -> None:
        # Exponential backoff with full jitter: up to 0.5 s, 1 s, 2 s, ... 8 s.
        delay = random.uniform(0, min(8.0, 0.5 * (2 ** (n - 1))))
        self._log(f"  retrying after {why} in {delay:.2f} s (retry {n}/{budget})")
        _sleep(delay)

