"""The tenant provider (Alga PSA executions) against respx-mocked responses."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

import httpx
import pytest
from respx_helpers import BASE, load

from autorun_cli.errors import (
    AuthError,
    BadResponseError,
    NotAllowedError,
    NotFoundError,
    ServiceError,
    UsageError,
)
from autorun_cli.providers import make_provider
from autorun_cli.providers.base import ListQuery, Settings
from autorun_cli.providers.tenant import STATUS_TABLE, TenantProvider, derive_steps, map_execution
from autorun_cli.status import normalize

TOKEN = "tk_live_SECRET_1234567890"
TENANT = "5f4e3d2c-1b0a-4f9e-8d7c-6b5a4f3e2d1c"
LIST = "/api/v1/automation/executions"
FAILED_ID = "7d3e2c1a-5b4f-4e8a-9c2d-1f0e3a4b5c6d"
STRING_LINKS_ID = "2b9f1e7c-3d4a-4c5b-9e6f-7a8b9c0d1e2f"
COMPLETED_ID = "0e5c8a3f-9b2d-4f1e-a6c7-d8e9f0a1b2c3"


# Backoffs are recorded, not slept (conftest.delays).
pytestmark = pytest.mark.usefixtures("delays")


@pytest.fixture
def provider():
    p = make_provider(Settings(provider="tenant", base_url=BASE, token=TOKEN, tenant=TENANT))
    yield p
    p.close()


def execution(i: int, status: str = "completed") -> dict:
    return {
        "execution_id": f"{i:08x}-0000-4000-8000-{i:012x}",
        "automation_rule_id": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        "status": status,
        "started_at": "2025-03-14T09:00:00Z",
        "actions_total": 1,
        "actions_successful": 1,
        "actions_failed": 0,
        "tenant": TENANT,
    }


# -- mapping of every fixture ------------------------------------------------


def test_failed_execution_maps_every_field():
    run = map_execution(load("tenant_execution_failed.json"))
    assert run.id == FAILED_ID
    assert run.provider == "tenant"
    assert run.status == "failed" and run.provider_status == "failed"
    assert run.automation_id == "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
    assert run.name == "Escalate high-priority tickets"  # execution_context.rule_name
    assert run.trigger.event == "TICKET_CREATED"
    assert run.trigger.payload["client_name"] == "Contoso Ltd"
    assert run.started_at == "2025-03-14T09:26:53.589Z"
    assert run.finished_at == "2025-03-14T09:26:55.120Z"
    assert run.created_at == run.started_at
    assert run.duration_ms == 1531
    # Steps derived from the counts: before the failed index completed, it failed, rest skipped.
    assert [(s.key, s.name, s.status) for s in run.steps] == [
        ("action_0", "action 1", "completed"),
        ("action_1", "action 2", "failed"),
        ("action_2", "action 3", "skipped"),
        ("action_3", "action 4", "skipped"),
    ]
    assert run.steps[1].error == "SMTP connection refused by mail.contoso.example:587"
    assert run.steps[0].error is None
    assert run.steps[0].info == "Assigned ticket to Tier 2"
    # The log line that repeats the step's error is left out of info (it is the error).
    assert run.steps[1].info == "Rendering template escalation_notice"
    assert run.steps[0].type is None
    assert run.steps[2].info is None
    # Logs: every entry, action_index → step_index (None for run-level entries).
    assert len(run.logs) == 4
    assert run.logs[0].step_index is None and run.logs[0].message == "Execution started"
    assert [log.step_index for log in run.logs] == [None, 0, 1, 1]
    assert run.logs[3].level == "error"
    assert run.error.message == "SMTP connection refused by mail.contoso.example:587"
    assert run.error.step == "action_1"
    assert run.error.detail.startswith("Error: SMTP connection refused")
    assert "email.ts:88" in run.error.detail
    # Links: objects normalized to hrefs, methods kept.
    assert run.links == {
        "self": f"/api/v1/automation/executions/{FAILED_ID}",
        "rule": "/api/v1/automation/rules/a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        "retry": f"/api/v1/automation/executions/{FAILED_ID}/retry",
    }
    assert run.extra["link_methods"]["retry"] == "PATCH"
    assert run.extra["actions_total"] == 4
    assert run.extra["actions_successful"] == 1
    assert run.extra["actions_failed"] == 1
    assert run.extra["tenant"] == TENANT
    assert run.extra["execution_context"]["triggered_by"] == "event"
    # raw is the API's document untouched; JSON output has every contract key.
    assert run.raw == load("tenant_execution_failed.json")
    out = run.to_json(raw=True)
    assert out["raw"]["data"]["_links"]["retry"]["method"] == "PATCH"
    assert "raw" not in run.to_json()
    for key in ("waits", "messages", "identity", "current_step", "links", "error"):
        assert key in out


def test_string_links_and_computed_duration():
    run = map_execution(load("tenant_execution_failed_string_links.json"))
    assert run.id == STRING_LINKS_ID
    assert run.links["retry"] == f"/api/v1/automation/executions/{STRING_LINKS_ID}/retry"
    assert "link_methods" not in run.extra
    # duration_ms null in the API: computed from the offset-aware timestamps.
    assert run.duration_ms == 4250
    assert [s.status for s in run.steps] == ["completed", "completed", "failed"]
    assert run.steps[2].info == "Webhook answered 502, giving up"
    assert run.error.step == "action_2" and run.error.detail is None
    # No rule_name in the context: the rule id names the run.
    assert run.name == "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
    assert run.trigger.event == "INVOICE_OVERDUE"


def test_completed_execution():
    run = map_execution(load("tenant_execution_completed.json"))
    assert run.status == "completed"
    assert [s.status for s in run.steps] == ["completed", "completed"]
    assert run.error is None
    assert "retry" not in run.links
    assert run.links["self"].endswith(COMPLETED_ID)
    assert run.duration_ms == 2400
    assert run.updated_at == "2025-03-16T08:00:02.400Z"
    assert run.logs[-1].message == "Execution completed" and run.logs[-1].step_index is None
    assert run.current_step is None


def test_list_fixtures_map():
    runs = [map_execution(x) for x in load("tenant_list.json")["data"]]
    assert [r.status for r in runs] == ["completed", "running", "failed"]
    running = runs[1]
    assert [s.status for s in running.steps] == ["completed", "running", "pending"]
    assert running.current_step == "action_1"
    assert running.finished_at is None and running.duration_ms is None
    failed = runs[2]
    assert [s.status for s in failed.steps] == ["failed", "skipped", "skipped"]
    assert failed.error.message == "Ticket board not found"
    nested = load("tenant_list_nested.json")["data"][0]
    timed_out, pending = (map_execution(x) for x in nested)
    assert timed_out.status == "timed_out" and timed_out.provider_status == "timeout"
    # No failed index: the action after the successful one timed out.
    assert [s.status for s in timed_out.steps] == ["completed", "timed_out", "skipped"]
    assert [s.status for s in pending.steps] == ["pending"] * 3


# -- status table and step derivation ---------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("pending", "pending"),
        ("running", "running"),
        ("completed", "completed"),
        ("failed", "failed"),
        ("cancelled", "cancelled"),
        ("timeout", "timed_out"),
        ("skipped", "skipped"),
        ("FAILED", "failed"),
        (" Timeout ", "timed_out"),
        ("paused", "unknown"),
        # Not in Alga's enum: no guessed synonyms (issue 12, item 14).
        ("timed_out", "unknown"),
        ("canceled", "unknown"),
        ("waiting", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
        (123, "unknown"),
        (["failed"], "unknown"),
    ],
)
def test_status_table(value, expected):
    assert normalize(value, STATUS_TABLE) == expected


def test_unknown_status_kept_and_never_crashes():
    doc = {**execution(9), "status": "exploded", "actions_total": 3, "actions_successful": 1}
    run = map_execution(doc)
    assert run.status == "unknown" and run.provider_status == "exploded"
    assert [s.status for s in run.steps] == ["completed", "unknown", "unknown"]


@pytest.mark.parametrize(
    "status, counts, expected",
    [
        ("cancelled", {"actions_successful": 1}, ["completed", "skipped", "skipped"]),
        ("failed", {"actions_successful": 1}, ["completed", "failed", "skipped"]),
        ("skipped", {}, ["skipped"] * 3),
        ("completed", {"actions_successful": "3"}, ["completed"] * 3),
        ("running", {"actions_successful": 0}, ["running", "pending", "pending"]),
        ("failed", {"failed_action_index": 7}, ["failed", "skipped", "skipped"]),  # out of range: ignored
    ],
)
def test_derive_steps(status, counts, expected):
    doc = {"actions_total": 3, "actions_successful": 0, **counts}
    assert [s.status for s in derive_steps(status, doc, [])] == expected


@pytest.mark.parametrize("total", [None, "many", -2, 0, True])
def test_odd_totals_give_no_steps(total):
    run = map_execution({**execution(3), "actions_total": total, "logs": "not a list", "_links": ["x"]})
    assert run.steps == [] and run.logs == [] and run.links == {}


def test_execution_without_id_is_a_bad_response():
    with pytest.raises(BadResponseError):
        map_execution({"data": {"status": "failed"}})
    with pytest.raises(BadResponseError):
        map_execution(["not", "an", "object"])


def test_links_beside_data_are_folded_in():
    doc = {"data": execution(5, "failed"), "_links": {"retry": {"href": "/r", "method": "put"}}}
    run = map_execution(doc)
    assert run.links["retry"] == "/r" and run.extra["link_methods"]["retry"] == "PUT"


# -- requests: headers, filters, pagination ---------------------------------


def test_headers_api_key_and_tenant_no_authorization(provider, api):
    route = api.get(f"{LIST}/{FAILED_ID}").respond(json=load("tenant_execution_failed.json"))
    run = provider.get_run(FAILED_ID)
    assert run.id == FAILED_ID
    req = route.calls.last.request
    assert req.headers["x-api-key"] == TOKEN
    assert req.headers["x-tenant-id"] == TENANT
    assert "authorization" not in req.headers
    assert req.headers["accept"] == "application/json"


def test_no_tenant_header_without_tenant():
    headers = TenantProvider.auth_headers(Settings(provider="tenant", token=TOKEN))
    assert headers == {"x-api-key": TOKEN}
    assert TenantProvider.auth_headers(Settings(provider="tenant")) == {}


def test_filters_reach_the_server(provider, api):
    route = api.get(LIST).respond(json=load("tenant_list.json"))
    query = ListQuery(
        statuses=["timed_out"],
        automation="a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        since=datetime(2025, 3, 14, 8, 0, tzinfo=UTC),
        until=datetime(2025, 3, 15, 0, 0, tzinfo=UTC),
        limit=500,
    )
    runs = list(provider.iter_runs(query))
    assert len(runs) == 3
    params = route.calls.last.request.url.params
    assert params["status"] == "timeout"
    assert params["automation_rule_id"] == "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
    assert params["started_from"] == "2025-03-14T08:00:00Z"
    assert params["started_to"] == "2025-03-15T00:00:00Z"
    assert params["page"] == "1"
    assert params["limit"] == "100"  # capped at the API's maximum


def test_several_statuses_and_settings_automation(api):
    p = make_provider(Settings(provider="tenant", base_url=BASE, token=TOKEN, automation="rule-from-profile"))
    route = api.get(LIST).respond(json={"data": [], "pagination": {"page": 1, "hasNext": False}})
    assert list(p.iter_runs(ListQuery(statuses=["failed", "running"], limit=5))) == []
    params = route.calls.last.request.url.params
    assert "status" not in params  # several statuses: filtered on the client
    assert params["automation_rule_id"] == "rule-from-profile"
    assert params["limit"] == "100"  # filtered here: full pages, not pages of --limit
    # "waiting" has no tenant equivalent: not sent at all.
    list(p.iter_runs(ListQuery(statuses=["waiting"])))
    assert "status" not in route.calls.last.request.url.params
    p.close()


def _paged(mock):
    pages = {
        1: [execution(1), execution(2)],
        2: [execution(3), execution(4)],
        3: [execution(5)],
    }

    def handler(request):
        page = int(request.url.params["page"])
        return httpx.Response(
            200,
            json={
                "data": pages[page],
                "pagination": {"page": page, "limit": 2, "total": 5, "totalPages": 3, "hasNext": page < 3},
            },
        )

    return mock.get(LIST).mock(side_effect=handler)


def test_page_pagination_over_three_pages(provider, api):
    route = _paged(api)
    runs = list(provider.iter_runs(ListQuery(limit=None)))
    assert len(runs) == 5
    assert [r.id for r in runs][-1] == execution(5)["execution_id"]
    assert [c.request.url.params["page"] for c in route.calls] == ["1", "2", "3"]
    assert route.call_count == 3


def test_pagination_is_lazy(provider, api):
    route = _paged(api)
    first = list(itertools.islice(provider.iter_runs(ListQuery(limit=None)), 2))
    assert len(first) == 2
    assert route.call_count == 1  # page 2 not fetched
    three = list(itertools.islice(provider.iter_runs(ListQuery(limit=None)), 3))
    assert len(three) == 3
    assert route.call_count == 3  # one more listing: pages 1 and 2 only


def test_nested_data_list_accepted(provider, api):
    api.get(LIST).respond(json=load("tenant_list_nested.json"))
    runs = list(provider.iter_runs(ListQuery()))
    assert [r.status for r in runs] == ["timed_out", "pending"]


def test_total_pages_without_has_next(provider, api):
    def handler(request):
        page = int(request.url.params["page"])
        return httpx.Response(200, json={"data": [execution(page)], "pagination": {"page": page, "totalPages": 2}})

    route = api.get(LIST).mock(side_effect=handler)
    assert len(list(provider.iter_runs(ListQuery(limit=None)))) == 2
    assert route.call_count == 2


def test_list_path_override(api):
    p = make_provider(
        Settings(provider="tenant", base_url=BASE, token=TOKEN, paths={"list_path": "/v2/executions"})
    )
    route = api.get("/v2/executions").respond(json={"data": [execution(1)]})
    assert len(list(p.iter_runs(ListQuery()))) == 1
    assert route.called
    p.close()


# -- errors --------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["123", "not-a-uuid", "7d3e2c1a-5b4f-4e8a-9c2d-1f0e3a4b5c6", "../admin", ""])
def test_malformed_uuid_refused_before_any_request(provider, api, bad):
    route = api.route().respond(200, json={})
    with pytest.raises(UsageError) as exc:
        provider.get_run(bad)
    assert exc.value.exit_code == 2
    assert exc.value.hint
    assert route.call_count == 0


def test_500_not_found_is_not_found(provider, api, delays):
    route = api.get(f"{LIST}/{FAILED_ID}").respond(
        500, json={"error": {"code": "INTERNAL_ERROR", "message": "Execution not found", "details": None}}
    )
    with pytest.raises(NotFoundError) as exc:
        provider.get_run(FAILED_ID)
    assert exc.value.exit_code == 3
    assert "Execution not found" in exc.value.message
    assert "autorun list" in exc.value.hint
    assert route.call_count == 1  # a final answer is not retried
    assert delays == []


def test_500_not_found_with_string_error_body(provider, api):
    api.get(f"{LIST}/{FAILED_ID}").respond(500, json={"error": "Automation execution NOT FOUND"})
    with pytest.raises(NotFoundError) as exc:
        provider.get_run(FAILED_ID)
    assert "Automation execution NOT FOUND" in exc.value.message


def test_500_other_is_service_error_after_retries(provider, api, delays):
    route = api.get(f"{LIST}/{FAILED_ID}").respond(
        500, json={"error": {"code": "INTERNAL_ERROR", "message": "Database connection lost"}}
    )
    with pytest.raises(ServiceError) as exc:
        provider.get_run(FAILED_ID)
    assert not isinstance(exc.value, NotFoundError)
    assert exc.value.exit_code == 5
    assert "Database connection lost" in exc.value.message
    assert route.call_count == 4  # 1 + 3 retries
    assert len(delays) == 3


def test_403_is_not_allowed(provider, api):
    api.get(f"{LIST}/{FAILED_ID}").respond(
        403, json={"error": {"code": "FORBIDDEN", "message": "Permission denied: Cannot read automation"}}
    )
    with pytest.raises(NotAllowedError) as exc:
        provider.get_run(FAILED_ID)
    assert exc.value.exit_code == 4
    assert "Permission denied: Cannot read automation" in exc.value.message


def test_400_invalid_uuid_is_usage_error(provider, api):
    api.get(f"{LIST}/{FAILED_ID}").respond(
        400, json={"error": {"code": "VALIDATION_ERROR", "message": "Invalid execution UUID format"}}
    )
    with pytest.raises(UsageError) as exc:
        provider.get_run(FAILED_ID)
    assert "Invalid execution UUID format" in exc.value.message


def test_token_never_in_error_messages(provider, api):
    api.get(f"{LIST}/{FAILED_ID}").respond(401, json={"error": f"API key {TOKEN} is expired"})
    with pytest.raises(AuthError) as exc:
        provider.get_run(FAILED_ID)
    assert TOKEN not in exc.value.message and TOKEN not in (exc.value.hint or "")
    assert "***" in exc.value.message
    api.get(f"{LIST}/{COMPLETED_ID}").respond(500, text=f"<html>crash for key {TOKEN}</html>")
    with pytest.raises(ServiceError) as exc2:
        provider.get_run(COMPLETED_ID)
    assert TOKEN not in exc2.value.message
    assert TOKEN not in json.dumps(exc2.value.to_json())


def test_not_a_json_object_is_bad_response(provider, api):
    api.get(f"{LIST}/{FAILED_ID}").respond(200, json=[1, 2])
    with pytest.raises(BadResponseError):
        provider.get_run(FAILED_ID)


# -- retry / cancel -------------------------------------------------------------


def _pending(doc_name: str) -> dict:
    doc = load(doc_name)
    data = doc["data"]
    data.update(
        status="pending",
        completed_at=None,
        duration_ms=None,
        actions_successful=0,
        actions_failed=0,
        error_message=None,
        error_stack=None,
        failed_action_index=None,
        logs=[],
    )
    del data["_links"]["retry"]
    return doc


def test_retry_follows_object_link_with_its_method(provider, api):
    api.get(f"{LIST}/{FAILED_ID}").mock(
        side_effect=[
            httpx.Response(200, json=load("tenant_execution_failed.json")),
            httpx.Response(200, json=_pending("tenant_execution_failed.json")),
        ]
    )
    retry = api.patch(f"{LIST}/{FAILED_ID}/retry").respond(200, json={"data": {"execution_id": FAILED_ID}})
    run = provider.get_run(FAILED_ID)
    again = provider.retry(run)
    assert retry.call_count == 1
    req = retry.calls.last.request
    assert req.method == "PATCH"
    assert req.headers["x-api-key"] == TOKEN
    assert again.id == FAILED_ID and again.status == "pending"
    assert [s.status for s in again.steps] == ["pending"] * 4


def test_retry_follows_string_link_with_post(provider, api):
    api.get(f"{LIST}/{STRING_LINKS_ID}").mock(
        side_effect=[
            httpx.Response(200, json=load("tenant_execution_failed_string_links.json")),
            httpx.Response(200, json=_pending("tenant_execution_failed_string_links.json")),
        ]
    )
    retry = api.post(f"{LIST}/{STRING_LINKS_ID}/retry").respond(204)
    again = provider.retry(provider.get_run(STRING_LINKS_ID))
    assert retry.call_count == 1
    assert retry.calls.last.request.method == "POST"
    assert again.status == "pending"


def _failed_without_links() -> dict:
    """A failed execution as a list item has it: no ``_links`` (the server decides)."""
    doc = load("tenant_execution_failed_string_links.json")
    del doc["data"]["_links"]
    return doc


def test_retry_without_link_uses_profile_path(api):
    p = make_provider(
        Settings(
            provider="tenant",
            base_url=BASE,
            token=TOKEN,
            paths={"retry_path": "/api/v1/automation/executions/{id}/rerun"},
        )
    )
    api.get(f"{LIST}/{STRING_LINKS_ID}").respond(json=_failed_without_links())
    retry = api.post(f"{LIST}/{STRING_LINKS_ID}/rerun").respond(200, json={"data": {}})
    run = p.get_run(STRING_LINKS_ID)
    p.retry(run)
    assert retry.call_count == 1
    p.close()


@pytest.mark.parametrize(
    "status, body",
    [
        # Current Alga servers: ConflictError → 409 CONFLICT.
        (409, {"error": {"code": "CONFLICT", "message": "Only failed executions can be retried"}}),
        # Older ones (and development builds): a generic Error → 500 with the message.
        (500, {"error": {"code": "INTERNAL_ERROR", "message": "Only failed executions can be retried"}}),
    ],
)
def test_retry_refused_by_the_server_is_exit_4_in_both_dialects(provider, api, delays, status, body):
    api.get(f"{LIST}/{STRING_LINKS_ID}").respond(json=_failed_without_links())
    retry = api.post(f"{LIST}/{STRING_LINKS_ID}/retry").respond(status, json=body)
    run = provider.get_run(STRING_LINKS_ID)
    with pytest.raises(NotAllowedError) as exc:
        provider.retry(run)
    assert exc.value.exit_code == 4
    assert "Only failed executions can be retried" in exc.value.message  # the API's own message
    assert f"autorun show {STRING_LINKS_ID}" in exc.value.hint
    assert retry.call_count == 1 and delays == []  # final: never repeated


def test_retry_masked_500_names_what_it_may_mean(provider, api, delays):
    api.get(f"{LIST}/{STRING_LINKS_ID}").respond(json=_failed_without_links())
    retry = api.post(f"{LIST}/{STRING_LINKS_ID}/retry").respond(
        500, json={"error": {"code": "INTERNAL_ERROR", "message": "An unexpected error occurred"}}
    )
    with pytest.raises(ServiceError) as exc:
        provider.retry(provider.get_run(STRING_LINKS_ID))
    assert exc.value.exit_code == 5
    assert "not failed" in exc.value.message and f"autorun show {STRING_LINKS_ID}" in exc.value.hint
    assert retry.call_count == 1  # a POST is never repeated after a 500


def test_retry_link_to_another_host_refused(provider, api):
    doc = load("tenant_execution_failed_string_links.json")
    doc["data"]["_links"]["retry"] = "https://evil.example/steal"
    api.get(f"{LIST}/{STRING_LINKS_ID}").respond(json=doc)
    run = provider.get_run(STRING_LINKS_ID)
    # respx would raise on an unmocked request; the refusal comes first.
    with pytest.raises(BadResponseError) as exc:
        provider.retry(run)
    assert "another host" in exc.value.message
    assert len(api.calls) == 1  # only the GET


def test_retry_link_with_dangerous_method_refused(provider, api):
    doc = load("tenant_execution_failed.json")
    doc["data"]["_links"]["retry"]["method"] = "DELETE"
    api.get(f"{LIST}/{FAILED_ID}").respond(json=doc)
    route = api.delete(f"{LIST}/{FAILED_ID}/retry").respond(204)
    with pytest.raises(BadResponseError):
        provider.retry(provider.get_run(FAILED_ID))
    assert route.call_count == 0


def test_cancel_not_offered(provider):
    run = map_execution(load("tenant_execution_failed.json"))
    with pytest.raises(NotAllowedError) as exc:
        provider.cancel(run)
    assert exc.value.exit_code == 4
