"""Plannr CRM automation executions (seeds 000, 001).

Paths, parameters and the mapping of Plannr's JSON onto the normalized model;
transport, retries and Laravel pagination come from :mod:`autorun_cli.http`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

from autorun_cli.errors import BadResponseError, UsageError
from autorun_cli.http import PageSpec, default_error_message, excerpt
from autorun_cli.model import Identity, Run, RunError, Step, Trigger
from autorun_cli.providers._coerce import scalar_text as _text
from autorun_cli.providers.base import UUID_RE, ListQuery, Provider, Settings
from autorun_cli.status import RUN_STATUSES, TERMINAL, normalize
from autorun_cli.textsafe import readable_info
from autorun_cli.timeutil import duration_ms

# Seeds 000/001 show "in_progress" and "completed"; Plannr documents no full list, so
# beside those only the contract's own names are read as themselves. No synonym is
# guessed: anything else is `unknown`, kept in provider_status.
STATUS_TABLE: dict[str, str] = {**{s: s for s in RUN_STATUSES}, "in_progress": "running"}

# Laravel caps per_page at 500 on Plannr (contract).
PAGES = PageSpec(size_param="per_page", max_size=500, page_param="page")

LIST_PATH = "/api/v1/automation-executions"
BLUEPRINT_LIST_PATH = "/api/v1/automation-blueprints/{automation}/executions"
GET_PATH = "/api/v1/automation-executions/{id}"


def map_step(raw: Any) -> Step:
    if not isinstance(raw, dict):
        # An undocumented shape: keep it visible rather than dropping it.
        return Step(info=raw, provider_status=None)
    status = normalize(raw.get("status"), STATUS_TABLE)
    started = _text(raw.get("executed_at")) or _text(raw.get("created_at"))
    # Plannr has no end time per step; once a step is terminal its last update is it.
    finished = _text(raw.get("updated_at")) if status in TERMINAL else None
    info = raw.get("info")
    return Step(
        id=_text(raw.get("uuid")),
        key=None,
        name=_text(raw.get("name")),
        status=status,
        provider_status=raw.get("status"),
        started_at=started,
        finished_at=finished,
        duration_ms=duration_ms(started, finished) if finished else None,
        info=info,
        error=(readable_info(info) or None) if status == "failed" else None,
    )


def _identity(account: Any) -> Identity | None:
    if not isinstance(account, dict):
        # The seed has resource class names where objects belong; never crash on them.
        return None
    email, name = _text(account.get("email")), _text(account.get("name"))
    if not name:
        parts = [_text(account.get("first_name")), _text(account.get("last_name"))]
        name = " ".join(p for p in parts if p) or None
    value: str | None
    if email:
        kind, value = "email", email
    elif name:
        kind, value = "account", name
    else:  # value may be None: an account with no email, name or uuid
        kind, value = "account", _text(account.get("uuid"))
    return Identity(type=kind, value=value, id=_text(account.get("uuid")), name=name)


def _automation_id(doc: dict[str, Any]) -> str | None:
    for key in ("automation_blueprint_uuid", "blueprint_uuid", "automation_uuid"):
        val = _text(doc.get(key))
        if val:
            return val
    for key in ("automation_blueprint", "blueprint", "automation"):
        val = doc.get(key)
        if isinstance(val, dict) and _text(val.get("uuid")):
            return _text(val.get("uuid"))
    return None


def map_execution(doc: Any, raw: Any = None, *, automation: str | None = None) -> Run:
    """One Plannr execution object → Run. ``raw`` is the document as the API sent it."""
    if not isinstance(doc, dict):
        raise BadResponseError(
            f"the plannr API sent an execution that is not an object: {excerpt(json.dumps(doc, default=str))}",
            hint="check the base URL and the provider of the profile",
        )
    run_id = _text(doc.get("uuid"))
    if not run_id:
        raise BadResponseError(
            f"the plannr API sent an execution without a uuid: {excerpt(json.dumps(doc, default=str))}",
            hint="check the base URL and the provider of the profile",
        )
    status = normalize(doc.get("status"), STATUS_TABLE)
    created, updated = _text(doc.get("created_at")), _text(doc.get("updated_at"))
    finished = updated if status in TERMINAL else None
    steps_raw = doc.get("steps")
    steps = [map_step(s) for s in steps_raw] if isinstance(steps_raw, list) else []

    extra: dict[str, Any] = {}
    next_step = previous_step = None
    if isinstance(doc.get("next_step"), dict):
        next_step = map_step(doc["next_step"])
        extra["next_step"] = next_step.model_dump(mode="json")
    if isinstance(doc.get("previous_step"), dict):
        previous_step = map_step(doc["previous_step"])
        extra["previous_step"] = previous_step.model_dump(mode="json")
    if "account" in doc:
        extra["account"] = doc["account"]

    current = None
    if next_step is not None and status not in TERMINAL:
        current = next_step.name or next_step.id

    error = None
    failed = [s for s in steps if s.status == "failed"]
    if failed:
        step = failed[-1]
        error = RunError(
            message=step.error or f"step {step.name or step.id} failed",
            step=step.name or step.id,
            detail=None,
        )

    triggered_by = doc.get("triggered_by")
    return Run(
        id=run_id,
        provider="plannr",
        name=_text(doc.get("name")),
        automation_id=_automation_id(doc) or automation,
        status=status,
        provider_status=doc.get("status"),
        trigger=Trigger(event=_text(triggered_by)) if triggered_by is not None else None,
        identity=_identity(doc.get("account")),
        created_at=created,
        updated_at=updated,
        started_at=created,
        finished_at=finished,
        duration_ms=duration_ms(created, finished) if finished else None,
        steps=steps,
        current_step=current,
        error=error,
        extra=extra,
        raw=doc if raw is None else raw,
    )


class PlannrProvider(Provider):
    name = "plannr"
    server_sorts: ClassVar[frozenset[str]] = frozenset({"created_at", "-created_at"})
    # List items carry no client account, so the client cannot re-check client_uuids;
    # the blueprint is in the path. uuid stays re-checked (every item has one).
    server_filters: ClassVar[frozenset[str]] = frozenset({"client_uuids", "automation"})

    @classmethod
    def recognizes(cls, doc: Any) -> bool:
        inner = doc.get("data") if isinstance(doc, dict) and isinstance(doc.get("data"), dict) else doc
        return isinstance(inner, dict) and "uuid" in inner and "triggered_by" in inner

    @classmethod
    def map_document(cls, doc: Any) -> Run:
        inner = doc["data"] if isinstance(doc.get("data"), dict) else doc
        return map_execution(inner, raw=doc)

    @classmethod
    def auth_headers(cls, settings: Settings) -> dict[str, str]:
        headers = super().auth_headers(settings)
        if settings.account:
            headers["X-PLANNR-ACCOUNT-UUID"] = settings.account
        return headers

    @staticmethod
    def error_message(body: Any) -> str | None:
        """Laravel's ``{"message", "errors": {field: [msg…]}}``, first error per field.

        Laravel's messages name their field already ("The per page must be…").
        """
        if isinstance(body, dict):
            message = body.get("message")
            errors = body.get("errors")
            details: list[str] = []
            if isinstance(errors, dict):
                for msgs in errors.values():
                    text = _text(msgs[0] if isinstance(msgs, list) and msgs else msgs)
                    if text:
                        details.append(text)
            elif isinstance(errors, list):
                details = [t for t in (_text(e) for e in errors) if t]
            if details:
                joined = "; ".join(details[:3]) + ("; …" if len(details) > 3 else "")
                if isinstance(message, str) and message:
                    return f"{message} ({joined})"
                return joined
        return default_error_message(body)

    def validate_id(self, run_id: str) -> str:
        if not UUID_RE.match(run_id or ""):
            raise UsageError(
                f"malformed plannr execution ID {run_id!r}: plannr IDs are UUIDs",
                hint="copy the UUID from `autorun list` (e.g. d24b4d73-7206-46a0-815a-508ef61110c6)",
            )
        return run_id

    def _blueprint(self, query: ListQuery) -> str | None:
        blueprint = query.automation or self.settings.automation
        if blueprint and not UUID_RE.match(blueprint):
            raise UsageError(
                f"malformed plannr automation blueprint {blueprint!r}: plannr IDs are UUIDs",
                hint="pass --automation with the blueprint's UUID",
            )
        return blueprint

    def iter_runs(self, query: ListQuery) -> Iterator[Run]:
        """Executions page by page; every record is yielded (the caller filters and limits)."""
        assert self.http is not None
        blueprint = self._blueprint(query)
        if blueprint:
            path = self.path("blueprint_list_path", BLUEPRINT_LIST_PATH, automation=blueprint)
        else:
            path = self.path("list_path", LIST_PATH)
        params: dict[str, Any] = {}
        # Only created_at sorts on the server; other orders are sorted by the caller,
        # which reads every page anyway. Status and time filters are client-side only.
        if query.sort in self.server_sorts:
            params["sort"] = query.sort
        if query.uuids:
            params["filter[uuid]"] = ",".join(query.uuids)
        if query.client_uuids:
            params["filter[client_uuids]"] = ",".join(query.client_uuids)
        # With client-side filters a page of --limit records may keep few of them:
        # ask for full pages so fewer requests are needed.
        client_filtered = bool(query.statuses or query.since or query.until)
        want = None if client_filtered else query.limit
        for item in self.http.paginate(path, params, PAGES, want=want):
            yield map_execution(item, automation=blueprint)

    def get_run(self, run_id: str) -> Run:
        assert self.http is not None
        self.validate_id(run_id)
        doc = self.http.get_json(self.path("get_path", GET_PATH, id=run_id))
        # Plannr answers with the bare object; some deployments wrap it in "data".
        inner = doc
        if isinstance(doc, dict) and "uuid" not in doc and isinstance(doc.get("data"), dict):
            inner = doc["data"]
        if not isinstance(inner, dict) or not _text(inner.get("uuid")):
            raise BadResponseError(
                f"the plannr API did not return an execution object: {excerpt(json.dumps(doc, default=str))}",
                hint="check the base URL and get_path of the profile",
            )
        return map_execution(inner, raw=doc, automation=self.settings.automation)
