"""Progress on long work: a Rich progress bar on stderr, only when stderr is a terminal.

Never on stdout, never in pipes or CI logs: when stderr is not a terminal every
method here is a no-op and Rich is not even imported. The bar is transient (it is
gone when the work ends), so what stays on the screen is the command's output.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

# Redraws are throttled: counting 100,000 local runs must not cost 100,000 redraws.
_EVERY_S = 0.1


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """``with Progress("reading runs", total=200, unit="runs") as p: for x in p.track(it): …``

    ``total`` may be None (unknown: a count and a rate, no bar) and can be set later
    with :meth:`set_total`; :meth:`note` adds a short text after the count (pages).
    """

    def __init__(self, description: str, *, total: int | None = None, unit: str = "runs", color: str = "auto", streams: bool = False):
        """``streams``: the command writes its output while the work goes on; on a
        terminal that output is the progress, and a bar would be torn by it."""
        self.description = description
        self.total = total
        self.unit = unit
        self.enabled = stderr_is_terminal() and not (streams and _stdout_is_terminal())
        self.color = color
        self.count = 0
        self._extra = ""
        self._progress: Any = None
        self._task: Any = None
        self._last = 0.0

    def __enter__(self) -> Progress:
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        no_color = self.color == "never" or (self.color == "auto" and os.environ.get("NO_COLOR", "") != "")
        console = Console(file=sys.stderr, highlight=False, emoji=False, markup=False, no_color=no_color)
        if self.total is None:
            columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} " + self.unit),
                                  TextColumn("{task.fields[extra]}", style="dim"), TimeElapsedColumn()]
        else:
            columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                       TextColumn("{task.fields[extra]}", style="dim"), TimeElapsedColumn()]
        # No redirection: stdout is data and must never pass through the stderr console.
        self._progress = RichProgress(
            *columns, console=console, transient=True, refresh_per_second=10, redirect_stdout=False, redirect_stderr=False
        )
        self._task = self._progress.add_task(self.description, total=self.total, extra="")
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def set_total(self, total: int | None) -> None:
        self.total = total
        if self._progress is not None:
            self._progress.update(self._task, total=total)

    def note(self, text: str) -> None:
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
            self._progress.update(self._task, completed=self.count, extra=self._extra)

    def track(self, items: Iterable[T]) -> Iterator[T]:
        """``items``, counting each one as it passes."""
        if self._progress is None:
            yield from items
            return
        for item in items:
            yield item
            self.advance()
