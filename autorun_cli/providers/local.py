"""The built-in engine as a provider: runs come from the local store, no network.

Opening the provider opens the store in ``$AUTORUN_HOME`` and fires whatever timers
and retries are due, so every command that reads local runs also moves them on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from autorun_cli.model import Identity, LogEntry, Message, Run, RunError, Step, Trigger, Wait
from autorun_cli.providers.base import EventRequest, ListQuery, Provider, Settings
from autorun_cli.status import RETRYABLE, WAIT_STATUSES

if TYPE_CHECKING:
    from autorun_cli.engine import Engine

PAGE = 500


def map_run(doc: dict[str, Any]) -> Run:
    """An engine run dict (``Engine.get_run`` / ``list_runs``) → the normalized model."""
    trigger = doc.get("trigger") or {}
    identity = doc.get("identity") or {}
    error = doc.get("error")
    return Run(
        id=doc["id"],
        provider="local",
        name=doc.get("name"),
        automation_id=doc.get("automation_id"),
        status=doc.get("status") or "unknown",
        provider_status=doc.get("status"),
        trigger=Trigger(
            event=trigger.get("event"),
            payload=trigger.get("payload"),
            occurred_at=trigger.get("occurred_at"),
            id=trigger.get("id"),
        )
        if trigger
        else None,
        identity=Identity(type=identity.get("type"), value=identity.get("value")) if identity else None,
        created_at=doc.get("created_at"),
        updated_at=doc.get("updated_at"),
        started_at=doc.get("started_at"),
        finished_at=doc.get("finished_at"),
        duration_ms=doc.get("duration_ms"),
        steps=[
            Step(
                id=s.get("id"),
                key=s.get("key"),
                name=s.get("name"),
                type=s.get("type"),
                status=s.get("status") or "unknown",
                provider_status=s.get("status"),
                started_at=s.get("started_at"),
                finished_at=s.get("finished_at"),
                duration_ms=s.get("duration_ms"),
                info=s.get("info"),
                error=s.get("error"),
                branch=s.get("branch"),
                attempt=s.get("attempt"),
            )
            for s in doc.get("steps") or ()
        ],
        current_step=doc.get("current_step"),
        waits=[
            Wait(
                id=w.get("id"),
                step_key=w.get("step_key"),
                event=w.get("event"),
                # The contract knows waiting/received/timed_out; the engine also
                # marks the waits of cancelled runs "cancelled".
                status=w.get("status") if w.get("status") in WAIT_STATUSES else "unknown",
                timeout_at=w.get("timeout_at"),
                resumed_at=w.get("resumed_at"),
                timed_out_at=w.get("timed_out_at"),
                branch=w.get("branch"),
                resumed_by_event=w.get("resumed_by_event"),
            )
            for w in doc.get("waits") or ()
        ],
        messages=[
            Message(
                id=m.get("id"),
                channel=m.get("channel"),
                step_key=m.get("step_key"),
                title=m.get("title"),
                status=m.get("status"),
                created_at=m.get("created_at"),
                to=m.get("to"),
            )
            for m in doc.get("messages") or ()
        ],
        logs=[
            LogEntry(timestamp=entry.get("timestamp"), level=entry.get("level"), message=entry.get("message"), step_index=entry.get("step_index"))
            for entry in doc.get("logs") or ()
        ],
        error=RunError(message=error.get("message"), step=error.get("step"), detail=error.get("detail")) if error else None,
        links={},
        extra={"definition_version": doc.get("definition_version"), "attempt": doc.get("attempt")},
        raw=doc,
    )


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

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from autorun_cli.engine import Engine

            self._engine = Engine.open(self.settings.home)
            self._engine.work()  # due timers and retries move on whenever the store is opened
        return self._engine

    def iter_runs(self, query: ListQuery) -> Iterator[Run]:
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
            for doc in page:
                yield map_run(doc)
            if len(page) < size:
                return
            offset += len(page)

    def get_run(self, run_id: str) -> Run:
        return map_run(self.engine.get_run(run_id))

    def latest_id(self, query: ListQuery) -> str | None:
        page = self.engine.list_runs(automation=query.automation, sort="-created_at", limit=1)
        return page[0]["id"] if page else None

    def tick(self) -> None:
        self.engine.work()

    def retry(self, run: Run) -> Run:
        # The CLI refused a run that is not failed/cancelled/timed out unless --force.
        new_id = self.engine.retry(run.id, force=run.status not in RETRYABLE)
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
