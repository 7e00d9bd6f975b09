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

from autorun_cli.errors import AutorunError, BadResponseError, NotAllowedError, NotFoundError, ServiceError, UsageError, replay_locally
from autorun_cli.http import PageSpec, excerpt
from autorun_cli.model import LogEntry, Run, RunError, Step, Trigger
from autorun_cli.providers._coerce import as_count, as_int, as_ms
from autorun_cli.providers._coerce import as_text as _str
from autorun_cli.providers._coerce import nonempty_text as _text
from autorun_cli.providers.base import UUID_RE, ListQuery, Provider, Settings
from autorun_cli.status import TERMINAL, normalize
from autorun_cli.timeutil import duration_ms as span_ms
from autorun_cli.timeutil import iso, parse_ts

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
# What production Alga servers say for any unexpected error (apiMiddleware.handleApiError).
MASKED_ERROR = "An unexpected error occurred"


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


def parse_logs(value: Any, started: str | None, retried: bool) -> list[LogEntry]:
    """``logs[]`` with their ``metadata``, each marked as this attempt's or not.

    Alga's retry puts the same execution back to ``pending`` with a new
    ``started_at`` and keeps the old ``logs``: an entry from before ``started_at``
    belongs to a previous attempt. Without a readable time, an entry of a run that
    shows signs of a retry (``retried``) is taken as the previous attempt's too.
    """
    logs: list[LogEntry] = []
    if not isinstance(value, list):
        return logs
    start = parse_ts(started)
    for entry in value:
        if not isinstance(entry, dict):
            if entry is not None:
                logs.append(LogEntry(message=_str(entry), previous_attempt=retried))
            continue
        when = parse_ts(entry.get("timestamp"))
        previous = when < start if when is not None and start is not None else retried
        metadata = entry.get("metadata")
        logs.append(
            LogEntry(
                timestamp=_str(entry.get("timestamp")),
                level=_str(entry.get("level")),
                message=_str(entry.get("message")),
                step_index=as_count(entry.get("action_index")),
                metadata=metadata if metadata not in (None, {}) else None,
                previous_attempt=previous,
            )
        )
    return logs


def step_key(index: int) -> str:
    return f"action_{index}"


def derive_steps(status: str, doc: dict[str, Any], logs: list[LogEntry], *, dry_run: bool = False) -> list[Step]:
    """One step per planned action, with statuses derived from the run's counts.

    The API reports only ``actions_total``, ``actions_successful``,
    ``actions_failed`` and ``failed_action_index``. Steps are named ``action 1..N``
    with keys ``action_0..`` (the API's 0-based index) and get:

    - a dry run (``execution_context.dry_run``): every action skipped, whatever the
      status says (Alga stores a dry run as ``completed`` although nothing ran);
    - run ``completed``: every action completed;
    - run ``failed`` / ``timed_out`` / ``cancelled``: the actions before the stopping
      action completed, the stopping action gets the run's status, the rest
      skipped. The stopping action is ``failed_action_index`` when it names an
      action that exists; otherwise the action after the successful ones (none for
      a cancelled run that had no failure: the remaining actions are skipped);
    - run ``running``: the successful ones completed, the next one running, the
      rest pending; ``pending``: all pending. ``failed_action_index`` is never read
      here: Alga keeps it from the failed attempt when a retry starts;
    - ``skipped``: all skipped; anything else: the successful ones completed, the
      rest ``unknown``.

    A step's ``info`` is the messages of this attempt's log entries whose
    ``action_index`` is that step's, joined with "; ", leaving out the one that
    repeats the step's error (the logs stay whole in ``run.logs``). The API names no
    action types, so ``type`` stays empty.
    """
    total = as_count(doc.get("actions_total"))
    if not total:
        return []
    # A huge count from a broken server must not build millions of rows.
    total = min(total, 10_000)
    done = min(as_count(doc.get("actions_successful")) or 0, total)
    failed_at = as_int(doc.get("failed_action_index"))
    if failed_at is not None and not 0 <= failed_at < total:
        failed_at = None
    error_message = _text(doc.get("error_message"))

    def status_of(i: int) -> str:
        if dry_run:
            return "skipped"
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
        if log.step_index is not None and log.message and not log.previous_attempt:
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


NO_MESSAGE = {"failed": "failed", "timed_out": "timed out"}


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
    started = _str(data.get("started_at"))
    finished = _str(data.get("completed_at"))
    context = data.get("execution_context")
    dry_run = isinstance(context, dict) and context.get("dry_run") is True
    failed_at = as_int(data.get("failed_action_index"))
    message, stack = _text(data.get("error_message")), _text(data.get("error_stack"))
    # An execution that has not ended but still carries a failure is one Alga has
    # retried: the failure (and the logs before started_at) are the last attempt's.
    ongoing = status in ("pending", "running")
    retried = ongoing and (failed_at is not None or message is not None or stack is not None)
    logs = parse_logs(data.get("logs"), started, retried)
    if ongoing and any(log.previous_attempt for log in logs):
        retried = True
    steps = derive_steps(status, data, logs, dry_run=dry_run)
    links, methods = parse_links(data.get("_links"))

    duration = as_ms(data.get("duration_ms"))
    if duration is None and status in TERMINAL:
        duration = span_ms(started, finished)

    error = None
    if not ongoing and (message or stack or status in NO_MESSAGE):
        # The step that stopped the run, as derived: failed_action_index when it names
        # an existing action, else none (never a step that does not exist).
        stopped = next((s.key for s in steps if s.status in ("failed", "timed_out", "cancelled")), None)
        if message is None:
            message = f"{NO_MESSAGE.get(status, status)} (the API gave no error message)"
        error = RunError(message=message, step=stopped, detail=stack)

    trigger_data = data.get("trigger_data")
    event = None
    if isinstance(trigger_data, dict):
        for key in ("event_type", "event", "trigger_type", "type"):
            if _text(trigger_data.get(key)):
                event = trigger_data[key]
                break
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
        "dry_run": dry_run,
        # Whether the API offers a retry: Alga links one only on failed executions.
        "retryable": "retry" in links if isinstance(data.get("_links"), dict) else None,
    }
    if retried:
        extra["previous_attempt"] = {
            "failed_action_index": failed_at,
            "error_message": message,
            "logs": sum(1 for log in logs if log.previous_attempt),
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
        """Both of Alga PSA's error dialects.

        Current servers answer ``404 NOT_FOUND`` and ``409 CONFLICT``; older ones
        throw a generic Error for both, which surfaces as a 500 whose message (when
        the server shows it) says what happened. Either way the answer is final:
        not retried, and mapped to exit 3 (not found) or 4 (refused).
        """
        text = (message or "").lower()
        if status == 404 or (status == 500 and "not found" in text):
            return NotFoundError(
                message,
                hint="check the execution ID and the tenant (--tenant / AUTORUN_TENANT_ID); "
                "`autorun list` shows what exists",
            )
        if status == 409 or (status == 500 and "can be retried" in text):
            return NotAllowedError(
                f"the API refused: {message}",
                hint="Alga PSA retries only failed executions; `autorun show ID` shows its status",
                code="not_retryable",
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
        try:
            doc = self.http.get_json(self.path("get_path", GET_PATH, id=run_id))
        except ServiceError as exc:
            if exc.code != "service" or MASKED_ERROR not in exc.message:
                raise
            # Production servers mask every unexpected error, a missing execution too.
            raise ServiceError(
                f"{exc.message} (older Alga PSA servers answer this for an execution that does not exist)",
                hint=f"check that {run_id} exists with `autorun list`; if it is listed, try again later",
            ) from None
        return map_execution(doc)

    def check_retry(self, run: Run, force: bool = False) -> None:
        """Refuse what Alga refuses, before any request: it retries only ``failed``
        executions and links ``retry`` only on those. A document with ``_links`` and
        no ``retry`` is refused even with --force; one without ``_links`` (a list
        item) is refused unless failed or forced, and then the server decides."""
        offered = run.extra.get("retryable") if isinstance(run.extra, dict) else None
        if offered is True and run.status != "failed" and not force:
            # A server that links retry on an execution Alga would not retry: say what
            # Alga does (not the generic "failed, cancelled or timed-out"), and that
            # --force follows the link and lets that server decide.
            raise NotAllowedError(
                f"execution {run.id} is {run.status}: Alga PSA retries only failed executions",
                hint=f"this server offers a retry link for it anyway: `autorun retry {run.id} --force` follows it and the server decides",
                code="not_retryable",
            )
        if offered is True or (offered is None and (run.status == "failed" or force)):
            return
        why = "Alga PSA retries only failed executions"
        if offered is False:
            why += " (the API offers no retry link for it)"
        dry = " (a dry run)" if run.extra.get("dry_run") else ""
        raise NotAllowedError(f"execution {run.id} is {run.status}{dry}: {why}", hint=_retry_hint(run), code="not_retryable")

    def retry(self, run: Run) -> Run:
        """Follow the run's retry link (its method, POST if none); return it refreshed.

        A run whose ``_links`` have no retry is refused here too, with no request.
        Without a retry link the profile's ``retry_path`` (default the documented
        ``POST …/executions/{id}/retry``) is used.
        """
        assert self.http is not None
        run_id = self.validate_id(run.id)
        self.check_retry(run, force=True)
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
        try:
            body = self.http.send_json(method, url)
        except NotAllowedError as exc:
            if exc.code != "not_retryable":
                raise
            raise NotAllowedError(exc.message, hint=f"Alga PSA retries only failed executions; `autorun show {run_id}` shows its status", code=exc.code) from None
        except ServiceError as exc:
            if exc.code != "service" or MASKED_ERROR not in exc.message:
                raise
            raise ServiceError(
                f"{exc.message} (older Alga PSA servers answer this when the execution is not failed, or no longer exists)",
                hint=f"`autorun show {run_id}` shows its current status; a POST is never repeated by autorun",
            ) from None
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


def _retry_hint(run: Run) -> str:
    """A next command that can succeed for an execution Alga will not retry."""
    if run.status in ("pending", "running"):
        return f"it has not ended: follow it with `autorun watch {run.id}`"
    if run.extra.get("dry_run"):
        return f"a dry run ran no action; `autorun show {run.id}` shows it, and a real run of the rule starts in Alga PSA"
    if run.status in ("cancelled", "timed_out"):
        return f"replay it on the local engine instead: `{replay_locally(run.id)}`"
    return f"`autorun show {run.id}` shows what it did"
