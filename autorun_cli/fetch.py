"""Fetch several runs concurrently (bounded), keeping the order asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autorun_cli.errors import AutorunError, NotFoundError

if TYPE_CHECKING:
    from autorun_cli.model import Run
    from autorun_cli.providers.base import Provider

LATEST = "@latest"
# Runs fetched at once by `show ID…` unless AUTORUN_CONCURRENCY says otherwise.
DEFAULT_CONCURRENCY = 32


def resolve_id(provider: Provider, run_id: str, automation: str | None = None) -> str:
    if run_id != LATEST:
        return provider.validate_id(run_id)
    from autorun_cli.providers.base import ListQuery

    latest = provider.latest_id(ListQuery(automation=automation, limit=1))
    if latest is None:
        raise NotFoundError("there are no runs, so @latest names none", hint="check the provider and --automation; `autorun list` shows what exists")
    return latest


def fetch_runs(
    provider: Provider, ids: list[str], *, concurrency: int = DEFAULT_CONCURRENCY, automation: str | None = None
) -> tuple[list[Run], list[AutorunError]]:
    """Every ID is validated before the first request; failures are returned in order."""
    checked = [provider.validate_id(i) if i != LATEST else i for i in ids]
    resolved = [resolve_id(provider, i, automation) for i in checked]

    def one(run_id: str) -> Run | AutorunError:
        try:
            return provider.get_run(run_id)
        except AutorunError as exc:
            return exc

    if len(resolved) == 1 or concurrency <= 1:
        results = [one(i) for i in resolved]
    else:
        from concurrent.futures import ThreadPoolExecutor  # not for the one-run case

        with ThreadPoolExecutor(max_workers=min(concurrency, len(resolved))) as pool:
            results = list(pool.map(one, resolved))
    runs = [r for r in results if not isinstance(r, AutorunError)]
    errors = [r for r in results if isinstance(r, AutorunError)]
    return runs, errors
