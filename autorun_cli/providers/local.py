"""The built-in engine as a provider: runs come from the local store, no network."""

from __future__ import annotations

from collections.abc import Iterator

from autorun_cli.errors import NotFoundError
from autorun_cli.model import Run
from autorun_cli.providers.base import ListQuery, Provider


class LocalProvider(Provider):
    name = "local"
    uses_http = False

    def iter_runs(self, query: ListQuery) -> Iterator[Run]:
        return iter(())

    def get_run(self, run_id: str) -> Run:
        raise NotFoundError(f"no local run {run_id!r}", hint="start one with `autorun demo` or `autorun trigger EVENT`")
