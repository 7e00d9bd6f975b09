"""Work on several runs concurrently (bounded), keeping the order asked for.

``show ID…`` fetches through :func:`fetch_runs`; ``retry``/``cancel`` on many runs
act through :func:`map_bounded`. Both size their pool with :func:`concurrency`.
"""

from __future__ import annotations

import itertools
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
    its failures rather than raise them.

    Streams: ``items`` is read as results are taken, with at most twice ``workers``
    items in flight or waiting to be taken, so a listing of any length can feed it
    (``stats --all``) while memory stays flat.
    """
    it = iter(items)
    head = list(itertools.islice(it, 2))
    if len(head) <= 1 or workers <= 1:
        yield from (fn(item) for item in itertools.chain(head, it))
        return
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor  # not for the one-run case

    pool = ThreadPoolExecutor(max_workers=workers)
    window: deque[Future[R]] = deque(pool.submit(fn, item) for item in head)
    try:
        for item in it:
            window.append(pool.submit(fn, item))
            if len(window) >= 2 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
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
    provider: Provider,
    ids: list[str],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    automation: str | None = None,
    progress: Callable[[Iterator[Run | AutorunError]], Iterator[Run | AutorunError]] | None = None,
) -> tuple[list[Run], list[AutorunError]]:
    """Every ID is validated before the first request; failures are returned in order.
    ``progress`` wraps the stream of results (a progress bar counts them)."""
    checked = [provider.validate_id(i) if i != LATEST else i for i in ids]
    resolved = [resolve_id(provider, i, automation) for i in checked]
    results = iter_fetch(provider, resolved, concurrency=concurrency)
    if progress is not None:
        results = progress(results)
    runs: list[Run] = []
    errors: list[AutorunError] = []
    for r in results:
        if isinstance(r, AutorunError):
            errors.append(r)
        else:
            runs.append(r)
    return runs, errors


def iter_fetch(provider: Provider, ids: Iterable[str], *, concurrency: int = DEFAULT_CONCURRENCY) -> Iterator[Run | AutorunError]:
    """Each run of ``ids`` in full, in the order given, ``concurrency`` at a time,
    streamed (see :func:`map_bounded`). A failure to read one run is yielded in its place."""

    def one(run_id: str) -> Run | AutorunError:
        try:
            return provider.get_run(run_id)
        except AutorunError as exc:
            return exc

    return map_bounded(one, ids, concurrency)
