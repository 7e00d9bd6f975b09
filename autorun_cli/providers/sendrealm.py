"""Sendrealm automation runs (seed 002).

Paths, parameters and the mapping of Sendrealm's JSON onto the normalized model;
transport, retries and cursor pagination come from :mod:`autorun_cli.http`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

from autorun_cli.errors import BadResponseError, UsageError
from autorun_cli.http import PageSpec, default_error_message, excerpt
from autorun_cli.model import Identity, Message, Run, RunError, Step, Trigger, Wait
from autorun_cli.providers._coerce import as_count
from autorun_cli.providers._coerce import scalar_text as _text
from autorun_cli.providers.base import SAFE_ID_RE, EventRequest, ListQuery, Provider
from autorun_cli.status import RUN_STATUSES, TERMINAL, UNKNOWN, normalize
from autorun_cli.timeutil import duration_ms, parse_ts

# Sendrealm's run and step statuses are the contract's own names (seed 002 shows
# "completed"; the contract's example run is a sendrealm one). No other spelling is
# documented, so none is guessed: anything else is `unknown`, kept in provider_status.
STATUS_TABLE: dict[str, str] = {s: s for s in RUN_STATUSES}

# Wait statuses: seed 002 shows "received"; waiting and timed_out are the contract's.
WAIT_TABLE: dict[str, str] = {s: s for s in ("waiting", "received", "timed_out")}

# Sendrealm filters runs by its own status names, which are the normalized ones.
SERVER_STATUS: dict[str, str] = {s: s for s in RUN_STATUSES}

PAGES = PageSpec(size_param="limit", max_size=100, cursor_param="cursor")

LIST_PATH = "/automations/{automation}/runs"
GET_PATH = "/automation-runs/{id}"
EVENTS_PATH = "/events"


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _compact(value: Any) -> str | None:
    if value is None or value == "" or value == {} or value == []:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _latest(values: list[str | None]) -> str | None:
    """The latest timestamp among ``values``, as the API wrote it."""
    best, best_dt = None, None
    for val in values:
        dt = parse_ts(val)
        if dt is not None and (best_dt is None or dt > best_dt):
            best, best_dt = val, dt
    return best


def _run_error(value: Any) -> RunError | None:
    """``last_error`` / ``error`` as a string or an object → RunError."""
    if value is None or value == "" or value == {}:
        return None
    if isinstance(value, dict):
        message = _text(value.get("message")) or _text(value.get("error")) or _text(value.get("code"))
        step = _text(value.get("step_key")) or _text(value.get("step")) or _text(value.get("step_id"))
        detail = _compact(value.get("details", value.get("detail")))
        code = _text(value.get("code"))
        if detail is None and code and code != message:
            detail = code
        return RunError(message=message or _compact(value), step=step, detail=detail)
    return RunError(message=_compact(value))


def _trigger(doc: dict[str, Any]) -> Trigger | None:
    ev = doc.get("trigger_event")
    name = _text(doc.get("trigger_event_name"))
    if isinstance(ev, dict):
        return Trigger(
            event=_text(ev.get("event_name")) or _text(ev.get("name")) or name,
            payload=ev.get("payload"),
            occurred_at=_text(ev.get("occurred_at")),
            id=_text(ev.get("id")),
        )
    if isinstance(ev, str) and ev:
        return Trigger(event=ev)
    return Trigger(event=name) if name else None


def _identity(doc: dict[str, Any]) -> Identity | None:
    kind = _text(doc.get("resolved_identity_type"))
    value = _text(doc.get("resolved_identity_value"))
    contact = _text(doc.get("contact_id"))
    if not (kind or value or contact):
        return None
    return Identity(type=kind, value=value, id=contact)


def map_wait(raw: dict[str, Any], step_key: str | None = None) -> tuple[Wait, Any]:
    """A wait and, when its status is not one we know, the provider's value."""
    given = raw.get("status")
    known = isinstance(given, str) and given.strip().lower() in WAIT_TABLE
    status = WAIT_TABLE[given.strip().lower()] if known and isinstance(given, str) else UNKNOWN
    if not known:
        # Not a wait status we know (or a run status such as "cancelled"): read it off
        # the times the wait carries, the closest sensible reading.
        if raw.get("timed_out_at"):
            status = "timed_out"
        elif raw.get("resumed_at"):
            status = "received"
        elif given is None:
            status = "waiting"
    resumed_by = raw.get("resumed_by_event")
    wait = Wait(
        id=_text(raw.get("id")),
        step_key=_text(raw.get("step_key")) or step_key,
        event=_text(raw.get("waiting_for_event_name")) or _text(raw.get("event_name")),
        status=status,
        timeout_at=_text(raw.get("timeout_at")),
        resumed_at=_text(raw.get("resumed_at")),
        timed_out_at=_text(raw.get("timed_out_at")),
        branch=_text(raw.get("outcome_branch")),
        resumed_by_event=resumed_by if isinstance(resumed_by, dict) else None,
    )
    return wait, (given if given is not None and not known else None)


def _message(raw: dict[str, Any], channel: str, step_key: str | None) -> Message:
    title = raw.get("subject") if channel == "email" else raw.get("title")
    to = raw.get("to") or raw.get("to_email") or raw.get("recipient")
    return Message(
        id=_text(raw.get("id")),
        channel=channel,
        step_key=_text(raw.get("automation_step_key")) or step_key,
        title=_text(title) or _text(raw.get("title")) or _text(raw.get("subject")),
        status=_text(raw.get("status")),
        created_at=_text(raw.get("created_at")),
        to=_text(to),
    )


def _merge(items: list[Any], new: Any, key: Any, index: dict[Any, int]) -> None:
    """Append ``new`` unless ``key`` was seen; then fill the first one's gaps from it."""
    if key is None or key not in index:
        if key is not None:
            index[key] = len(items)
        items.append(new)
        return
    old = items[index[key]]
    for name, val in new:
        if getattr(old, name) is None and val is not None:
            setattr(old, name, val)


def map_step(raw: Any) -> Step:
    if not isinstance(raw, dict):
        return Step(info=raw)
    started = _text(raw.get("started_at"))
    finished = _text(raw.get("finished_at")) or _text(raw.get("completed_at"))
    err = _run_error(raw.get("error") if raw.get("error") is not None else raw.get("last_error"))
    return Step(
        id=_text(raw.get("id")),
        key=_text(raw.get("step_key")),
        name=_text(raw.get("name")) or _text(raw.get("step_name")),
        type=_text(raw.get("step_type")),
        status=normalize(raw.get("status"), STATUS_TABLE),
        provider_status=raw.get("status"),
        started_at=started,
        finished_at=finished,
        duration_ms=duration_ms(started, finished),
        info=raw.get("info"),
        error=err.message if err else None,
        branch=_text(raw.get("branch_taken")),
        attempt=as_count(raw.get("attempt", raw.get("attempts"))),
    )


def map_run(doc: Any, raw: Any = None) -> Run:
    """One Sendrealm run object (unwrapped) → Run. ``raw`` is what the API sent."""
    if not isinstance(doc, dict) or not _text(doc.get("id")):
        raise BadResponseError(
            f"the sendrealm API did not return a run object: {excerpt(json.dumps(doc, default=str))}",
            hint="check the base URL, the provider and get_path/list_path of the profile",
        )
    status = normalize(doc.get("status"), STATUS_TABLE)
    trigger = _trigger(doc)
    given_steps = doc.get("steps")
    steps_raw: list[Any] = given_steps if isinstance(given_steps, list) else []
    steps = [map_step(s) for s in steps_raw]

    # Waits: top level and per step describe the same records; one per id.
    waits: list[Wait] = []
    odd_waits: dict[str, Any] = {}
    wait_index: dict[Any, int] = {}

    def add_wait(raw_wait: dict[str, Any], step_key: str | None) -> None:
        wait, odd = map_wait(raw_wait, step_key)
        if odd is not None:
            odd_waits[wait.id or str(len(waits))] = odd
        _merge(waits, wait, wait.id, wait_index)

    for w in _dicts(doc.get("waits")):
        add_wait(w, None)
    for s_raw, step in zip(steps_raw, steps, strict=True):
        if isinstance(s_raw, dict):
            for w in _dicts(s_raw.get("waits")):
                add_wait(w, step.key)

    # Messages: the run's sent records and the steps' linked ones; one per channel+id.
    messages: list[Message] = []
    msg_index: dict[Any, int] = {}

    def add_message(raw_msg: dict[str, Any], channel: str, step_key: str | None) -> None:
        msg = _message(raw_msg, channel, step_key)
        key = (channel, msg.id) if msg.id else (channel, msg.step_key, msg.title, msg.created_at)
        _merge(messages, msg, key, msg_index)

    for m in _dicts(doc.get("sent_emails")):
        add_message(m, "email", None)
    for m in _dicts(doc.get("sent_push_notifications")):
        add_message(m, "push", None)
    for s_raw, step in zip(steps_raw, steps, strict=True):
        if isinstance(s_raw, dict):
            for m in _dicts(s_raw.get("linked_emails")):
                add_message(m, "email", step.key)
            for m in _dicts(s_raw.get("linked_push_notifications")):
                add_message(m, "push", step.key)
    # Timeline order; records without a time keep their place at the end.
    messages.sort(key=lambda m: (parse_ts(m.created_at) is None, parse_ts(m.created_at) or 0))

    error = _run_error(doc.get("last_error")) or _run_error(doc.get("error"))
    if error is None:
        failed = [s for s in steps if s.status == "failed"]
        if failed:
            step = failed[-1]
            error = RunError(message=step.error or f"step {step.key or step.id} failed", step=step.key or step.id)

    occurred = trigger.occurred_at if trigger else None
    created = _text(doc.get("created_at")) or occurred
    started = _text(doc.get("started_at")) or created
    finished = _text(doc.get("finished_at")) or _text(doc.get("completed_at")) or _text(doc.get("ended_at"))
    if finished is None and status in TERMINAL:
        # No end time in the document: the last thing that happened in the run.
        times: list[str | None] = []
        for step in steps:
            times += [step.started_at, step.finished_at]
        for wait in waits:
            times += [wait.resumed_at, wait.timed_out_at]
        times += [m.created_at for m in messages]
        finished = _latest(times)
    current = _text(doc.get("current_step_key")) or _text(doc.get("current_step"))
    if current is None and status not in TERMINAL:
        for step in steps:
            if step.status in ("running", "waiting", "pending"):
                current = step.key or step.id
                break

    automation = doc.get("automation")
    name = _text(doc.get("automation_name")) or _text(doc.get("name"))
    if name is None and isinstance(automation, dict):
        name = _text(automation.get("name"))

    extra: dict[str, Any] = {}
    if odd_waits:
        extra["wait_provider_statuses"] = odd_waits

    return Run(
        id=_text(doc.get("id")) or "",
        provider="sendrealm",
        name=name,
        automation_id=_text(doc.get("automation_id"))
        or (_text(automation.get("id")) if isinstance(automation, dict) else None),
        status=status,
        provider_status=doc.get("status"),
        trigger=trigger,
        identity=_identity(doc),
        created_at=created,
        updated_at=_text(doc.get("updated_at")),
        started_at=started,
        finished_at=finished,
        duration_ms=duration_ms(started, finished),
        steps=steps,
        current_step=current,
        waits=waits,
        messages=messages,
        error=error,
        extra=extra,
        raw=doc if raw is None else raw,
    )


class SendrealmProvider(Provider):
    name = "sendrealm"
    needs_automation = True
    # Runs are listed per automation (the path). status is not listed here: it is only
    # sent for a single status, so the client re-checks it.
    server_filters: ClassVar[frozenset[str]] = frozenset({"automation"})

    @classmethod
    def recognizes(cls, doc: Any) -> bool:
        inner = doc.get("data") if isinstance(doc, dict) and isinstance(doc.get("data"), dict) else doc
        if not isinstance(inner, dict) or "id" not in inner:
            return False
        steps = inner.get("steps")
        keyed = isinstance(steps, list) and any(isinstance(s, dict) and "step_key" in s for s in steps)
        return keyed or "trigger_event" in inner or "resolved_identity_value" in inner

    @classmethod
    def map_document(cls, doc: Any) -> Run:
        inner = doc["data"] if isinstance(doc.get("data"), dict) else doc
        return map_run(inner, raw=doc)

    @staticmethod
    def error_message(body: Any) -> str | None:
        """``{"status", "error": {"code", "message", "details"}}`` → "message (code)"."""
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            err = body["error"]
            message, code = _text(err.get("message")), _text(err.get("code"))
            details = _compact(err.get("details"))
            if message or code:
                text = message or code or ""
                if code and message and code != message:
                    text += f" ({code})"
                if details:
                    text += f": {details}"
                return text
        return default_error_message(body)

    def _automation(self, query: ListQuery) -> str:
        automation = query.automation or self.require_automation()
        if not SAFE_ID_RE.match(automation):
            raise UsageError(
                f"malformed sendrealm automation ID {automation!r}",
                hint="pass --automation with the automation's ID (letters, digits, - _ .)",
            )
        return automation

    def iter_runs(self, query: ListQuery) -> Iterator[Run]:
        """Runs of one automation, cursor page by cursor page (the caller filters and limits)."""
        assert self.http is not None
        path = self.path("list_path", LIST_PATH, automation=self._automation(query))
        params: dict[str, Any] = {}
        # The API takes one status: send it when exactly one is asked; for several the
        # client filters alone (a comma list could be refused or matched literally).
        wanted = [SERVER_STATUS[s] for s in query.statuses if s in SERVER_STATUS]
        if len(query.statuses) == 1 and len(wanted) == 1:
            params["status"] = wanted[0]
        client_filtered = bool(query.since or query.until or (query.statuses and "status" not in params))
        want = None if client_filtered else query.limit
        for item in self.http.paginate(path, params, PAGES, want=want):
            yield map_run(item)

    def get_run(self, run_id: str) -> Run:
        assert self.http is not None
        self.validate_id(run_id)
        doc = self.http.get_json(self.path("get_path", GET_PATH, id=run_id))
        inner = doc
        if isinstance(doc, dict) and "id" not in doc and "data" in doc:
            inner = doc["data"]
        elif isinstance(doc, dict) and "id" not in doc and isinstance(doc.get("error"), dict):
            # An error envelope with a 2xx status: report the API's own message.
            raise BadResponseError(
                f"the sendrealm API answered with an error: {excerpt(self.error_message(doc) or '')}",
                hint="check the run ID with `autorun list --automation ID`",
            )
        return map_run(inner, raw=doc)

    def send_event(self, event: EventRequest) -> dict[str, Any]:
        """POST /events so a waiting run can resume; returns the API's answer."""
        assert self.http is not None
        if not (event.email or event.contact_id or event.external_id):
            raise UsageError(
                "an event for sendrealm needs the contact it is about",
                hint="pass --email, --contact-id or --external-id",
            )
        body: dict[str, Any] = {"event": event.event}
        for key in ("email", "contact_id", "external_id"):
            val = getattr(event, key)
            if val:
                body[key] = val
        body["payload"] = event.payload or {}
        if event.occurred_at:
            body["occurred_at"] = event.occurred_at
        if event.idempotency_key:
            body["idempotency_key"] = event.idempotency_key
        answer = self.http.send_json("POST", self.path("events_path", EVENTS_PATH), body)
        if answer is None:
            return {}
        if not isinstance(answer, dict):
            raise BadResponseError(
                f"the sendrealm events API answered with something that is not an object: "
                f"{excerpt(json.dumps(answer, default=str))}",
                hint="check the base URL and events_path of the profile",
            )
        return answer
