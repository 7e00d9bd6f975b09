"""The tenant provider against what Alga PSA's server really answers (issue 13).

Documents are shaped exactly by Alga's ``automationExecutionSchema``
(server/src/lib/api/schemas/automationSchemas.ts): every key present, the nullable
ones null, every status of its enum; ``_links`` as ``ApiAutomationController`` builds
them (``generateResourceLinks`` objects, the rule, ``retry`` only on a failed
execution). End-to-end tests run on the loopback test server in each error dialect:
``500`` (older servers, message shown), ``masked`` (older production servers: "An
unexpected error occurred") and ``current`` (404 NOT_FOUND / 409 CONFLICT).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from apiserver import TENANT_ID, TENANT_RULES, TENANT_SEED_ID, ApiServer
from rich.console import Console
from typer.testing import CliRunner

import autorun_cli.http as http_mod
from autorun_cli.cli.app import app
from autorun_cli.errors import NotAllowedError
from autorun_cli.providers.base import Settings
from autorun_cli.providers.tenant import TenantProvider, map_execution
from autorun_cli.render import next_command_hint, run_view

runner = CliRunner()
ENUM = ("pending", "running", "completed", "failed", "cancelled", "timeout", "skipped")
NORMALIZED = {"timeout": "timed_out"}
EXEC_ID = "a19a0000-0000-4000-8000-000000000001"
MISSING = "0badc0de-0000-4000-8000-00000000dead"
BASE = "/api/v1/automation/executions"


def alga(status: str, **changes: Any) -> dict[str, Any]:
    """An execution as Alga stores it: every schema key, the nullable ones null."""
    ended = status not in ("pending", "running")
    doc: dict[str, Any] = {
        "execution_id": EXEC_ID,
        "automation_rule_id": TENANT_RULES[0],
        "trigger_data": {"event_type": "TICKET_CREATED", "ticket_id": "T-7"},
        "status": status,
        "started_at": "2026-07-02T10:00:00.000Z",
        "completed_at": "2026-07-02T10:00:03.000Z" if ended else None,
        "duration_ms": 3000 if ended else None,
        "actions_total": 3,
        "actions_successful": {"completed": 3, "failed": 1, "running": 1}.get(status, 0),
        "actions_failed": 1 if status == "failed" else 0,
        "error_message": "Webhook returned 502" if status == "failed" else None,
        "error_stack": "Error: Webhook returned 502\n    at WebhookAction.execute (webhook.ts:57:13)" if status == "failed" else None,
        "failed_action_index": 1 if status == "failed" else None,
        "execution_context": {"manual_execution": False, "triggered_by": None, "dry_run": False},
        "logs": [
            {"timestamp": "2026-07-02T10:00:01.000Z", "level": "info", "message": "Ticket assigned", "action_index": 0,
             "metadata": {"assignee": "tier2"}},
        ],
        "tenant": TENANT_ID,
    }
    doc.update(changes)
    return doc


def links(doc: dict[str, Any]) -> dict[str, Any]:
    rid, base = doc["execution_id"], "/api/v1"
    out: dict[str, Any] = {
        "self": {"href": f"{base}/automation/executions/{rid}", "method": "GET", "rel": "self"},
        "edit": {"href": f"{base}/automation/executions/{rid}", "method": "PUT", "rel": "edit"},
        "patch": {"href": f"{base}/automation/executions/{rid}", "method": "PATCH", "rel": "partial-update"},
        "delete": {"href": f"{base}/automation/executions/{rid}", "method": "DELETE", "rel": "delete"},
        "collection": {"href": f"{base}/automation/executions", "method": "GET", "rel": "collection"},
        "rule": f"{base}/automation/rules/{doc['automation_rule_id']}",
    }
    if doc["status"] == "failed":
        out["retry"] = f"{base}/automation/executions/{rid}/retry"
    return out


def answered(doc: dict[str, Any]) -> dict[str, Any]:
    """GET /api/v1/automation/executions/{id} as createSuccessResponse wraps it."""
    return {"data": {**doc, "_links": links(doc)}}


def human(run: Any, details: bool = False) -> str:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(run_view(run, "iso", details=details))
    return console.file.getvalue()  # type: ignore[attr-defined]


# -- 1. retry only where Alga retries ---------------------------------------------------


@pytest.mark.parametrize("status", ENUM)
def test_every_status_maps_and_only_failed_is_offered_a_retry(status: str):
    run = map_execution(answered(alga(status)))
    assert run.status == NORMALIZED.get(status, status) and run.provider_status == status
    assert run.extra["retryable"] is (status == "failed")
    hint = next_command_hint(run) or ""
    assert ("autorun retry" in hint) is (status == "failed")
    provider = TenantProvider(Settings(provider="tenant"))
    if status == "failed":
        provider.check_retry(run)
        return
    for force in (False, True):
        with pytest.raises(NotAllowedError) as exc:
            provider.check_retry(run, force=force)
        assert exc.value.exit_code == 4
        assert "only failed executions" in exc.value.message
        # The hint names only what can succeed: never retry or --force.
        assert "retry" not in (exc.value.hint or "") and "--force" not in (exc.value.hint or "")
        assert f"autorun {'watch' if status in ('pending', 'running') else ('replay' if status in ('cancelled', 'timeout') else 'show')} {EXEC_ID}" in exc.value.hint


def test_without_links_only_failed_or_forced_goes_to_the_server():
    provider = TenantProvider(Settings(provider="tenant"))
    cancelled = map_execution(alga("cancelled"))  # a list item: no _links
    assert cancelled.extra["retryable"] is None
    with pytest.raises(NotAllowedError):
        provider.check_retry(cancelled)
    provider.check_retry(cancelled, force=True)  # the server decides
    provider.check_retry(map_execution(alga("failed")))


def test_a_retry_link_on_an_execution_that_did_not_fail_is_followed_only_with_force():
    """Alga links retry only on failed executions; a server that links it on another
    gets Alga's rule in the refusal, not the generic "failed, cancelled or timed-out"."""
    provider = TenantProvider(Settings(provider="tenant"))
    doc = alga("cancelled")
    run = map_execution({"data": {**doc, "_links": {**links(doc), "retry": f"{BASE}/{EXEC_ID}/retry"}}})
    assert run.extra["retryable"] is True
    with pytest.raises(NotAllowedError) as exc:
        provider.check_retry(run)
    assert exc.value.message == f"execution {EXEC_ID} is cancelled: Alga PSA retries only failed executions"
    assert f"`autorun retry {EXEC_ID} --force`" in (exc.value.hint or "")
    provider.check_retry(run, force=True)  # the link is followed; the server decides


# -- 3. dry runs ---------------------------------------------------------------------


def test_a_dry_run_ran_nothing():
    doc = alga("completed", actions_total=1, actions_successful=0, duration_ms=0, completed_at="2026-07-02T10:00:00.000Z",
               execution_context={"manual_execution": True, "triggered_by": "u-1", "dry_run": True}, logs=[])
    run = map_execution(answered(doc))
    assert run.status == "completed" and run.extra["dry_run"] is True
    assert [(s.key, s.status) for s in run.steps] == [("action_0", "skipped")]
    assert "dry run: no action ran" in human(run)
    assert run.to_json()["extra"]["dry_run"] is True
    assert map_execution(answered(alga("completed"))).extra["dry_run"] is False


# -- 4. failed_action_index out of range ---------------------------------------------


@pytest.mark.parametrize("index, step", [(3, "action_1"), (99, "action_1"), (-1, "action_1"), (2, "action_2"), (0, "action_0")])
def test_failed_action_index_never_names_a_missing_step(index: int, step: str):
    run = map_execution(answered(alga("failed", failed_action_index=index)))
    keys = [s.key for s in run.steps]
    assert run.error.step == step and run.error.step in keys
    assert [s.key for s in run.steps if s.status == "failed"] == [step]
    assert run.extra["failed_action_index"] == index  # as the API gave it


def test_failed_with_nothing_to_point_at_leaves_the_step_null():
    run = map_execution(answered(alga("failed", actions_total=2, actions_successful=2, failed_action_index=2)))
    assert run.error.step is None
    assert [s.status for s in run.steps] == ["completed", "completed"]


# -- 5. a failed execution without error_message -------------------------------------


def test_failed_without_error_message_says_so_and_shows_the_stack():
    run = map_execution(answered(alga("failed", error_message=None)))
    assert run.error.message == "failed (the API gave no error message)"
    assert run.error.detail.startswith("Error: Webhook returned 502")
    view = human(run)
    assert "failed (the API gave no error message)" in view and "webhook.ts:57:13" in view
    bare = map_execution(answered(alga("failed", error_message=None, error_stack=None)))
    assert bare.error.message == "failed (the API gave no error message)" and bare.error.detail is None
    timed_out = map_execution(answered(alga("timeout")))
    assert timed_out.error.message == "timed out (the API gave no error message)"


# -- 6. after a retry --------------------------------------------------------------


def retried(status: str, logs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What Alga's retry leaves: pending, a new started_at, the old logs and index."""
    old = [
        {"timestamp": "2026-07-02T10:00:01.000Z", "level": "info", "message": "Ticket assigned", "action_index": 0},
        {"timestamp": "2026-07-02T10:00:02.000Z", "level": "error", "message": "Webhook returned 502", "action_index": 1,
         "metadata": {"http_status": 502}},
    ]
    return alga(status, started_at="2026-07-02T11:00:00.000Z", failed_action_index=1, logs=old + (logs or []),
                actions_successful=1 if status == "running" else 0)


def test_a_retried_execution_is_not_painted_with_the_old_failure():
    run = map_execution(answered(retried("pending")))
    assert [s.status for s in run.steps] == ["pending"] * 3
    assert all(s.info is None and s.error is None for s in run.steps)
    assert run.error is None
    assert [log.previous_attempt for log in run.logs] == [True, True]
    assert run.extra["previous_attempt"] == {"failed_action_index": 1, "error_message": None, "logs": 2}
    view = human(run)
    assert "the previous attempt failed at action 2" in view
    assert view.count("previous attempt · ") == 2
    assert "autorun watch" in view and "Error" not in view


def test_a_retried_running_execution_shows_only_this_attempts_logs_on_its_steps():
    new = [{"timestamp": "2026-07-02T11:00:01.000Z", "level": "info", "message": "Ticket reassigned", "action_index": 0}]
    run = map_execution(answered(retried("running", new)))
    assert [s.status for s in run.steps] == ["completed", "running", "pending"]
    assert run.steps[0].info == "Ticket reassigned"  # not "Ticket assigned" from before
    assert run.steps[1].info is None and run.steps[1].error is None
    assert [log.previous_attempt for log in run.logs] == [True, True, False]


def test_a_run_that_was_never_retried_has_no_previous_attempt():
    run = map_execution(answered(alga("failed")))
    assert "previous_attempt" not in run.extra
    assert [log.previous_attempt for log in run.logs] == [False]


# -- 7. logs[].metadata ------------------------------------------------------------


def test_log_metadata_in_json_and_in_the_detailed_view():
    run = map_execution(answered(alga("completed")))
    assert run.to_json()["logs"][0]["metadata"] == {"assignee": "tier2"}
    assert "tier2" not in human(run)
    assert '{"assignee": "tier2"}' in human(run, details=True)


# -- end to end, in each error dialect ---------------------------------------------


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AUTORUN_PROVIDER", "AUTORUN_BASE_URL", "AUTORUN_TOKEN", "AUTORUN_PROFILE", "AUTORUN_OUTPUT",
                "AUTORUN_AUTOMATION_ID", "AUTORUN_TENANT_ID", "AUTORUN_DEBUG", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(http_mod, "sleep", lambda _s: None)


@pytest.fixture(params=["500", "masked", "current"])
def alga_server(request: pytest.FixtureRequest, api_server: ApiServer) -> ApiServer:
    api_server.state.tenant_errors = request.param
    for i, status in enumerate(ENUM):
        api_server.state.add("tenant", alga(status, execution_id=f"a19a0000-0000-4000-8000-00000000010{i}"))
    return api_server


def enum_id(status: str) -> str:
    return f"a19a0000-0000-4000-8000-00000000010{ENUM.index(status)}"


def cli(server: ApiServer, *args: str) -> Any:
    return runner.invoke(app, list(args), env=server.env("tenant", COLUMNS="120"))


def one_error(result: Any) -> tuple[str, str]:
    lines = result.stderr.splitlines()
    (error,) = [ln[len("error: "):] for ln in lines if ln.startswith("error: ")]
    (hint,) = [ln[len("hint: "):] for ln in lines if ln.startswith("hint: ")]
    assert "Traceback" not in result.stderr + result.stdout
    return error, hint


def test_missing_execution_in_each_dialect(alga_server: ApiServer):
    result = cli(alga_server, "show", MISSING)
    error, hint = one_error(result)
    gets = alga_server.requests_to(MISSING)
    if alga_server.state.tenant_errors == "masked":
        # The message is hidden: maybe missing, maybe down. Retried, then both said.
        assert result.exit_code == 5
        assert "An unexpected error occurred" in error and "does not exist" in error
        assert "autorun list" in hint and len(gets) == 4
    else:
        assert result.exit_code == 3
        assert "Automation execution not found" in error and "autorun list" in hint
        assert "--tenant" in hint  # the tenant's own hint: a wrong tenant reads as missing too
        assert len(gets) == 1  # a final answer is not retried


@pytest.mark.parametrize("status", [s for s in ENUM if s != "failed"])
def test_retry_of_a_non_failed_execution_is_refused_without_a_request(alga_server: ApiServer, status: str):
    for args in (("retry", enum_id(status)), ("retry", enum_id(status), "--force")):
        result = cli(alga_server, *args)
        assert result.exit_code == 4, result.stderr
        error, hint = one_error(result)
        assert "Alga PSA retries only failed executions" in error
        assert "retry" not in hint and "--force" not in hint
    assert alga_server.requests_to("/retry") == []
    assert "autorun retry" not in cli(alga_server, "show", enum_id(status)).stdout


def test_retry_of_a_failed_execution_and_what_show_says_after(alga_server: ApiServer):
    rid = enum_id("failed")
    before = cli(alga_server, "show", rid)
    assert f"hint: autorun retry {rid}" in before.stdout
    result = cli(alga_server, "retry", rid)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{rid}\n" and result.stderr.strip() == f"retried {rid} (pending)"
    (post,) = alga_server.requests_to("/retry", "POST")
    assert post["path"] == f"{BASE}/{rid}/retry"
    shown = json.loads(cli(alga_server, "show", rid, "-o", "json").stdout)
    assert shown["status"] == "pending" and shown["error"] is None
    assert [s["status"] for s in shown["steps"]] == ["pending"] * 3
    assert [log["previous_attempt"] for log in shown["logs"]] == [True]
    assert shown["extra"]["previous_attempt"]["failed_action_index"] == 1
    view = cli(alga_server, "show", rid).stdout
    assert "previous attempt · Ticket assigned" in view and "Error" not in view
    # Now pending: a second retry is refused locally, no second POST.
    again = cli(alga_server, "retry", rid)
    assert again.exit_code == 4 and len(alga_server.requests_to("/retry", "POST")) == 1


def test_server_refusing_a_retry_in_each_dialect(alga_server: ApiServer):
    """The execution was failed when read, and is not when the POST arrives."""
    rid = enum_id("failed")
    dialect = alga_server.state.tenant_errors
    status, message = {"current": (409, "Only failed executions can be retried"),
                       "500": (500, "Only failed executions can be retried"),
                       "masked": (500, "An unexpected error occurred")}[dialect]
    code = {409: "CONFLICT", 500: "INTERNAL_ERROR"}[status]
    alga_server.faults.body(json.dumps({"error": {"code": code, "message": message}}).encode(), status=status, path="/retry")
    result = cli(alga_server, "retry", rid)
    error, hint = one_error(result)
    assert message in error
    assert f"autorun show {rid}" in hint
    assert len(alga_server.requests_to("/retry", "POST")) == 1  # never repeated
    assert result.exit_code == (5 if dialect == "masked" else 4)


def test_dry_run_end_to_end(api_server: ApiServer):
    rid = api_server.state.add("tenant", alga(
        "completed", execution_id="d4700000-0000-4000-8000-000000000001", actions_total=1, actions_successful=0,
        duration_ms=0, execution_context={"manual_execution": True, "triggered_by": "u-1", "dry_run": True}, logs=[]))
    view = cli(api_server, "show", rid)
    assert view.exit_code == 0 and "dry run: no action ran" in view.stdout
    doc = json.loads(cli(api_server, "show", rid, "-o", "json").stdout)
    assert doc["extra"]["dry_run"] is True and [s["status"] for s in doc["steps"]] == ["skipped"]
    refused = cli(api_server, "retry", rid)
    assert refused.exit_code == 4
    error, hint = one_error(refused)
    assert "(a dry run)" in error and "dry run ran no action" in hint


def test_log_metadata_end_to_end(api_server: ApiServer):
    doc = json.loads(cli(api_server, "show", TENANT_SEED_ID, "-o", "json").stdout)
    assert doc["logs"][2]["metadata"] == {"host": "smtp.example.com"}
    assert [log["metadata"] for log in doc["logs"][:2]] == [None, None]
    assert "smtp.example.com" not in cli(api_server, "show", TENANT_SEED_ID).stdout
    for flag in ("-v", "--raw"):
        assert '{"host": "smtp.example.com"}' in cli(api_server, "show", TENANT_SEED_ID, flag).stdout
