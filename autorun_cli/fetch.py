"""Work on several runs concurrently (bounded), keeping the order asked for.

``show ID…`` fetches through :func:`fetch_runs`; ``retry``/``cancel`` on many runs
act through :func:`map_bounded`. Both size their pool with :func:`concurrency`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

from autorun_cli.errors import AutorunError, NotFoundError

if TYPE_CHECKING:
    from autorun_cli.model import Run
    from autorun_cli.providers.base import Provider

LATEST = "@latest"
# Runs fetched at once by `show ID…` unless AUTORUN_CONCURRENCY says otherwise.
DEFAULT_CONCURRENCY = 32

T = TypeVar("T")
R = TypeVar("R")


def concurrency() -> int:
    """AUTORUN_CONCURRENCY (default 32); a bad value is a usage error (exit 2)."""
    from autorun_cli.errors import UsageError

    raw = os.environ.get("AUTORUN_CONCURRENCY", str(DEFAULT_CONCURRENCY))
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"AUTORUN_CONCURRENCY={raw!r} is not a number", hint=f"set it to a whole number, e.g. {DEFAULT_CONCURRENCY}") from None
    if value < 1:
        raise UsageError(f"AUTORUN_CONCURRENCY={raw!r} must be at least 1", hint=f"set it to a whole number, e.g. {DEFAULT_CONCURRENCY}")
    return value


def map_bounded(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``fn`` over ``items`` on at most ``workers`` threads; results in the items'
    order, each as soon as it and those before it are done. ``fn`` should return
    its failures rather than raise them."""
    todo = list(items)
    if len(todo) <= 1 or workers <= 1:
        yield from (fn(item) for item in todo)
        return
    from concurrent.futures import ThreadPoolExecutor  # not for the one-run case

    pool = ThreadPoolExecutor(max_workers=min(workers, len(todo)))
    try:
        yield from pool.map(fn, todo)
    finally:
        # Ctrl-C (or a reader that stops early): drop what has not started yet
        # rather than working through the rest of a 500-run batch first.
        pool.shutdown(wait=True, cancel_futures=True)


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

    results = list(map_bounded(one, resolved, concurrency))
    runs = [r for r in results if not isinstance(r, AutorunError)]
    errors = [r for r in results if isinstance(r, AutorunError)]
    return runs, errors
