"""``list`` and ``show``: reading runs from any provider."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autorun_cli.cli.completing import complete_run_id
from autorun_cli.cli.options import Opts, common
from autorun_cli.cli.selection import FILTERS, AllOpt, LimitOpt, SinceOpt, StatusOpt, UntilOpt
from autorun_cli.cli.session import Session


def list_cmd(
    opts: Opts,
    status: StatusOpt = None,
    uuid: Annotated[str | None, typer.Option("--uuid", metavar="ID[,…]", help="Only these run IDs, comma-separated.", rich_help_panel=FILTERS, show_default=False)] = None,
    client_uuids: Annotated[str | None, typer.Option("--client-uuids", metavar="UUID[,…]", help="Only runs of these clients (plannr), comma-separated.", rich_help_panel=FILTERS, show_default=False)] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    sort: Annotated[str, typer.Option("--sort", metavar="[-]FIELD", help="created_at, updated_at, status or name; prefix - for descending.")] = "-created_at",
    limit: LimitOpt = 20,
    all_: AllOpt = False,
    raw: Annotated[bool, typer.Option("--raw", help="Add the vendor's own document as `raw` (JSON output).")] = False,
) -> None:
    """List runs, newest first.

    Filters the API knows are sent to the server; the rest are applied here.
    Pages are fetched lazily, and streamed with -o ndjson / -o id.
    """
    from autorun_cli.cli.selection import build_query
    from autorun_cli.listing import list_runs

    query = build_query(status=status, since=since, until=until, limit=limit, all_=all_, sort=sort, uuid=uuid, client_uuids=client_uuids)
    from autorun_cli.cli.progress import Progress

    with Session(opts) as s:
        query.automation = s.settings.automation
        provider = s.provider

        def pages() -> str:
            n = provider.pages_read
            return f"· {n:,} page{'s' if n != 1 else ''}"

        # Runs so far and pages, on stderr while the pages come (a table waits for the
        # last; json/ndjson/id stream, and on a terminal that output is the progress).
        with Progress("listing runs", color=s.out.color, streams=s.out.mode != "table") as progress:
            count = s.out.runs(progress.track(list_runs(provider, query), note=pages), raw=raw)
        if count == 0 and s.out.mode == "table":
            s.out.info("no runs match", style="dim")


def show_cmd(
    opts: Opts,
    ids: Annotated[list[str], typer.Argument(metavar="ID", help="Run IDs, or @latest for the newest run.", show_default=False, autocompletion=complete_run_id)],
    raw: Annotated[bool, typer.Option("--raw", help="Add the vendor's own document as `raw`.")] = False,
    svg: Annotated[Path | None, typer.Option("--svg", metavar="FILE", help="Also save the human view as SVG (e.g. a CI artifact).", dir_okay=False, show_default=False)] = None,
    html: Annotated[Path | None, typer.Option("--html", metavar="FILE", help="Also save the human view as HTML.", dir_okay=False, show_default=False)] = None,
) -> None:
    """Show runs in full: header, step timeline, waits, messages, logs, error and a hint.

    Several IDs are fetched concurrently (AUTORUN_CONCURRENCY, default 32).
    --svg/--html save the same view as a file; stdout is unchanged.
    """
    from autorun_cli.fetch import concurrency, fetch_runs

    with Session(opts) as s:
        if s.out.mode == "json" and len(ids) == 1 and svg is None and html is None:
            # One run as JSON, the form scripts poll: no model needed where the
            # provider can answer with the document directly.
            from autorun_cli.fetch import resolve_id

            run_id = resolve_id(s.provider, ids[0], s.settings.automation)
            s.out.print_json(s.provider.get_run_document(run_id, raw=raw))
            return
        from autorun_cli.cli.progress import Progress

        with Progress("reading runs", total=len(ids), color=s.out.color) as progress:
            runs, errors = fetch_runs(s.provider, ids, concurrency=concurrency(), automation=s.settings.automation, progress=progress.track)
        if runs:
            s.out.run_details(runs, raw=raw, single=len(ids) == 1)
            if svg is not None or html is not None:
                from autorun_cli.render.export import export_runs

                for path in export_runs(runs, svg=svg, html=html, title="autorun show " + " ".join(ids)):
                    s.out.info(f"saved {path}", style="dim")
        if errors:
            from autorun_cli.cli.output import report_error

            if runs and s.out.mode == "json":
                # The runs found are the one JSON document on stdout; each failure
                # is an error line on stderr, and the exit code is the first's.
                for err in errors:
                    report_error(err, "table")
                raise typer.Exit(errors[0].exit_code)
            for err in errors[1:]:
                report_error(err, "table")
            raise errors[0]


def register(app: typer.Typer, name: str) -> None:
    app.command(name)(common(list_cmd if name == "list" else show_cmd))
