"""``generic``: TrueState automation sessions (seed 004), NEW/RUNNING/FINISHED/FAILED.

Every path lives under an automation (``/automations/{automation_id}/sessions/``),
so ``--automation`` is required. A session has no name; its steps carry a prompt,
a result, an error and the nested step definition (``step.name``,
``step.step_type``). Errors are FastAPI's ``{"detail": …}`` (``http`` reads them).
The seed's placeholders (``"<string>"``, ``123``) parse like real values.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from autorun_cli.errors import BadResponseError, UsageError
from autorun_cli.http import PageSpec, excerpt
from autorun_cli.model import Run, RunError, Step, Trigger
from autorun_cli.providers._coerce import as_count
from autorun_cli.providers._coerce import as_text as _str
from autorun_cli.providers._coerce import nonempty_text as _text
from autorun_cli.providers.base import SAFE_ID_RE, ListQuery, Provider
from autorun_cli.status import TERMINAL, normalize
from autorun_cli.timeutil import duration_ms, parse_ts

# The API's enum, exactly (seed 004: NEW, RUNNING, FINISHED, FAILED). A cancelled
# session reads FAILED; any other value is `unknown`, kept in provider_status.
STATUS_TABLE: dict[str, str] = {
    "new": "pending",
    "running": "running",
    "finished": "completed",
    "failed": "failed",
}

LIST_PATH = "/automations/{automation_id}/sessions/"
GET_PATH = "/automations/{automation_id}/sessions/{id}"
RETRY_PATH = "/automations/{automation_id}/sessions/"
CANCEL_PATH = "/automations/{automation_id}/sessions/{id}/cancel"

PAGES = PageSpec(size_param="limit", offset_param="offset", max_size=100)


def prompt_summary(prompt: Any) -> str | None:
    """A one-line description of a step's prompt, for steps with no result yet."""
    if isinstance(prompt, str):
        return prompt or None
    if not isinstance(prompt, dict):
        return None
    for key in ("text", "content", "message", "prompt", "question", "title"):
        if _text(prompt.get(key)):
            return prompt[key]
    kind = _text(prompt.get("type"))
    return f"{kind} prompt" if kind else None


def step_definition(entry: dict[str, Any]) -> dict[str, Any]:
    inner = entry.get("step")
    return inner if isinstance(inner, dict) else {}


def map_step(entry: Any, index: int) -> Step:
    if not isinstance(entry, dict):
        return Step(key=f"step_{index}", name=_str(entry), status="unknown", provider_status=entry)
    definition = step_definition(entry)
    provider_status = entry.get("status")
    status = normalize(provider_status, STATUS_TABLE)
    started = _str(entry.get("created_at"))
    finished = _str(entry.get("updated_at")) if status in TERMINAL else None
    result = entry.get("result")
    if isinstance(result, str) and result:
        info: Any = result  # as the API gave it
    elif result not in (None, "", [], {}):
        info = result
    else:
        info = prompt_summary(entry.get("prompt"))
    error = entry.get("error")
    return Step(
        id=_str(entry.get("id")),
        # The step definition's id is stable across sessions of one automation.
        key=_text(definition.get("id")) or _text(entry.get("id")) or f"step_{index}",
        name=_str(definition.get("name")),
        type=_str(definition.get("step_type")),
        status=status,
        provider_status=provider_status,
        started_at=started,
        finished_at=finished,
        duration_ms=duration_ms(started, finished),
        info=info,
        error=_str(error) if error not in (None, "") else None,
    )


def current_step_name(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        return _text(step_definition(value).get("name")) or _text(value.get("id"))
    return None


def is_session(doc: Any) -> bool:
    return isinstance(doc, dict) and _text(doc.get("id")) is not None and "status" in doc


def map_session(doc: Any, automation: str | None = None) -> Run:
    """Map one session onto the model (``automation`` fills a missing automation_id)."""
    if not isinstance(doc, dict):
        raise BadResponseError(
            f"the API answered something that is not a session: {excerpt(json.dumps(doc, default=str)[:300])}",
            hint="check the base URL, the automation ID and that the profile's provider is generic",
        )
    session_id = _text(doc.get("id"))
    if session_id is None:
        raise BadResponseError(
            f"the API returned a session without an id: {excerpt(json.dumps(doc, default=str)[:300])}",
            hint="check the base URL and that the profile's provider is generic",
        )
    provider_status = doc.get("status")
    status = normalize(provider_status, STATUS_TABLE)
    raw_steps = doc.get("steps")
    steps = [map_step(s, i) for i, s in enumerate(raw_steps)] if isinstance(raw_steps, list) else []
    automation_id = _str(doc.get("automation_id")) or automation
    created, updated = _str(doc.get("created_at")), _str(doc.get("updated_at"))
    finished = updated if status in TERMINAL else None

    error = None
    message = doc.get("error")
    if _text(message) or (message is not None and not isinstance(message, str)):
        failed = next((s for s in steps if s.status == "failed"), None)
        error = RunError(
            message=_str(message),
            step=failed.key if failed else None,
            detail=failed.error if failed and failed.error != _str(message) else None,
        )

    extra: dict[str, Any] = {"steps_count": as_count(doc.get("steps_count"))}
    if extra["steps_count"] is None and doc.get("steps_count") is not None:
        extra["steps_count_raw"] = doc.get("steps_count")
    current = doc.get("current_step")
    if isinstance(current, dict) and _text(current.get("id")):
        extra["current_step_id"] = current["id"]

    return Run(
        id=session_id,
        provider="generic",
        # Sessions have no name: the automation they belong to names them.
        name=_text(doc.get("name")) or automation_id,
        automation_id=automation_id,
        status=status,
        provider_status=provider_status,
        trigger=Trigger(payload=doc.get("inputs"), occurred_at=created),
        created_at=created,
        updated_at=updated,
        started_at=created,
        finished_at=finished,
        duration_ms=duration_ms(created, finished),
        steps=steps,
        current_step=current_step_name(current),
        error=error,
        extra=extra,
        raw=doc,
    )


class GenericProvider(Provider):
    name = "generic"
    needs_automation = True
    # The API documents no order for sessions: `list` sorts on the client.
    server_sorts = frozenset()

    @classmethod
    def recognizes(cls, doc: Any) -> bool:
        return is_session(doc) and "automation_id" in doc and ("inputs" in doc or "steps_count" in doc)

    @classmethod
    def map_document(cls, doc: Any) -> Run:
        return map_session(doc)

    def _automation(self, candidate: str | None = None) -> str:
        automation = candidate or self.require_automation()
        if not SAFE_ID_RE.match(automation):
            raise UsageError(
                f"malformed automation ID {automation!r}",
                hint="pass the automation's ID with --automation (letters, digits and - _ . :)",
            )
        return automation

    def _run_automation(self, run: Run) -> str:
        """The automation a run belongs to: its own, else the configured one."""
        own = run.automation_id
        if own and SAFE_ID_RE.match(own):
            return own
        return self._automation()

    def iter_runs(self, query: ListQuery) -> Iterator[Run]:
        assert self.http is not None
        automation = self._automation(query.automation)
        path = self.path("list_path", LIST_PATH, automation_id=automation)
        for item in self.http.paginate(path, {}, PAGES, want=query.limit):
            yield map_session(item, automation)

    def latest_id(self, query: ListQuery) -> str | None:
        """The newest session: the API's order is undocumented, so every page is read."""
        best: tuple[float, str] | None = None
        for run in self.iter_runs(ListQuery(automation=query.automation, limit=None)):
            when = parse_ts(run.created_at)
            key = (when.timestamp() if when else float("-inf"), run.id)
            if best is None or key > best:
                best = key
        return best[1] if best else None

    def get_run(self, run_id: str) -> Run:
        assert self.http is not None
        automation = self._automation()
        run_id = self.validate_id(run_id)
        doc = self.http.get_json(self.path("get_path", GET_PATH, automation_id=automation, id=run_id))
        return map_session(doc, automation)

    def retry(self, run: Run) -> Run:
        """Start a new session of the same automation with the run's recorded inputs."""
        assert self.http is not None
        automation = self._run_automation(run)
        inputs: Any = None
        if isinstance(run.raw, dict) and "inputs" in run.raw:
            inputs = run.raw["inputs"]
        elif run.trigger is not None:
            inputs = run.trigger.payload
        body = self.http.send_json(
            "POST",
            self.path("retry_path", RETRY_PATH, automation_id=automation),
            {"inputs": inputs if inputs is not None else {}},
        )
        if not is_session(body):
            raise BadResponseError(
                "the API started a session but did not return it: "
                + excerpt(json.dumps(body, default=str)[:300]),
                hint=f"look for the new session with `autorun list --automation {automation}`",
            )
        return map_session(body, automation)

    def cancel(self, run: Run) -> Run:
        """Cancel a session; return it as the API now reports it."""
        assert self.http is not None
        automation = self._run_automation(run)
        run_id = self.validate_id(run.id)
        body = self.http.send_json(
            "PATCH", self.path("cancel_path", CANCEL_PATH, automation_id=automation, id=run_id)
        )
        if is_session(body) and body.get("id") == run_id:
            return map_session(body, automation)
        doc = self.http.get_json(self.path("get_path", GET_PATH, automation_id=automation, id=run_id))
        return map_session(doc, automation)
