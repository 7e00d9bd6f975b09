"""``list`` and ``show``: reading runs from any provider."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from autorun_cli.cli.options import Opts, common
from autorun_cli.cli.session import Session

FILTERS = "Filters"


def _split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def list_cmd(
    opts: Opts,
    status: Annotated[str | None, typer.Option("--status", help="Only these statuses, comma-separated (pending, running, waiting, completed, failed, cancelled, timed_out, skipped, unknown).", rich_help_panel=FILTERS, show_default=False)] = None,
    uuid: Annotated[str | None, typer.Option("--uuid", help="Only these run IDs, comma-separated.", rich_help_panel=FILTERS, show_default=False)] = None,
    client_uuids: Annotated[str | None, typer.Option("--client-uuids", help="Only runs of these clients (plannr), comma-separated.", rich_help_panel=FILTERS, show_default=False)] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only runs created since: a duration ago (2h, 3d) or an ISO time.", rich_help_panel=FILTERS, show_default=False)] = None,
    until: Annotated[str | None, typer.Option("--until", help="Only runs created until: a duration ago or an ISO time.", rich_help_panel=FILTERS, show_default=False)] = None,
    sort: Annotated[str, typer.Option("--sort", help="created_at, updated_at, status or name; prefix - for descending.")] = "-created_at",
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many runs.", min=1)] = 20,
    all_: Annotated[bool, typer.Option("--all", help="Every run, reading every page (overrides --limit).")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="Add the vendor's own document as `raw` (JSON output).")] = False,
) -> None:
    """List runs, newest first.

    Filters the API knows are sent to the server; the rest are applied here.
    Pages are fetched lazily, and streamed with -o ndjson / -o id.
    """
    from autorun_cli.errors import UsageError
    from autorun_cli.listing import list_runs, parse_sort
    from autorun_cli.providers.base import ListQuery
    from autorun_cli.status import parse_status_list
    from autorun_cli.timeutil import parse_when

    try:
        since_dt = parse_when(since) if since else None
        until_dt = parse_when(until) if until else None
    except ValueError as exc:
        raise UsageError(str(exc), hint="e.g. --since 2h, --since 2026-06-01, --until 2026-06-08T14:00:00Z") from None
    query = ListQuery(
        statuses=parse_status_list(status),
        uuids=_split(uuid),
        client_uuids=_split(client_uuids),
        since=since_dt,
        until=until_dt,
        sort=parse_sort(sort),
        limit=None if all_ else limit,
    )
    with Session(opts) as s:
        query.automation = s.settings.automation
        count = s.out.runs(list_runs(s.provider, query), raw=raw)
        if count == 0 and s.out.mode == "table":
            s.out.info("no runs match", style="dim")


def show_cmd(
    opts: Opts,
    ids: Annotated[list[str], typer.Argument(metavar="ID", help="Run IDs, or @latest for the newest run.", show_default=False)],
    raw: Annotated[bool, typer.Option("--raw", help="Add the vendor's own document as `raw`.")] = False,
    svg: Annotated[Path | None, typer.Option("--svg", metavar="FILE", help="Also save the human view as SVG (e.g. a CI artifact).", dir_okay=False, show_default=False)] = None,
    html: Annotated[Path | None, typer.Option("--html", metavar="FILE", help="Also save the human view as HTML.", dir_okay=False, show_default=False)] = None,
) -> None:
    """Show runs in full: header, step timeline, waits, messages, logs, error and a hint.

    Several IDs are fetched concurrently (AUTORUN_CONCURRENCY, default 32).
    --svg/--html save the same view as a file; stdout is unchanged.
    """
    from autorun_cli.fetch import fetch_runs

    with Session(opts) as s:
        if s.out.mode == "json" and len(ids) == 1 and svg is None and html is None:
            # One run as JSON, the form scripts poll: no model needed where the
            # provider can answer with the document directly.
            from autorun_cli.fetch import resolve_id

            run_id = resolve_id(s.provider, ids[0], s.settings.automation)
            s.out.print_json(s.provider.get_run_document(run_id, raw=raw))
            return
        runs, errors = fetch_runs(s.provider, ids, concurrency=_concurrency(), automation=s.settings.automation)
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


def _concurrency() -> int:
    from autorun_cli.errors import UsageError
    from autorun_cli.fetch import DEFAULT_CONCURRENCY

    raw = os.environ.get("AUTORUN_CONCURRENCY", str(DEFAULT_CONCURRENCY))
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"AUTORUN_CONCURRENCY={raw!r} is not a number", hint=f"set it to a whole number, e.g. {DEFAULT_CONCURRENCY}") from None
    if value < 1:
        raise UsageError(f"AUTORUN_CONCURRENCY={raw!r} must be at least 1", hint=f"set it to a whole number, e.g. {DEFAULT_CONCURRENCY}")
    return value


def register(app: typer.Typer, name: str) -> None:
    app.command(name)(common(list_cmd if name == "list" else show_cmd))
