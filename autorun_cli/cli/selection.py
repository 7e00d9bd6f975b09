"""``list``'s selection flags, declared once: ``list`` shows the runs they choose,
``retry`` and ``cancel`` act on them.

Nothing here imports rich, httpx or pydantic: it loads with the commands' options.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from autorun_cli.cli.completing import complete_status

if TYPE_CHECKING:
    from autorun_cli.providers.base import ListQuery

FILTERS = "Filters"

StatusOpt = Annotated[
    str | None,
    typer.Option("--status", metavar="STATUS[,…]", autocompletion=complete_status, help="Only these statuses, comma-separated (pending, running, waiting, completed, failed, cancelled, timed_out, skipped, unknown).", rich_help_panel=FILTERS, show_default=False),
]
SinceOpt = Annotated[
    str | None,
    typer.Option("--since", metavar="WHEN", help="Only runs created since: a duration ago (2h, 3d) or an ISO time.", rich_help_panel=FILTERS, show_default=False),
]
UntilOpt = Annotated[
    str | None,
    typer.Option("--until", metavar="WHEN", help="Only runs created until: a duration ago or an ISO time.", rich_help_panel=FILTERS, show_default=False),
]
# At most a million: beyond that, --all (a bigger number would end in islice's error).
LIMIT_MAX = 1_000_000
LimitOpt = Annotated[int, typer.Option("--limit", "-n", metavar="N", help="At most this many runs (1 to 1000000; more: --all).", min=1, max=LIMIT_MAX)]
# For retry/cancel: None when not given, so a selection is told apart from no flags.
LimitOrNoneOpt = Annotated[
    int | None,
    typer.Option("--limit", "-n", metavar="N", help="At most this many runs (default 20; 1 to 1000000).", min=1, max=LIMIT_MAX, rich_help_panel=FILTERS, show_default=False),
]
AllOpt = Annotated[bool, typer.Option("--all", help="Every run, reading every page (overrides --limit).")]


def split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def build_query(
    *,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int | None = 20,
    all_: bool = False,
    sort: str = "-created_at",
    uuid: str | None = None,
    client_uuids: str | None = None,
    default_statuses: list[str] | None = None,
) -> ListQuery:
    """The ListQuery the flags describe; bad values are usage errors (exit 2).

    ``default_statuses`` apply when ``--status`` is not given (retry: the runs that
    can be retried)."""
    from autorun_cli.cli.values import when
    from autorun_cli.listing import parse_sort
    from autorun_cli.providers.base import ListQuery
    from autorun_cli.status import parse_status_list

    since_dt = when(since, "--since") if since else None
    until_dt = when(until, "--until") if until else None
    statuses = parse_status_list(status)
    return ListQuery(
        statuses=statuses or list(default_statuses or []),
        uuids=split(uuid),
        client_uuids=split(client_uuids),
        since=since_dt,
        until=until_dt,
        sort=parse_sort(sort),
        limit=None if all_ else limit,
    )
