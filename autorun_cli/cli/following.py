"""Following runs until they end: shared by ``watch`` and ``retry --wait``.

``sleep``, ``monotonic`` and ``utcnow`` are module-level so tests replace them and
a five-minute watch runs in microseconds.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from autorun_cli.cli.session import Session

if TYPE_CHECKING:
    from autorun_cli.errors import AutorunError
    from autorun_cli.model import Run
    from autorun_cli.providers.base import Provider

sleep: Callable[[float], None] = time.sleep
monotonic: Callable[[], float] = time.monotonic


def utcnow() -> datetime:
    return datetime.now(UTC)


def stdout_is_tty() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


FOLLOW = "Following"

IntervalOpt = Annotated[
    str,
    typer.Option("--interval", metavar="DURATION", help="Time between polls: seconds, or 500ms, 1m.", rich_help_panel=FOLLOW),
]
TimeoutOpt = Annotated[
    str | None,
    typer.Option("--timeout", metavar="DURATION", help="Give up (exit 6) when the runs have not ended after this long: seconds, or 30s, 5m, 1h.", rich_help_panel=FOLLOW, show_default=False),
]
RawOpt = Annotated[bool, typer.Option("--raw", help="Add the vendor's own document as `raw` (JSON output).")]


def seconds(text: str, flag: str) -> float:
    """--interval (10ms to 1d) or --timeout (up to 365d) in seconds; exit 2 outside."""
    from autorun_cli.cli import values

    if flag == "--interval":
        return values.duration(text, flag, low=0.01, high=values.DAY, example="2")
    return values.duration(text, flag, low=0, high=values.YEAR, example="10m")


# -- following ----------------------------------------------------------------


def _field(value: Any) -> str:
    """One space-free field of a piped line, so `awk '{print $4}'` is the status."""
    from autorun_cli.textsafe import clean

    text = "_".join(clean(value).split())
    return text or "-"


def _step_states(run: Run) -> dict[tuple[str, int], str]:
    """Step statuses keyed by (label, occurrence): a step retried under the same
    key appears again and is told apart by its occurrence, shown as ``key#2``."""
    states: dict[tuple[str, int], str] = {}
    seen: dict[str, int] = {}
    for i, step in enumerate(run.steps, 1):
        base = _field(step.key or step.name or step.id or f"step{i}")
        n = seen.get(base, 0)
        seen[base] = n + 1
        states[(base if n == 0 else f"{base}#{n + 1}", n)] = step.status
    return states


class Follower:
    """Polls runs until every one is terminal, showing progress as stdout wants it:

    * ``live``  — a terminal in table mode: a Rich Live view redrawn in place;
    * ``lines`` — piped table mode: one ``TIME ID STEP STATUS`` line per change;
    * ``quiet`` — json/ndjson/id: nothing until the end.
    """

    def __init__(self, s: Session, interval: float, timeout: float | None, *, started: float | None = None,
                 fail_fast: bool = False):
        self.s = s
        self.provider: Provider = s.provider
        self.interval = interval
        self.timeout = timeout
        self.fail_fast = fail_fast
        self.started = monotonic() if started is None else started
        # A short outage (5xx, connection refused) does not end a watch: polls that
        # failed in a row, the last failure, and when the first of them happened.
        self.failures = 0
        self.outage: AutorunError | None = None
        self.outage_since: float | None = None
        self._sleeping = interval
        if s.out.mode != "table":
            self.view = "quiet"
        else:
            self.view = "live" if stdout_is_tty() else "lines"
        self._last: dict[str, tuple[str, dict[tuple[str, int], str]]] = {}
        self._live: Any = None

    # -- piped lines ----------------------------------------------------------
    def _emit_changes(self, runs: list[Run]) -> None:
        when = utcnow().isoformat(timespec="seconds").replace("+00:00", "Z")
        lines: list[str] = []
        for run in runs:
            rid = _field(run.id)
            steps = _step_states(run)
            before = self._last.get(run.id)
            if before is None:
                lines.append(f"{when} {rid} - {_field(run.status)}")
                lines += [f"{when} {rid} {label} {_field(st)}" for (label, _), st in steps.items()]
            else:
                old_status, old_steps = before
                lines += [
                    f"{when} {rid} {label} {_field(st)}"
                    for (label, n), st in steps.items()
                    if old_steps.get((label, n)) != st
                ]
                if old_status != run.status:
                    lines.append(f"{when} {rid} - {_field(run.status)}")
            self._last[run.id] = (run.status, steps)
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()

    # -- live view ------------------------------------------------------------
    def _console(self) -> Any:
        from autorun_cli.cli.output import console_class

        Console = console_class()
        out = self.s.out
        no_color = out.color == "never" or (out.color == "auto" and os.environ.get("NO_COLOR", "") != "")
        # Our own console: the Output one is built not-a-terminal under --color never,
        # which would stop Live from redrawing in place.
        return Console(
            file=sys.stdout,
            highlight=False,
            emoji=False,
            markup=False,
            no_color=no_color,
            force_terminal=True if out.color == "always" else None,
        )

    def _renderable(self, runs: list[Run], final: bool) -> Any:
        from rich.console import Group
        from rich.rule import Rule
        from rich.text import Text

        from autorun_cli.render import run_header, run_view, steps_table, waits_table

        tf = self.s.out.time_format
        parts: list[Any] = []
        for i, run in enumerate(runs):
            if i:
                parts.append(Rule(style="dim"))
            if final or _terminal(run):
                # The full view: messages, logs, the error and the next command.
                parts.append(run_view(run, tf))
                continue
            # While it runs: the timeline and waits only, so the frame stays short.
            parts.append(run_header(run, tf, None))
            if run.steps:
                parts += [Text(""), steps_table(run, tf, None)]
            if run.waits:
                parts += [Text(""), waits_table(run, tf, None)]
        if not final:
            waiting = sum(1 for r in runs if not _terminal(r))
            polled = utcnow().astimezone().strftime("%H:%M:%S")
            parts += [
                Text(""),
                Text(
                    f"watching {waiting} of {len(runs)} run{'s' if len(runs) != 1 else ''} · polled {polled} · "
                    f"every {_human_seconds(self.interval)} · Ctrl-C to stop",
                    style="dim",
                ),
            ]
            if self.outage is not None:
                from autorun_cli.textsafe import clean

                parts.append(Text(
                    f"polling has failed {self.failures} time{'s' if self.failures != 1 else ''} in a row: "
                    f"{clean(self.outage.message)} · next try in {_human_seconds(round(self._sleeping, 1))}",
                    style="yellow",
                ))
        return Group(*parts)

    def _show(self, runs: list[Run], final: bool = False) -> None:
        if self.view == "lines":
            self._emit_changes(runs)
        elif self.view == "live" and self._live is not None:
            self._live.update(self._renderable(runs, final), refresh=True)

    # -- the loop -------------------------------------------------------------
    def _poll(self, runs: list[Run]) -> list[Run]:
        """The runs as the provider sees them now; during an outage, as last seen."""
        from autorun_cli.errors import ServiceError

        try:
            self.provider.tick()
            fresh = [run if _terminal(run) else self.provider.get_run(run.id) for run in runs]
        except ServiceError as exc:
            # 5xx after the HTTP layer's own retries, connection refused, a proxy's
            # HTML page: keep following, with backoff, until --timeout says stop.
            self.failures += 1
            if self.outage is None:
                self.outage_since = monotonic()
                self._note(f"polling failed: {exc.message}; still following, trying again with backoff")
            self.outage = exc
            return runs
        if self.outage is not None:
            assert self.outage_since is not None
            self._note(f"the API answers again, after {_human_seconds(round(monotonic() - self.outage_since, 1))} "
                       f"and {self.failures} failed poll{'s' if self.failures != 1 else ''}")
            self.failures, self.outage, self.outage_since = 0, None, None
        return fresh

    def _note(self, message: str) -> None:
        """A warning on stderr, except in the live view (its footer says it)."""
        if self.view != "live":
            from autorun_cli.textsafe import clean

            # One unwrapped line, however wide the terminal: logs are grepped.
            sys.stderr.write(f"warning: {clean(message)}\n")
            sys.stderr.flush()

    def _wait(self) -> float:
        """Time to the next poll: the interval, doubled per failed poll (up to a minute)."""
        if not self.failures:
            return self.interval
        return min(self.interval * 2 ** self.failures, max(self.interval, OUTAGE_BACKOFF_MAX))

    def _stop_early(self, runs: list[Run]) -> None:
        """--fail-fast: stop at the first run that ended failed, cancelled or timed out."""
        from autorun_cli.status import FAILED_LIKE

        if not self.fail_fast:
            return
        bad = [r for r in runs if r.status in FAILED_LIKE]
        if not bad:
            return
        error = verdict(runs)
        assert error is not None
        others = [r for r in runs if not _terminal(r)]
        if others:
            error.message += f" (--fail-fast: stopped following {len(others)} other run{'s' if len(others) != 1 else ''})"
        raise _Stopped(runs, error)

    def _timed_out(self, runs: list[Run]) -> AutorunError:
        """What --timeout ends with: exit 6, or 1 naming both when a run already failed."""
        from autorun_cli.errors import WatchTimeoutError

        assert self.timeout is not None
        open_runs = [r for r in runs if not _terminal(r)]
        still = ", ".join(f"{r.id} is still {r.status}" for r in open_runs)
        if self.outage is not None:
            still += f" (as last seen: polling has failed for {_human_seconds(round(monotonic() - (self.outage_since or 0), 1))}: {self.outage.message})"
        elapsed = f"--timeout {_human_seconds(self.timeout)} elapsed and {still}"
        keep = f"`autorun watch {' '.join(r.id for r in open_runs)}`"
        failed = verdict(runs)
        if failed is not None:
            # A run already failed: that is the verdict (exit 1); the timeout is said too.
            failed.message += f"; and {elapsed}"
            failed.hint = f"{failed.hint}; keep following the others with {keep}"
            return failed
        return WatchTimeoutError(elapsed, hint=f"keep following with {keep}, or raise --timeout")

    def _loop(self, runs: list[Run]) -> list[Run]:
        while True:
            self._stop_early(runs)
            if all(_terminal(r) for r in runs):
                return runs
            wait = self._wait()
            if self.timeout is not None:
                left = self.timeout - (monotonic() - self.started)
                if left <= 0:
                    raise _Stopped(runs, self._timed_out(runs))
                wait = min(wait, left)
            self._sleeping = wait
            if self.view == "live" and self.outage is not None:
                self._show(runs)  # the footer names the outage and the next try
            sleep(wait)
            runs = self._poll(runs)
            self._show(runs)

    def follow(self, runs: list[Run]) -> list[Run]:
        """Follow ``runs`` to their end; raises ``_Stopped`` on --timeout."""
        if self.view == "live" and (all(_terminal(r) for r in runs) or self.fail_fast and verdict(runs) is not None):
            # Already over: the final state once, no live region.
            self.s.out.run_details(runs)
            self._stop_early(runs)
            return runs
        if self.view == "live":
            from rich.live import Live

            console = self._console()
            from rich.console import Group

            stopped: _Stopped | None = None
            with Live(self._renderable(runs, False), console=console, auto_refresh=False, transient=False) as live:
                self._live = live
                try:
                    runs = self._loop(runs)
                except _Stopped as stop:
                    stopped, runs = stop, stop.runs
                finally:
                    self._live = None
                # Ended (not interrupted, where the last frame stays): empty the live
                # region and print the final state below it, since Live crops its lines
                # at the terminal's width and a hint must paste whole.
                live.update(Group(), refresh=True)
            console.print(self._renderable(runs, True))
            if stopped is not None:
                raise stopped
            return runs
        self._show(runs)
        return self._loop(runs)


class _Stopped(Exception):
    """Following stopped early (--timeout): the runs as last seen, and why."""

    def __init__(self, runs: list[Run], error: AutorunError):
        super().__init__(error.message)
        self.runs = runs
        self.error = error


OUTAGE_BACKOFF_MAX = 60.0


def _terminal(run: Run) -> bool:
    from autorun_cli.status import TERMINAL

    return run.status in TERMINAL


def _human_seconds(value: float) -> str:
    if value < 1:
        return f"{round(value * 1000)}ms"
    return f"{value:g}s"


def verdict(runs: list[Run]) -> AutorunError | None:
    """RunFailedError when any followed run ended failed, cancelled or timed out."""
    from autorun_cli.errors import RunFailedError
    from autorun_cli.status import FAILED_LIKE

    bad = [r for r in runs if r.status in FAILED_LIKE]
    if not bad:
        return None
    if len(bad) == 1:
        run = bad[0]
        message = f"run {run.id} ended {run.status}"
        if run.error is not None and run.error.message:
            message += f": {run.error.message}"
    else:
        message = f"{len(bad)} of {len(runs)} runs did not complete: " + ", ".join(f"{r.id} ({r.status})" for r in bad)
    return RunFailedError(message, hint=f"see what happened with `autorun show {bad[0].id}`")


def follow_runs(
    s: Session, runs: list[Run], interval: float, timeout: float | None, *, started: float | None = None,
    fail_fast: bool = False,
) -> tuple[list[Run], AutorunError | None]:
    """Follow runs to their end (or --timeout, or with ``fail_fast`` the first that
    ends badly); the runs as last seen and the verdict: None when all completed, else
    the error to exit with (1, or 6 on --timeout)."""
    follower = Follower(s, interval, timeout, started=started, fail_fast=fail_fast)
    try:
        runs = follower.follow(runs)
    except _Stopped as stop:
        return stop.runs, stop.error
    return runs, verdict(runs)


def follow_and_finish(
    s: Session,
    runs: list[Run],
    interval: float,
    timeout: float | None,
    *,
    started: float | None = None,
    print_final: bool = True,
    single: bool = True,
    raw: bool = False,
    fail_fast: bool = False,
) -> None:
    """Follow runs to their end, print the final JSON where asked, and exit with the
    contract's code: 0 all completed, 1 any failed/cancelled/timed out, 6 on --timeout.

    With -o json the runs as last seen are the one document on stdout; the failure
    goes to stderr only, so `autorun watch ID -o json | jq .status` always works.
    """
    runs, error = follow_runs(s, runs, interval, timeout, started=started, fail_fast=fail_fast)
    printed = False
    if print_final and s.out.mode in ("json", "ndjson", "id"):
        s.out.run_details(runs, raw=raw, single=single)
        printed = s.out.mode in ("json", "ndjson")
    if error is None:
        return
    if printed:
        from autorun_cli.cli.output import report_error

        report_error(error, "table")
        raise typer.Exit(error.exit_code)
    raise error
