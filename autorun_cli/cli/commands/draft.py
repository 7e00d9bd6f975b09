"""``autorun automations draft SOURCE``: a local definition shaped like a recorded run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autorun_cli.cli.options import Opts
from autorun_cli.cli.session import Session


def draft_cmd(
    opts: Opts,
    source: Annotated[str, typer.Argument(metavar="SOURCE", help="A run ID of the current provider (or @latest), a JSON file from `show -o json`, a vendor's run document, or - for stdin.", show_default=False)],
    file: Annotated[Path | None, typer.Option("--file", "-f", metavar="PATH", help="Write the TOML here instead of stdout.", dir_okay=False, show_default=False)] = None,
) -> None:
    """Draft a local automation definition (TOML) with the shape of a recorded run of
    any provider: one step per recorded step, waits with their event and recorded
    timeout, the branch the run took. Comments say which values were recorded and
    which were guessed. `autorun replay SOURCE -d FILE` of the run matches its draft:
    edit the draft, then replay the automation's history against it.

    A run that recorded no steps cannot be drafted (exit 2).
    """
    from autorun_cli.errors import UsageError
    from autorun_cli.replay.draft import draft
    from autorun_cli.replay.source import recorded_runs

    with Session(opts) as s:
        runs = recorded_runs(source, lambda: s.provider, s.settings.automation)
        if len(runs) != 1:
            raise UsageError(
                f"{source} holds {len(runs)} runs; a draft is made from one",
                hint="pass one run: an ID, or a file from `autorun show ID -o json`",
            )
        text = draft(runs[0], source)
        if file is not None:
            try:
                file.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot write {file}: {exc.strerror or exc}", hint="check that the folder exists and is writable") from None
        if s.out.mode != "table" or s.out.jq is not None:
            # Scripts asked for data: the draft as one JSON document (the TOML as a
            # string under "toml"), so -o json, --jq '.toml' and -o id mean something.
            import tomllib

            spec = tomllib.loads(text)
            doc = {"id": spec.get("id"), "run_id": runs[0].id, "steps": len(spec.get("steps") or []),
                   "file": str(file) if file is not None else None, "toml": text}
            s.out.data(doc, ids=lambda d: [d["id"]])
            return
        if file is None:
            typer.echo(text, nl=False)
            return
        s.out.info(f"wrote {file} ({text.count('[[steps]]')} steps); check it with `autorun replay {source} -d {file}`")
