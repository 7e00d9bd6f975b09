"""``autorun cancel ID``: stop a run that has not ended."""

from __future__ import annotations

from typing import Annotated

import typer

from autorun_cli.cli.following import RawOpt
from autorun_cli.cli.options import Opts, common
from autorun_cli.cli.session import Session


def cancel_cmd(
    opts: Opts,
    run_id: Annotated[str, typer.Argument(metavar="ID", help="The run to stop, or @latest.", show_default=False)],
    raw: RawOpt = False,
) -> None:
    """Stop a run that has not ended (generic and local; elsewhere exit 4)."""
    from autorun_cli.cli.acting import require, resolve
    from autorun_cli.errors import NotAllowedError
    from autorun_cli.status import RETRYABLE, TERMINAL

    with Session(opts) as s:
        provider = s.provider
        checked = provider.validate_id(run_id) if run_id != "@latest" else run_id
        require(provider, "cancel", checked)
        rid = resolve(s, checked)
        run = provider.get_run(rid)
        if run.status in TERMINAL:
            hint = f"retry it with `autorun retry {rid}`" if run.status in RETRYABLE else f"see it with `autorun show {rid}`"
            raise NotAllowedError(f"run {rid} already ended {run.status}: there is nothing to cancel", hint=hint, code="already_ended")
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
