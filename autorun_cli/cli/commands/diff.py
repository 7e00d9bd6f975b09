"""``autorun diff A [B]``: two runs of one automation side by side."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from autorun_cli.cli.completing import complete_run_id
from autorun_cli.cli.options import Opts, common
from autorun_cli.cli.session import Session

if TYPE_CHECKING:
    from autorun_cli.model import Run


def _load(s: Session, source: str) -> Run:
    """A run from an ID (``@latest`` too) of the selected provider, or a JSON file
    written by ``show -o json`` (a vendor's own run document works too)."""
    from autorun_cli.errors import UsageError
    from autorun_cli.replay.source import load_docs, looks_like_file

    if looks_like_file(source):
        where = "stdin" if source == "-" else source
        if source == "-":
            # One document, pretty-printed or not (load_docs reads stdin as ndjson).
            import sys

            from autorun_cli.replay.source import _docs_from_text, read_text, to_run

            runs = [to_run(doc, where) for doc in _docs_from_text(read_text("-", sys.stdin), where)]
        else:
            runs = list(load_docs(source))
        if len(runs) != 1:
            raise UsageError(
                f"{where} holds {len(runs)} runs; diff compares one run with one run",
                hint="save one run with `autorun show ID -o json > run.json`",
            )
        return runs[0]
    from autorun_cli.fetch import resolve_id

    provider = s.provider
    return provider.get_run(resolve_id(provider, source, s.settings.automation))


def diff_cmd(
    opts: Opts,
    a: Annotated[str, typer.Argument(metavar="A", help="A run ID, @latest, or a JSON file from `show -o json` (- for stdin).", show_default=False, autocompletion=complete_run_id)],
    b: Annotated[str | None, typer.Argument(metavar="[B]", help="The run to compare with (same forms). Default: the last good run of A's automation.", show_default=False, autocompletion=complete_run_id)] = None,
) -> None:
    """Compare two runs step by step: what changed since it last worked.

    Steps are matched by key (else name, else position); a retried step is judged
    by its last attempt. Without B, B is the newest run of A's automation created
    before A that completed. Exit 0 when the runs are the same (status, error, and
    each step's status, branch and error, in order), 1 when they differ, as diff(1).
    Durations never make runs different: they are shown as deltas (A minus B).
    """
    from autorun_cli.diff import diff_runs, last_good_run
    from autorun_cli.errors import NotFoundError, UsageError

    with Session(opts) as s:
        if a == "-" and b == "-":
            raise UsageError("A and B cannot both be read from stdin", hint="save one of them to a file")
        run_a = _load(s, a)
        if b is None:
            if not run_a.automation_id:
                raise UsageError(
                    f"run {run_a.id} names no automation, so there is no last good run to compare it with",
                    hint=f"give the run to compare with: autorun diff {a} B",
                )
            found = last_good_run(s.provider, run_a)
            if found is None:
                raise NotFoundError(
                    f"automation {run_a.automation_id} has no completed run created before {run_a.id}",
                    hint=f"give the run to compare with: autorun diff {a} B (see `autorun list --automation {run_a.automation_id}`)",
                )
            run_b = s.provider.get_run(found.id)
        else:
            run_b = _load(s, b)
        if run_a.automation_id != run_b.automation_id:
            s.out.warn(
                f"{run_a.id} and {run_b.id} are runs of different automations "
                f"({run_a.automation_id or 'none'} and {run_b.automation_id or 'none'}): steps are matched by key anyway"
            )
        doc = diff_runs(run_a, run_b)
        if s.out.mode == "table":
            from autorun_cli.render.diff import diff_view

            s.out.out.print(diff_view(doc, s.out.time_format, width=s.out.out.width))
        else:
            s.out.data(doc, ids=lambda d: [d["a"]["id"], d["b"]["id"]])
        if not doc["same"]:
            raise typer.Exit(1)


def register(app: typer.Typer, name: str = "diff") -> None:
    app.command("diff")(common(diff_cmd))
