"""``autorun cancel [ID…]``: stop runs that have not ended."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from autorun_cli.cli.commands.retry import DryRunOpt, YesOpt
from autorun_cli.cli.completing import complete_run_id
from autorun_cli.cli.following import RawOpt
from autorun_cli.cli.options import Opts, common
from autorun_cli.cli.selection import AllOpt, LimitOrNoneOpt, SinceOpt, StatusOpt, UntilOpt
from autorun_cli.cli.session import Session

IdsArg = Annotated[
    list[str] | None,
    typer.Argument(metavar="ID", help="Runs to cancel, @latest, or - to read IDs from stdin (one per line). Instead of IDs: the selection flags.", show_default=False, autocompletion=complete_run_id),
]


def cancel_cmd(
    opts: Opts,
    ids: IdsArg = None,
    status: StatusOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: LimitOrNoneOpt = None,
    all_: AllOpt = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    raw: RawOpt = False,
    autorun_ctx: Any = None,
) -> None:
    """Stop runs that have not ended (generic and local; elsewhere exit 4): one,
    several, or those the selection flags choose (--status, --automation, --since,
    --until, --limit, --all; without --status: pending, running and waiting runs).

    More than one run: asks at a terminal, else needs --yes; runs are cancelled
    concurrently (AUTORUN_CONCURRENCY), one line each (-o json: an array). Exit 0 when
    every run was cancelled, else the exit code of the first failure.
    """
    from autorun_cli.cli.acting import Selection, run_bulk

    selection = Selection(autorun_ctx, ids, status=status, since=since, until=until, limit=limit, all_=all_,
                          action="cancel")
    with Session(opts) as s:
        if selection.many or dry_run:
            run_bulk(s, "cancel", selection, dry_run=dry_run, yes=yes)
            return
        _cancel_one(s, selection.ids[0], raw=raw)


def _cancel_one(s: Session, run_id: str, *, raw: bool) -> None:
    """One run named by its ID: a line on stderr (the run with -o json)."""
    from autorun_cli.cli.acting import cancel_refusal, require, resolve

    provider = s.provider
    checked = provider.validate_id(run_id) if run_id != "@latest" else run_id
    require(provider, "cancel", checked)
    rid = resolve(s, checked)
    run = provider.get_run(rid)
    refusal = cancel_refusal(run)
    if refusal is not None:
        raise refusal
    new = provider.cancel(run)
    if s.out.mode == "table":
        if new.status == "cancelled":
            s.out.info(f"cancelled {new.id}")
        else:
            s.out.info(f"cancel requested for {new.id} (now {new.status})")
    else:
        s.out.run_details([new], raw=raw)


def register(app: typer.Typer, name: str = "cancel") -> None:
    app.command(name)(common(cancel_cmd))
