"""``tenant``: Alga PSA automation executions (seed 003), tenant-scoped by API key.

The API gives totals per execution (``actions_total``/``_successful``/``_failed``,
``failed_action_index``) but no per-action records, so steps are derived from the
counts (see :func:`derive_steps`). Quirks handled here: a 500 that means "not
found", a list ``data`` nested one level too deep (``http.extract_items``), and
``_links`` entries that are either ``{"href", "method"}`` objects or plain URLs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from autorun_cli.errors import AutorunError, BadResponseError, NotFoundError, UsageError
from autorun_cli.http import PageSpec, excerpt
from autorun_cli.model import LogEntry, Run, RunError, Step, Trigger
from autorun_cli.providers._coerce import as_count, as_int
from autorun_cli.providers._coerce import as_text as _str
from autorun_cli.providers._coerce import nonempty_text as _text
from autorun_cli.providers.base import UUID_RE, ListQuery, Provider, Settings
from autorun_cli.status import TERMINAL, normalize
from autorun_cli.timeutil import duration_ms as span_ms
from autorun_cli.timeutil import iso

# Alga PSA's executionStatusSchema, exactly (seed 003; automationSchemas.ts): a
# closed enum, so any other value is `unknown`, kept in provider_status.
STATUS_TABLE: dict[str, str] = {
    "pending": "pending",
    "running": "running",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
    "timeout": "timed_out",
    "skipped": "skipped",
}
# Normalized status → the value the API's `status` filter takes. `waiting` and
# `unknown` have no API equivalent; those filters are applied on the client.
STATUS_FILTER: dict[str, str] = {
    "pending": "pending",
    "running": "running",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
    "timed_out": "timeout",
    "skipped": "skipped",
}
# Methods a retry link may ask for; anything else (DELETE, GET) is refused.
RETRY_METHODS = frozenset({"POST", "PUT", "PATCH"})

LIST_PATH = "/api/v1/automation/executions"
GET_PATH = "/api/v1/automation/executions/{id}"
RETRY_PATH = "/api/v1/automation/executions/{id}/retry"


def unwrap(doc: Any) -> dict[str, Any]:
    """The execution object from a ``data`` envelope (or a bare object).

    ``_links`` normally sit inside ``data``; when the server puts them beside it,
    they are folded in so the retry link is never lost.
    """
    if isinstance(doc, dict) and isinstance(doc.get("data"), dict):
        inner = doc["data"]
        if "_links" not in inner and isinstance(doc.get("_links"), (dict, list)):
            inner = {**inner, "_links": doc["_links"]}
        return inner
    if isinstance(doc, dict):
        return doc
    raise BadResponseError(
        f"the tenant API answered something that is not an execution: {excerpt(json.dumps(doc, default=str)[:300])}",
        hint="check the base URL and that the profile's provider is tenant",
    )


def parse_links(value: Any) -> tuple[dict[str, str], dict[str, str]]:
    """``_links`` → ({name: href}, {name: METHOD}); objects and plain strings both count."""
    links: dict[str, str] = {}
    methods: dict[str, str] = {}
    if not isinstance(value, dict):
        return links, methods
    for name, entry in value.items():
        if isinstance(entry, str) and entry:
            links[str(name)] = entry
        elif isinstance(entry, dict) and isinstance(entry.get("href"), str) and entry["href"]:
            links[str(name)] = entry["href"]
            method = entry.get("method")
            if isinstance(method, str) and method.strip():
                methods[str(name)] = method.strip().upper()
    return links, methods


def parse_logs(value: Any) -> list[LogEntry]:
    logs: list[LogEntry] = []
    if not isinstance(value, list):
        return logs
    for entry in value:
        if isinstance(entry, dict):
            logs.append(
                LogEntry(
                    timestamp=_str(entry.get("timestamp")),
                    level=_str(entry.get("level")),
                    message=_str(entry.get("message")),
                    step_index=as_count(entry.get("action_index")),
                )
            )
        elif entry is not None:
            logs.append(LogEntry(message=_str(entry)))
    return logs


def step_key(index: int) -> str:
    return f"action_{index}"


def derive_steps(status: str, doc: dict[str, Any], logs: list[LogEntry]) -> list[Step]:
    """One step per planned action, with statuses derived from the run's counts.

    The API reports only ``actions_total``, ``actions_successful``,
    ``actions_failed`` and ``failed_action_index``. Steps are named ``action 1..N``
    with keys ``action_0..`` (the API's 0-based index) and get:

    - run ``completed``: every action completed;
    - run ``failed`` / ``timed_out`` / ``cancelled``: the actions before the stopping
      action completed, the stopping action gets the run's status, the rest
      skipped. The stopping action is ``failed_action_index``; without one it is
      the action after the successful ones (none for a cancelled run that had no
      failure: the remaining actions are skipped);
    - run ``running``: the successful ones completed, the next one running, the
      rest pending;
    - run ``pending``: all pending; ``skipped``: all skipped;
    - anything else: the successful ones completed, the rest ``unknown``.

    A step's ``info`` is the messages of the log entries whose ``action_index``
    is that step's, joined with "; ", leaving out the one that repeats the step's
    error (the logs stay whole in ``run.logs``). The API names no action types,
    so ``type`` stays empty.
    """
    total = as_count(doc.get("actions_total"))
    if not total or total < 0:
        return []
    # A huge count from a broken server must not build millions of rows.
    total = min(total, 10_000)
    done = max(0, min(as_count(doc.get("actions_successful")) or 0, total))
    failed_at = as_int(doc.get("failed_action_index"))
    if failed_at is not None and not 0 <= failed_at < total:
        failed_at = None
    error_message = _text(doc.get("error_message"))

    def status_of(i: int) -> str:
        if status == "completed":
            return "completed"
        if status in ("pending", "skipped"):
            return status
        if status in ("failed", "timed_out", "cancelled"):
            stop = failed_at
            if stop is None and (status != "cancelled" or as_count(doc.get("actions_failed"))):
                stop = done if done < total else None
            if stop is None:
                return "completed" if i < done else "skipped"
            if i < stop:
                return "completed"
            return status if i == stop else "skipped"
        if status == "running":
            if i < done:
                return "completed"
            return "running" if i == done else "pending"
        return "completed" if i < done else "unknown"

    by_action: dict[int, list[str]] = {}
    for log in logs:
        if log.step_index is not None and log.message:
            by_action.setdefault(log.step_index, []).append(log.message)

    steps: list[Step] = []
    for i in range(total):
        st = status_of(i)
        error = error_message if st in ("failed", "timed_out") else None
        messages = [m for m in by_action.get(i, []) if m != error]
        steps.append(
            Step(
                key=step_key(i),
                name=f"action {i + 1}",
                status=st,
                info="; ".join(messages) if messages else None,
                error=error,
            )
        )
    return steps


def map_execution(doc: Any) -> Run:
    """Map one execution (bare, or in its ``data`` envelope) onto the model."""
    data = unwrap(doc)
    run_id = _text(data.get("execution_id")) or _text(data.get("id"))
    if run_id is None:
        raise BadResponseError(
            f"the tenant API returned an execution without execution_id: {excerpt(json.dumps(data, default=str)[:300])}",
            hint="check the base URL and that the profile's provider is tenant",
        )
    provider_status = data.get("status")
    status = normalize(provider_status, STATUS_TABLE)
    logs = parse_logs(data.get("logs"))
    steps = derive_steps(status, data, logs)
    links, methods = parse_links(data.get("_links"))

    started = _str(data.get("started_at"))
    finished = _str(data.get("completed_at"))
    dur = data.get("duration_ms")
    duration = int(round(dur)) if isinstance(dur, (int, float)) and not isinstance(dur, bool) and dur >= 0 else None
    if duration is None and status in TERMINAL:
        duration = span_ms(started, finished)

    failed_at = as_int(data.get("failed_action_index"))
    error = None
    message, stack = _text(data.get("error_message")), _text(data.get("error_stack"))
    if message or stack:
        error = RunError(
            message=message or (stack.splitlines()[0] if stack else None),
            step=step_key(failed_at) if failed_at is not None and failed_at >= 0 else None,
            detail=stack,
        )

    trigger_data = data.get("trigger_data")
    event = None
    if isinstance(trigger_data, dict):
        for key in ("event_type", "event", "trigger_type", "type"):
            if _text(trigger_data.get(key)):
                event = trigger_data[key]
                break
    context = data.get("execution_context")
    name = None
    if isinstance(context, dict):
        for key in ("rule_name", "automation_rule_name", "name"):
            if _text(context.get(key)):
                name = context[key]
                break
    rule_id = _str(data.get("automation_rule_id"))

    current = next((s.key for s in steps if s.status == "running"), None)
    extra: dict[str, Any] = {
        "actions_total": as_count(data.get("actions_total")),
        "actions_successful": as_count(data.get("actions_successful")),
        "actions_failed": as_count(data.get("actions_failed")),
        "failed_action_index": failed_at,
        "tenant": data.get("tenant"),
        "execution_context": context,
    }
    if methods:
        extra["link_methods"] = methods

    return Run(
        id=run_id,
        provider="tenant",
        name=name or rule_id,
        automation_id=rule_id,
        status=status,
        provider_status=provider_status,
        trigger=Trigger(event=event, payload=trigger_data, occurred_at=started),
        # The API keeps no separate creation/update times: an execution is created
        # when it starts and last changes when it completes.
        created_at=started,
        updated_at=finished or started,
        started_at=started,
        finished_at=finished,
        duration_ms=duration,
        steps=steps,
        current_step=current,
        logs=logs,
        error=error,
        links=links,
        extra=extra,
        # The document as the API sent it (envelope included), untouched.
        raw=doc,
    )


class TenantProvider(Provider):
    name = "tenant"

    @classmethod
    def recognizes(cls, doc: Any) -> bool:
        inner = doc.get("data") if isinstance(doc, dict) and isinstance(doc.get("data"), dict) else doc
        return isinstance(inner, dict) and "execution_id" in inner

    @classmethod
    def map_document(cls, doc: Any) -> Run:
        return map_execution(doc)

    @classmethod
    def auth_headers(cls, settings: Settings) -> dict[str, str]:
        """``x-api-key`` (no Authorization header) and ``x-tenant-id`` when set."""
        headers: dict[str, str] = {}
        if settings.token:
            headers["x-api-key"] = settings.token
        if settings.tenant:
            headers["x-tenant-id"] = settings.tenant
        return headers

    @staticmethod
    def classify_error(status: int, message: str) -> AutorunError | None:
        # Alga PSA throws a generic Error for a missing execution: it surfaces as 500.
        if status == 500 and "not found" in (message or "").lower():
            return NotFoundError(
                message,
                hint="check the execution ID and the tenant (--tenant / AUTORUN_TENANT_ID); "
                "`autorun list` shows what exists",
            )
        return None

    def validate_id(self, run_id: str) -> str:
        if not UUID_RE.match(run_id or ""):
            raise UsageError(
                f"malformed execution ID {run_id!r}: the tenant API's execution IDs are UUIDs",
                hint="copy the execution_id (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx) from `autorun list`",
            )
        return run_id

    def list_params(self, query: ListQuery) -> dict[str, Any]:
        """The filters the API applies itself (the client re-applies every filter)."""
        params: dict[str, Any] = {}
        wanted = [STATUS_FILTER[s] for s in query.statuses if s in STATUS_FILTER]
        # The API filters on one status; with several, the client filters.
        if len(query.statuses) == 1 and len(wanted) == 1:
            params["status"] = wanted[0]
        rule = query.automation or self.settings.automation
        if rule:
            params["automation_rule_id"] = rule
        if query.since is not None:
            params["started_from"] = iso(query.since)
        if query.until is not None:
            params["started_to"] = iso(query.until)
        return params

    def iter_runs(self, query: ListQuery) -> Iterator[Run]:
        assert self.http is not None
        spec = PageSpec(size_param="limit", max_size=100, first_page=1)
        path = self.path("list_path", LIST_PATH)
        params = self.list_params(query)
        # Filters the API cannot take (several statuses, --uuid) are applied by the
        # caller: a page of --limit runs may keep few of them, so ask for full pages.
        client_filtered = bool(query.uuids or query.client_uuids or (query.statuses and "status" not in params))
        want = None if client_filtered else query.limit
        for item in self.http.paginate(path, params, spec, want=want):
            yield map_execution(item)

    def get_run(self, run_id: str) -> Run:
        assert self.http is not None
        run_id = self.validate_id(run_id)
        return map_execution(self.http.get_json(self.path("get_path", GET_PATH, id=run_id)))

    def retry(self, run: Run) -> Run:
        """Follow the run's retry link (its method, POST if none); return it refreshed.

        Whether the run may be retried at all is decided by the command (``--force``);
        without a retry link the profile's ``retry_path`` (default the documented
        ``POST …/executions/{id}/retry``) is used.
        """
        assert self.http is not None
        run_id = self.validate_id(run.id)
        href = run.links.get("retry")
        method = "POST"
        if href:
            methods = run.extra.get("link_methods") if isinstance(run.extra, dict) else None
            if isinstance(methods, dict) and isinstance(methods.get("retry"), str):
                method = methods["retry"].upper()
            if method not in RETRY_METHODS:
                raise BadResponseError(
                    f"the execution's retry link asks for method {method!r}, which autorun will not send",
                    hint="set retry_path in the profile to the API's retry endpoint",
                )
            url = self.http.resolve(href)
        else:
            url = self.path("retry_path", RETRY_PATH, id=run_id)
        body = self.http.send_json(method, url)
        # The API retries the same execution; if it names another one, follow that.
        new_id = run_id
        if isinstance(body, dict):
            try:
                answered = unwrap(body)
            except BadResponseError:
                answered = {}
            candidate = _text(answered.get("execution_id"))
            if candidate and UUID_RE.match(candidate):
                new_id = candidate
        return self.get_run(new_id)
