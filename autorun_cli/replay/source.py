"""Recorded runs from what the user names, and what a replay must re-inject."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from autorun_cli.errors import UsageError, plain_words
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
                f"{origin}: not a valid autorun run document ({where}: {plain_words(str(first.get('msg')))})",
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


_NOT_JSON_HINT = "pass a file written by `autorun show ID -o json`, or ndjson from `autorun list -o ndjson`"
_TOO_BIG_HINT = (
    "replay fewer runs at once: split the ndjson (e.g. `split -l 10000 runs.ndjson part-`) "
    "or select fewer with `autorun list`"
)


def read_text(source: str, stdin: IO[str] | None = None) -> str:
    """All of a file of recorded runs, or of stdin for ``-``, bounded (``inputs``)."""
    from autorun_cli import inputs

    return inputs.read_text(source, stdin, what="recorded runs", hint=_TOO_BIG_HINT)


def _decode(text: str, origin: str) -> Any:
    """One JSON document from outside; nesting deeper than any run document (a
    100,000-deep array) is refused as bad input (exit 2) naming where it came from."""
    from autorun_cli import jsondoc

    try:
        return jsondoc.loads(text)
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # jsondoc.DocumentError: too deep
        raise UsageError(f"{origin} is not a run document: {exc}", hint=_NOT_JSON_HINT) from None


def _docs_from_text(text: str, origin: str) -> list[Any]:
    text = text.strip()
    if not text:
        raise UsageError(f"{origin} is empty", hint="pass a JSON run document, or ndjson with one run per line")
    try:
        doc = _decode(text, origin)
    except json.JSONDecodeError as whole:
        docs = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                docs.append(_decode(line, f"{origin}:{n}"))
            except json.JSONDecodeError as exc:
                err = whole if n == 1 else exc
                raise UsageError(
                    f"{origin}{':' + str(n) if n > 1 else ''} is not valid JSON: {err.msg} (line {err.lineno if n == 1 else n}, column {err.colno})",
                    hint=_NOT_JSON_HINT,
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

        from autorun_cli import inputs

        for n, line in inputs.lines(stdin or sys.stdin, what="recorded runs", hint=_TOO_BIG_HINT):
            if line.strip():
                try:
                    doc = _decode(line, f"stdin line {n}")
                except json.JSONDecodeError as exc:
                    raise UsageError(
                        f"stdin line {n} is not valid JSON: {exc.msg}",
                        hint="pipe ndjson, e.g. `autorun list --all -o ndjson --raw | autorun replay - --definition FILE`",
                    ) from None
                for item in doc if isinstance(doc, list) else [doc]:
                    yield to_run(item, f"stdin line {n}")
        return
    for doc in _docs_from_text(read_text(source), source):
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


# The dates a replay's virtual clock can run between: the engine keeps times as
# seconds since 1970, and a run's timeouts reach past its last event.
REPLAYABLE = (datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC))


def _replayable(when: datetime, run: Run, what: str, given: Any) -> datetime:
    if not REPLAYABLE[0] <= when <= REPLAYABLE[1]:
        raise UsageError(
            f"run {run.id}: {what} {given} is outside the dates a replay can run on (years 1970 to 9000)",
            hint="replay a run recorded with real timestamps; `autorun show ID -o json` writes one",
        )
    return when


def replay_input(run: Run) -> ReplayInput:
    # When the run started, not when its event says it happened: a backfilled event
    # (`trigger --occurred-at`) starts its run later, and the waits count from then.
    for what, given in (
        ("its start", run.started_at),
        ("its trigger time", run.trigger.occurred_at if run.trigger else None),
        ("its creation time", run.created_at),
    ):
        t0 = parse_ts(given)
        if t0 is not None:
            _replayable(t0, run, what, given)
            break
    else:
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
    events: list[InboundEvent] = []
    for wait in run.waits:
        if wait.status != "received":
            continue
        by = wait.resumed_by_event or {}
        when = parse_ts(by.get("occurred_at")) or parse_ts(wait.resumed_at)
        if when is None:
            continue
        _replayable(when, run, f"the event that resumed wait {wait.step_key or wait.id} at", by.get("occurred_at") or wait.resumed_at)
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
