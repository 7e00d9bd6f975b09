"""``autorun retry [ID…]``: ask the provider to run failed runs again."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from autorun_cli.cli.completing import complete_run_id
from autorun_cli.cli.following import IntervalOpt, RawOpt, TimeoutOpt
from autorun_cli.cli.options import Opts, common
from autorun_cli.cli.selection import AllOpt, LimitOrNoneOpt, SinceOpt, StatusOpt, UntilOpt
from autorun_cli.cli.session import Session

MANY = "Many runs"


IdsArg = Annotated[
    list[str] | None,
    typer.Argument(metavar="ID", help="Runs to retry, @latest, or - to read IDs from stdin (one per line). Instead of IDs: the selection flags.", show_default=False, autocompletion=complete_run_id),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print what would be done for each run and change nothing.", rich_help_panel=MANY)]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Act on more than one run without asking.", rich_help_panel=MANY)]


def retry_cmd(
    opts: Opts,
    ids: IdsArg = None,
    status: StatusOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: LimitOrNoneOpt = None,
    all_: AllOpt = False,
    from_step: Annotated[str | None, typer.Option("--from-step", metavar="KEY", help="Start again at this step; the steps before keep their results (local engine).", show_default=False)] = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Retry even a run that is not failed, cancelled or timed out.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Then follow the runs like `watch`, with its exit codes.")] = False,
    interval: IntervalOpt = "2",
    timeout: TimeoutOpt = None,
    raw: RawOpt = False,
    autorun_ctx: Any = None,
) -> None:
    """Retry failed, cancelled or timed-out runs: one, several, or those the selection
    flags choose (--status, --automation, --since, --until, --limit, --all; without
    --status: failed, cancelled and timed-out runs).

    tenant retries the same execution (its retry link); generic starts a new run with
    the recorded inputs; local resumes from the failed step, or --from-step KEY. plannr
    and sendrealm offer no retry (exit 4): replay the run locally instead.

    More than one run: asks at a terminal, else needs --yes; runs are retried
    concurrently (AUTORUN_CONCURRENCY), one line each (-o json: an array). Exit 0 when
    every run was retried, else the exit code of the first failure.
    """
    from autorun_cli.cli import following
    from autorun_cli.cli.acting import Selection, run_bulk

    interval_s = following.seconds(interval, "--interval")
    timeout_s = following.seconds(timeout, "--timeout") if timeout is not None else None
    selection = Selection(autorun_ctx, ids, status=status, since=since, until=until, limit=limit, all_=all_)
    with Session(opts) as s:
        if selection.many or dry_run:
            run_bulk(s, "retry", selection, force=force, from_step=from_step, dry_run=dry_run, yes=yes,
                     wait=wait, interval=interval_s, timeout=timeout_s)
            return
        _retry_one(s, selection.ids[0], force=force, from_step=from_step, wait=wait, interval=interval_s,
                   timeout=timeout_s, raw=raw)


def _retry_one(
    s: Session, run_id: str, *, force: bool, from_step: str | None, wait: bool, interval: float,
    timeout: float | None, raw: bool,
) -> None:
    """One run named by its ID: the new run's ID on stdout (the run with -o json)."""
    from autorun_cli.cli import following
    from autorun_cli.cli.acting import require, resolve, retry_refusal, step_refusal

    provider = s.provider
    checked = provider.validate_id(run_id) if run_id != "@latest" else run_id
    require(provider, "retry_from" if from_step is not None else "retry", checked)
    rid = resolve(s, checked)
    run = provider.get_run(rid)
    refusal = retry_refusal(provider, run, force) or (step_refusal(run, from_step) if from_step is not None else None)
    if refusal is not None:
        raise refusal
    new = provider.retry_from(run, from_step) if from_step is not None else provider.retry(run)
    mode = s.out.mode
    if mode == "id" or mode == "table":
        if mode == "table":
            where = f" from step {from_step}" if from_step is not None else ""
            arrow = f"retried {rid}{where} → {new.id}" if new.id != rid else f"retried {rid}{where}"
            s.out.info(f"{arrow} ({new.status})")
        s.out.line(new.id)
    elif not wait:
        s.out.run_details([new], raw=raw)
    if wait:
        following.follow_and_finish(s, [new], interval, timeout, print_final=mode in ("json", "ndjson"), raw=raw)


def register(app: typer.Typer, name: str = "retry") -> None:
    app.command(name)(common(retry_cmd))
