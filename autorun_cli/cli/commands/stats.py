"""``autorun stats``: which step fails, how slow, which waits time out, over many runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from autorun_cli.cli.options import Opts, common
from autorun_cli.cli.selection import LIMIT_MAX, AllOpt, SinceOpt, StatusOpt, UntilOpt
from autorun_cli.cli.session import Session

if TYPE_CHECKING:
    from autorun_cli.cli.progress import Progress
    from autorun_cli.errors import AutorunError
    from autorun_cli.providers.base import ListQuery, Provider

def read_runs(
    provider: Provider, query: ListQuery, *, concurrency: int, progress: Progress, errors: list[AutorunError]
) -> Iterator[dict[str, Any]]:
    """The runs ``query`` selects, each in full as normalized JSON, streamed.

    Where the listing holds whole runs (local) it is read page by page; elsewhere each
    listed run is fetched with show's bounded concurrent fetch while the listing goes
    on. A run that cannot be read is kept in ``errors``.
    """
    from autorun_cli.errors import AutorunError

    def pages() -> str:
        n = provider.pages_read
        return f"· {n:,} page{'s' if n != 1 else ''}"

    whole = provider.iter_run_documents(query)
    if whole is not None:
        yield from progress.track(whole, note=pages)
        return
    from autorun_cli.fetch import iter_fetch
    from autorun_cli.listing import list_runs, select

    if query.limit is None:
        # Every run: order does not matter, so nothing is buffered to sort.
        listed = select(provider.iter_runs(query), query, server_sorted=True, server_filters=provider.server_filters)
    else:
        listed = list_runs(provider, query)
    for result in progress.track(iter_fetch(provider, (r.id for r in listed), concurrency=concurrency), note=pages):
        if isinstance(result, AutorunError):
            errors.append(result)
        else:
            yield result.to_json()


def stats_cmd(
    opts: Opts,
    status: StatusOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", help="The newest this many runs (1 to 1000000; more: --all).", min=1, max=LIMIT_MAX)] = 200,
    all_: AllOpt = False,
) -> None:
    """Aggregate over runs: counts by status, run durations, per step the failure
    rate and p50/p95 durations, wait outcomes and the most frequent errors.

    Selects runs as `list` does (--automation, --status, --since, --until, --limit,
    --all) and reads each in full, concurrently (AUTORUN_CONCURRENCY, default 32).
    Percentiles are nearest-rank over the durations that exist; a retried step
    counts once per run, by its last attempt.
    """
    from autorun_cli.cli.progress import Progress
    from autorun_cli.cli.selection import build_query
    from autorun_cli.fetch import concurrency as configured_concurrency
    from autorun_cli.stats import Stats

    query = build_query(status=status, since=since, until=until, limit=limit, all_=all_)
    concurrency = configured_concurrency()
    with Session(opts) as s:
        query.automation = s.settings.automation
        errors: list[AutorunError] = []
        stats = Stats()
        from autorun_cli.replay.runner import paused_gc

        # Counters and flat arrays only: the cyclic GC would walk every parsed run for nothing.
        with Progress("reading runs", total=None if all_ else limit, color=s.out.color) as progress, paused_gc():
            stats.add_all(read_runs(s.provider, query, concurrency=concurrency, progress=progress, errors=errors))
        doc = stats.to_json()
        if s.out.mode == "table":
            from autorun_cli.render.stats import stats_view

            s.out.out.print(stats_view(doc, s.out.time_format, width=s.out.out.width))
        else:
            s.out.data(doc, ids=lambda d: [e["last_run_id"] for e in d["errors"] if e["last_run_id"]])
        if stats.runs == 0 and not errors:
            s.out.info("note: no runs match, so every figure is zero; widen the selection (--since, --status, --automation, --all)", style="dim")
        if stats.errors_ungrouped:
            s.out.warn(f"{stats.errors_ungrouped} runs had error messages beyond the first {len(doc['errors'])} distinct ones; they are not in errors")
        if errors:
            from autorun_cli.cli.output import report_error

            # The figures are on stdout already; each failure is an error line on
            # stderr (the first five), and the exit code is the first's.
            s.out.warn(f"{len(errors)} run(s) could not be read and are not counted")
            for err in errors[:5]:
                report_error(err, "table")
            raise typer.Exit(errors[0].exit_code)


def register(app: typer.Typer, name: str = "stats") -> None:
    app.command("stats")(common(stats_cmd))
