"""Progress on long work: a Rich progress bar on stderr, only when stderr is a terminal.

Never on stdout, never in pipes or CI logs: when stderr is not a terminal every
method here is a no-op and Rich is not even imported. The bar appears only when the
work lasts (after :data:`DELAY_S`), so quick commands never flicker, and it is
transient: gone when the work ends, leaving the screen to the command's output.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

# Redraws are throttled: counting 100,000 local runs must not cost 100,000 redraws.
_EVERY_S = 0.1
# Work that ends sooner shows no bar at all.
DELAY_S = 0.3


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progress:
    """``with Progress("reading runs", total=200) as p: for x in p.track(it): …``

    ``total`` may be None (unknown: a count and a rate, no bar); :meth:`note` adds a
    short text after the count (pages read). ``streams``: the command writes its
    output while the work goes on; when that output is the terminal too, it is the
    progress, and a bar would be torn by it, so there is none.
    """

    def __init__(self, description: str, *, total: int | None = None, unit: str = "runs", color: str = "auto",
                 streams: bool = False, delay: float = DELAY_S):
        self.description = description
        self.total = total
        self.unit = unit
        self.color = color
        self.delay = delay
        self.enabled = _isatty(sys.stderr) and not (streams and _isatty(sys.stdout))
        self.count = 0
        self._extra = ""
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._progress: Any = None
        self._task: Any = None
        self._closed = False
        self._last = 0.0

    # -- lifetime -------------------------------------------------------------------
    def __enter__(self) -> Progress:
        if self.enabled:
            if self.delay <= 0:
                self._start()
            else:
                self._timer = threading.Timer(self.delay, self._start)
                self._timer.daemon = True
                self._timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Take the bar off the screen (before the command prints its result)."""
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._progress is not None:
                self._progress.stop()
                self._progress = None

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        with self._lock:
            if self._closed or self._progress is not None:
                return
            no_color = self.color == "never" or (self.color == "auto" and os.environ.get("NO_COLOR", "") != "")
            console = Console(file=sys.stderr, highlight=False, emoji=False, markup=False, no_color=no_color)
            if self.total is None:
                columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}"),
                                      TextColumn("{task.completed:,} " + self.unit), TextColumn("{task.fields[extra]}", style="dim"),
                                      TimeElapsedColumn()]
            else:
                columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                           TextColumn("{task.fields[extra]}", style="dim"), TimeElapsedColumn()]
            # No redirection: stdout is data and must never pass through this console.
            progress = RichProgress(*columns, console=console, transient=True, refresh_per_second=10,
                                    redirect_stdout=False, redirect_stderr=False)
            self._task = progress.add_task(self.description, total=self.total, completed=self.count, extra=self._extra)
            progress.start()
            self._progress = progress

    # -- counting -------------------------------------------------------------------
    def note(self, text: str) -> None:
        if text != self._extra:
            self._extra = text
            self._push(force=True)

    def advance(self, n: int = 1) -> None:
        self.count += n
        if self._progress is not None:
            self._push()

    def _push(self, force: bool = False) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if force or now - self._last >= _EVERY_S:
            self._last = now
            with self._lock:
                if self._progress is not None:
                    self._progress.update(self._task, completed=self.count, extra=self._extra)

    def track(self, items: Iterable[T], *, note: Any = None, close: bool = True) -> Iterator[T]:
        """``items``, counting each one as it passes; the bar goes when they end
        (unless ``close`` is False: more is counted after them).
        ``note``: called now and then for the text after the count (``3 pages``)."""
        if not self.enabled:
            yield from items
            return
        for item in items:
            yield item
            self.count += 1
            if self._progress is not None:
                if note is not None:
                    self._extra = note()
                self._push()
        if close:
            self.close()
