"""``autorun watch ID…``: follow runs until each one ends."""

from __future__ import annotations

from typing import Annotated

import typer

from autorun_cli.cli import following
from autorun_cli.cli.completing import complete_run_id
from autorun_cli.cli.following import IntervalOpt, RawOpt, TimeoutOpt
from autorun_cli.cli.options import Opts, common
from autorun_cli.cli.session import Session


def watch_cmd(
    opts: Opts,
    ids: Annotated[list[str], typer.Argument(metavar="ID", help="Run IDs to follow, or @latest.", show_default=False, autocompletion=complete_run_id)],
    interval: IntervalOpt = "2",
    timeout: TimeoutOpt = None,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop (exit 1) as soon as any run ends failed, cancelled or timed out.", rich_help_panel=following.FOLLOW)] = False,
    raw: RawOpt = False,
) -> None:
    """Follow runs until each one ends: a live view on a terminal, one line per change when piped.

    Piped, each line is `TIME ID STEP STATUS` (STEP is - for the run itself).
    Exit 0 when every run completed, 1 when any failed, was cancelled or timed out,
    6 when --timeout elapsed first (1 if a run had already failed by then: both are
    said). With -o json the final runs are printed at the end. A failing API (5xx,
    connection refused) does not end the watch: it keeps polling with backoff.
    """
    from autorun_cli.cli.acting import resolve

    started = following.monotonic()
    interval_s = following.seconds(interval, "--interval")
    timeout_s = following.seconds(timeout, "--timeout") if timeout is not None else None
    with Session(opts) as s:
        provider = s.provider
        checked = [provider.validate_id(i) if i != "@latest" else i for i in ids]
        resolved: list[str] = []
        for run_id in checked:
            rid = resolve(s, run_id)
            if rid not in resolved:
                resolved.append(rid)
        provider.tick()
        runs = [provider.get_run(rid) for rid in resolved]
        following.follow_and_finish(s, runs, interval_s, timeout_s, started=started, single=len(ids) == 1, raw=raw,
                                    fail_fast=fail_fast)


def register(app: typer.Typer, name: str = "watch") -> None:
    app.command(name)(common(watch_cmd))
