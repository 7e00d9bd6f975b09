"""The built-in engine as a provider: runs come from the local store, no network.

Opening the provider opens the store in ``$AUTORUN_HOME`` and fires whatever timers
and retries are due, so every command that reads local runs also moves them on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from autorun_cli.providers.base import EventRequest, ListQuery, Provider, Settings
from autorun_cli.status import RETRYABLE, WAIT_STATUSES

if TYPE_CHECKING:
    from autorun_cli.engine import Engine
    from autorun_cli.model import Run

PAGE = 500


def _who() -> str:
    """Who asked, for the run's log: the OS user and this host."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _pick(src: dict[str, Any] | None, *keys: str) -> dict[str, Any]:
    src = src or {}
    return {k: src.get(k) for k in keys}


def run_document(doc: dict[str, Any]) -> dict[str, Any]:
    """An engine run dict (``Engine.get_run`` / ``list_runs``) → the normalized JSON.

    Plain dicts, so ``show -o json`` on local runs needs no pydantic at all; the keys
    and their order are those of :meth:`autorun_cli.model.Run.to_json` (a test holds
    the two equal).
    """
    trigger, identity, error = doc.get("trigger"), doc.get("identity"), doc.get("error")
    return {
        "id": doc["id"],
        "provider": "local",
        "name": doc.get("name"),
        "automation_id": doc.get("automation_id"),
        "status": doc.get("status") or "unknown",
        "provider_status": doc.get("status"),
        "trigger": _pick(trigger, "event", "payload", "occurred_at", "id") if trigger else None,
        "identity": {**_pick(identity, "type", "value"), "id": None, "name": None} if identity else None,
        "created_at": doc.get("created_at"),
        "updated_at": doc.get("updated_at"),
        "started_at": doc.get("started_at"),
        "finished_at": doc.get("finished_at"),
        "duration_ms": doc.get("duration_ms"),
        "steps": [
            {
                **_pick(s, "id", "key", "name", "type"),
                "status": s.get("status") or "unknown",
                "provider_status": s.get("status"),
                **_pick(s, "started_at", "finished_at", "duration_ms", "info", "error", "branch", "attempt"),
            }
            for s in doc.get("steps") or ()
        ],
        "current_step": doc.get("current_step"),
        "waits": [
            {
                **_pick(w, "id", "step_key", "event"),
                # waiting/received/timed_out, and "cancelled" for the open wait of a
                # run that was cancelled or force-retried.
                "status": w.get("status") if w.get("status") in WAIT_STATUSES else "unknown",
                **_pick(w, "timeout_at", "resumed_at", "timed_out_at", "branch", "resumed_by_event"),
            }
            for w in doc.get("waits") or ()
        ],
        "messages": [_pick(m, "id", "channel", "step_key", "title", "status", "created_at", "to") for m in doc.get("messages") or ()],
        "logs": [_pick(entry, "timestamp", "level", "message", "step_index", "metadata", "previous_attempt") for entry in doc.get("logs") or ()],
        "error": _pick(error, "message", "step", "detail") if error else None,
        "links": {},
        "extra": {"definition_version": doc.get("definition_version"), "attempt": doc.get("attempt")},
    }


def map_run(doc: dict[str, Any]) -> Run:
    """An engine run dict → the normalized model (validated), with ``raw`` kept."""
    from autorun_cli.model import Run

    run = Run.model_validate(run_document(doc))
    run.raw = doc
    return run


class LocalProvider(Provider):
    name = "local"
    uses_http = False
    # The store filters and sorts every field itself.
    server_sorts: ClassVar[frozenset[str]] = frozenset(
        f"{sign}{field}" for sign in ("", "-") for field in ("created_at", "updated_at", "status", "name")
    )
    server_filters: ClassVar[frozenset[str]] = frozenset({"status", "uuid", "automation", "since", "until"})

    def __init__(self, settings: Settings, http: Any = None):
        super().__init__(settings, http)
        self._engine: Engine | None = None
        self._pages = 0

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from autorun_cli.engine import Engine

            self._engine = Engine.connect(self.settings.engine_url, home=self.settings.home)
            self._engine.work()  # due timers and retries move on whenever the store is opened
        return self._engine

    @property
    def pages_read(self) -> int:
        return self._pages

    def _full_pages(self, query: ListQuery) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            size = PAGE if query.limit is None else min(PAGE, query.limit - offset)
            if size <= 0:
                return
            page = self.engine.list_runs(
                statuses=query.statuses or None,
                automation=query.automation,
                since=query.since,
                until=query.until,
                ids=query.uuids or None,
                sort=query.sort,
                limit=size,
                offset=offset,
                # Full runs, so `list -o ndjson` carries the timeline like `show` does.
                full=True,
            )
            self._pages += 1
            yield from page
            if len(page) < size:
                return
            offset += len(page)

    def iter_runs(self, query: ListQuery) -> Iterator[Run]:
        for doc in self._full_pages(query):
            yield map_run(doc)

    def iter_run_documents(self, query: ListQuery) -> Iterator[dict[str, Any]]:
        # No model: `stats` over 100,000 runs must not pay for validating each one.
        return (run_document(doc) for doc in self._full_pages(query))

    def get_run(self, run_id: str) -> Run:
        return map_run(self.engine.get_run(run_id))

    def get_run_document(self, run_id: str, raw: bool = False) -> dict[str, Any]:
        doc = self.engine.get_run(run_id)
        out = run_document(doc)
        if raw:
            out["raw"] = doc
        return out

    def latest_id(self, query: ListQuery) -> str | None:
        page = self.engine.list_runs(automation=query.automation, sort="-created_at", limit=1)
        return page[0]["id"] if page else None

    def tick(self) -> None:
        self.engine.work()

    def retry(self, run: Run) -> Run:
        # The CLI refused a run that is not failed/cancelled/timed out unless --force.
        new_id = self.engine.retry(run.id, force=run.status not in RETRYABLE, by=_who())
        return self.get_run(new_id)

    def retry_from(self, run: Run, step_key: str) -> Run:
        """Start the run again at ``step_key``: the steps before keep their results."""
        new_id = self.engine.retry(run.id, force=run.status not in RETRYABLE, from_step=step_key, by=_who())
        return self.get_run(new_id)

    def cancel(self, run: Run) -> Run:
        return self.get_run(self.engine.cancel(run.id))

    def send_event(self, event: EventRequest) -> dict[str, Any]:
        identity = event.email or event.external_id or event.contact_id
        dispatch = self.engine.send_event(
            event.event,
            event.payload,
            event_id=event.idempotency_key,
            identity=identity,
            occurred_at=event.occurred_at,
        )
        return {
            "event": event.event,
            "event_id": dispatch.event_id,
            "deduplicated": dispatch.duplicate,
            "resumed": list(dispatch),
        }

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
