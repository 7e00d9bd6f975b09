"""A scripted provider for CLI tests: ``get_run`` walks through a list of states.

Tests set the class attributes (``FakeProvider.reset(...)``) and register the class
with :func:`register`; a subprocess (the tmux test) gets its script from the JSON
file named by ``AUTORUN_FAKE_SCRIPT`` instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from autorun_cli.errors import NotFoundError, ServiceError
from autorun_cli.model import Run
from autorun_cli.providers.base import EventRequest, ListQuery, Provider

SCRIPT_ENV = "AUTORUN_FAKE_SCRIPT"


def run_doc(run_id: str, status: str, steps: list[tuple[str, str]] | None = None, **extra: Any) -> dict[str, Any]:
    """A normalized run document with ``steps`` given as (key, status) pairs."""
    return {
        "id": run_id,
        "provider": "fake",
        "name": f"Run {run_id}",
        "status": status,
        "provider_status": status,
        "started_at": "2026-06-08T14:00:00Z",
        "steps": [{"id": f"{run_id}-{key}", "key": key, "type": "task", "status": st} for key, st in (steps or [])],
        **extra,
    }


class FakeProvider(Provider):
    name = "fake"
    uses_http = False

    # run id → the states get_run returns in turn; the last one repeats.
    scripts: dict[str, list[dict[str, Any]]] = {}
    # retry of run A answers with run B (get_run of B); default: A itself.
    retry_to: dict[str, str] = {}
    event_answer: Any = {}
    # Every call in order: ("tick",), ("get", id), ("retry", id), ("cancel", id), ("event", request).
    calls: list[tuple[Any, ...]] = []
    _positions: dict[str, int] = {}

    @classmethod
    def reset(cls, scripts: dict[str, list[dict[str, Any]]] | None = None, **attrs: Any) -> None:
        cls.scripts = dict(scripts or {})
        cls.retry_to = {}
        cls.event_answer = {}
        cls.calls = []
        cls._positions = {}
        for key, value in attrs.items():
            setattr(cls, key, value)

    @classmethod
    def load_env_script(cls) -> None:
        path = os.environ.get(SCRIPT_ENV)
        if path:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
            cls.reset(doc.get("runs", {}), retry_to=doc.get("retry_to", {}), event_answer=doc.get("event_answer", {}))

    def ops(self, name: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == name]

    def iter_runs(self, query: ListQuery) -> Iterator[Run]:
        for run_id in self.scripts:
            yield self.get_run(run_id)

    def tick(self) -> None:
        self.calls.append(("tick",))

    def get_run(self, run_id: str) -> Run:
        self.calls.append(("get", run_id))
        states = self.scripts.get(run_id)
        if not states:
            raise NotFoundError(f"no fake run {run_id!r}", hint="script it in FakeProvider.scripts")
        pos = self._positions.get(run_id, 0)
        self._positions[run_id] = pos + 1
        state = states[min(pos, len(states) - 1)]
        if "__outage__" in state:  # a poll that fails as an unreachable API would
            raise ServiceError(state["__outage__"], hint="try again later", code="connection")
        if "__gone__" in state:  # the run was deleted meanwhile
            raise NotFoundError(f"no fake run {run_id!r}", hint="it was deleted")
        return Run.model_validate(state)

    def retry(self, run: Run) -> Run:
        self.calls.append(("retry", run.id))
        return self.get_run(self.retry_to.get(run.id, run.id))

    def cancel(self, run: Run) -> Run:
        self.calls.append(("cancel", run.id))
        return run.model_copy(update={"status": "cancelled", "provider_status": "cancelled"})

    def send_event(self, event: EventRequest) -> dict[str, Any]:
        self.calls.append(("event", event))
        return self.event_answer


def outage(message: str = "could not reach api.example.test: [Errno 111] Connection refused") -> dict[str, Any]:
    """A scripted state in which ``get_run`` fails like an API that is down."""
    return {"__outage__": message}


GONE: dict[str, Any] = {"__gone__": True}


def register(monkeypatch: Any = None) -> None:
    """Make ``--provider fake`` resolve to :class:`FakeProvider`."""
    from autorun_cli import providers

    target = f"{FakeProvider.__module__}:FakeProvider"
    if monkeypatch is not None:
        monkeypatch.setitem(providers.REGISTRY, "fake", target)
        monkeypatch.setattr(providers, "NAMES", tuple(providers.REGISTRY))
    else:
        providers.REGISTRY["fake"] = target
        providers.NAMES = tuple(providers.REGISTRY)
