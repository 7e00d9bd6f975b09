"""Recorded runs from what the user names, and what a replay must re-inject."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from autorun_cli.errors import UsageError
from autorun_cli.model import Run
from autorun_cli.timeutil import parse_ts

if TYPE_CHECKING:
    from autorun_cli.providers.base import Provider


def is_normalized(doc: Any) -> bool:
    return isinstance(doc, dict) and {"id", "provider", "status", "steps"} <= doc.keys()


def to_run(doc: Any, origin: str) -> Run:
    """A normalized run (``show -o json``, with or without ``--raw``) or any
    provider's own run document."""
    from pydantic import ValidationError

    from autorun_cli.providers import REGISTRY, provider_class

    if is_normalized(doc):
        body = {k: v for k, v in doc.items() if k != "raw"}
        try:
            run = Run.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise UsageError(
                f"{origin}: not a valid autorun run document ({where}: {first.get('msg')})",
                hint="write it with `autorun show ID -o json > run.json`",
            ) from None
        run.raw = doc.get("raw")
        return run
    for name in REGISTRY:
        cls = provider_class(name)
        if cls.recognizes(doc):
            return cls.map_document(doc)
    raise UsageError(
        f"{origin}: not a run document autorun knows (neither `show -o json` output nor a plannr, sendrealm, tenant or generic run)",
        hint="write one with `autorun show ID -o json > run.json`, or pass a run ID",
    )


def _docs_from_text(text: str, origin: str) -> list[Any]:
    text = text.strip()
    if not text:
        raise UsageError(f"{origin} is empty", hint="pass a JSON run document, or ndjson with one run per line")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as whole:
        docs = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                docs.append(json.loads(line))
            except json.JSONDecodeError as exc:
                err = whole if n == 1 else exc
                raise UsageError(
                    f"{origin}{':' + str(n) if n > 1 else ''} is not valid JSON: {err.msg} (line {err.lineno if n == 1 else n}, column {err.colno})",
                    hint="pass a file written by `autorun show ID -o json`, or ndjson from `autorun list -o ndjson`",
                ) from None
        return docs
    if isinstance(doc, list):
        return doc
    # A saved list response ({"data": [...]}, Laravel or cursor pages) holds many runs.
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        return doc["data"]
    return [doc]


def load_docs(source: str, stdin: IO[str] | None = None) -> Iterator[Run]:
    """Runs from ``-`` (ndjson or JSON on stdin) or a file. Not for run IDs."""
    if source == "-":
        import sys

        stream = stdin or sys.stdin
        for n, line in enumerate(stream, 1):
            if line.strip():
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UsageError(
                        f"stdin line {n} is not valid JSON: {exc.msg}",
                        hint="pipe ndjson, e.g. `autorun list --all -o ndjson --raw | autorun replay - --definition FILE`",
                    ) from None
                for item in doc if isinstance(doc, list) else [doc]:
                    yield to_run(item, f"stdin line {n}")
        return
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {source}: {getattr(exc, 'strerror', None) or exc}", hint="check the path") from None
    for doc in _docs_from_text(text, source):
        yield to_run(doc, source)


def recorded_runs(source: str, provider: Callable[[], Provider], automation: str | None = None) -> list[Run]:
    """The runs ``source`` names: ``-`` (ndjson on stdin), a JSON file, or a run ID
    (``@latest`` too) of the provider ``provider()`` returns (asked only for an ID)."""
    if looks_like_file(source):
        runs = list(load_docs(source))
        if not runs:
            raise UsageError(f"{'stdin' if source == '-' else source} holds no runs", hint="pass ndjson from `autorun list -o ndjson --raw`")
        return runs
    from autorun_cli.fetch import resolve_id

    p = provider()
    return [p.get_run(resolve_id(p, source, automation))]


def looks_like_file(source: str) -> bool:
    return source == "-" or source.endswith((".json", ".ndjson", ".jsonl")) or "/" in source or Path(source).is_file()


@dataclass
class InboundEvent:
    offset_s: float
    event: str
    event_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    step_key: str | None = None


@dataclass
class ReplayInput:
    """What the recorded run received from outside, in time order."""

    trigger_event: str | None
    payload: Any
    identity_type: str | None
    identity_value: str | None
    started_at: datetime
    events: list[InboundEvent]


def replay_input(run: Run) -> ReplayInput:
    # When the run started, not when its event says it happened: a backfilled event
    # (`trigger --occurred-at`) starts its run later, and the waits count from then.
    t0 = (
        parse_ts(run.started_at)
        or parse_ts(run.trigger.occurred_at if run.trigger else None)
        or parse_ts(run.created_at)
        or datetime(2026, 1, 1, tzinfo=UTC)
    )
    events: list[InboundEvent] = []
    for wait in run.waits:
        if wait.status != "received":
            continue
        by = wait.resumed_by_event or {}
        when = parse_ts(by.get("occurred_at")) or parse_ts(wait.resumed_at)
        if when is None:
            continue
        given = by.get("payload")
        payload: dict[str, Any] = given if isinstance(given, dict) else {}
        events.append(
            InboundEvent(
                offset_s=max(0.0, (when - t0).total_seconds()),
                event=by.get("event_name") or by.get("event") or wait.event or "",
                event_id=by.get("id"),
                payload=payload,
                step_key=wait.step_key,
            )
        )
    events.sort(key=lambda e: e.offset_s)
    return ReplayInput(
        trigger_event=run.trigger.event if run.trigger else None,
        payload=run.trigger.payload if run.trigger and run.trigger.payload is not None else {},
        identity_type=run.identity.type if run.identity else None,
        identity_value=run.identity.value if run.identity else None,
        started_at=t0,
        events=events,
    )
