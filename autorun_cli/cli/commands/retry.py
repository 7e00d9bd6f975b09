"""``autorun retry ID``: ask the provider to run a failed run again."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from autorun_cli.cli.following import IntervalOpt, RawOpt, TimeoutOpt
from autorun_cli.cli.options import Opts, common
from autorun_cli.cli.session import Session


def retry_cmd(
    opts: Opts,
    run_id: Annotated[str, typer.Argument(metavar="ID", help="The run to retry, or @latest.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Retry even a run that is not failed, cancelled or timed out.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Then follow the run like `watch`, with its exit codes.")] = False,
    interval: IntervalOpt = "2",
    timeout: TimeoutOpt = None,
    raw: RawOpt = False,
) -> None:
    """Retry a failed, cancelled or timed-out run and print the retried run's ID.

    tenant retries the same execution (its retry link); generic starts a new run with
    the recorded inputs; local resumes from the failed step. plannr and sendrealm offer
    no retry (exit 4): replay the run locally instead.
    """
    from autorun_cli.cli import following
    from autorun_cli.cli.acting import require, resolve
    from autorun_cli.errors import NotAllowedError
    from autorun_cli.status import RETRYABLE

    interval_s = following.seconds(interval, "--interval")
    timeout_s = following.seconds(timeout, "--timeout") if timeout is not None else None
    with Session(opts) as s:
        provider = s.provider
        checked = provider.validate_id(run_id) if run_id != "@latest" else run_id
        require(provider, "retry", checked)
        rid = resolve(s, checked)
        run = provider.get_run(rid)
        if run.status not in RETRYABLE and not force:
            if run.status in ("pending", "running", "waiting"):
                message = f"run {rid} is {run.status}, not failed, cancelled or timed out: retrying it now could run it twice"
                hint = f"follow it with `autorun watch {rid}`, or pass --force to retry anyway"
            else:
                message = f"run {rid} is {run.status}; only failed, cancelled or timed-out runs are retried"
                hint = f"pass --force to retry it anyway (`autorun retry {rid} --force`)"
                if provider.name == "local" and run.status == "completed":
                    # The engine refuses even --force: a completed run has nothing left to resume.
                    hint = "a completed local run has nothing left to resume; start a new one with `autorun trigger EVENT`"
            raise NotAllowedError(message, hint=hint, code="not_retryable")
        new = provider.retry(run)
        mode = s.out.mode
        if mode == "id" or mode == "table":
            if mode == "table":
                arrow = f"retried {rid} → {new.id}" if new.id != rid else f"retried {rid}"
                s.out.info(f"{arrow} ({new.status})")
            sys.stdout.write(new.id + "\n")
            sys.stdout.flush()
        elif not wait:
            s.out.run_details([new], raw=raw)
        if wait:
            following.follow_and_finish(s, [new], interval_s, timeout_s, print_final=mode in ("json", "ndjson"), raw=raw)


def register(app: typer.Typer, name: str = "retry") -> None:
    app.command(name)(common(retry_cmd))
