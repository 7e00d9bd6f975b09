"""The generic provider (TrueState sessions) against respx-mocked responses."""

from __future__ import annotations

import copy
import itertools
import json

import httpx
import pytest
from respx_helpers import BASE, load

from autorun_cli.errors import (
    BadResponseError,
    NotFoundError,
    ServiceError,
    UsageError,
)
from autorun_cli.http import default_error_message
from autorun_cli.providers import make_provider
from autorun_cli.providers.base import ListQuery, Settings
from autorun_cli.providers.generic import STATUS_TABLE, GenericProvider, map_session, map_step
from autorun_cli.status import normalize

TOKEN = "ts_SECRET_abcdef123456"
AUTO = "6e5d4c3b-2a19-4f08-9e7d-6c5b4a392817"
FAILED_ID = "9f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f"
SEED_ID = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
SESSIONS = f"/automations/{AUTO}/sessions/"


# Backoffs are recorded, not slept (conftest.delays).
pytestmark = pytest.mark.usefixtures("delays")


def seed():
    return load("seeds/generic_session.json")


@pytest.fixture
def provider():
    p = make_provider(Settings(provider="generic", base_url=BASE, token=TOKEN, automation=AUTO))
    yield p
    p.close()


def session(i: int, status: str = "FINISHED") -> dict:
    return {
        "id": f"{i:08x}-0000-4000-8000-{i:012x}",
        "automation_id": AUTO,
        "inputs": {"n": i},
        "error": None,
        "status": status,
        "created_at": "2025-02-03T10:00:00Z",
        "updated_at": "2025-02-03T10:00:05Z",
        "steps": [],
        "steps_count": 0,
        "current_step": None,
    }


# -- mapping ---------------------------------------------------------------------


def test_seed_session_with_placeholders_maps():
    run = map_session(seed())
    assert run.id == SEED_ID and run.provider == "generic"
    assert run.automation_id == SEED_ID
    assert run.name == SEED_ID  # no name field: the automation names it
    assert run.status == "pending" and run.provider_status == "NEW"
    assert run.trigger.payload == {}
    assert run.created_at == "2023-11-07T05:31:56Z" and run.started_at == "2023-11-07T05:31:56Z"
    assert run.finished_at is None and run.duration_ms is None  # NEW is not terminal
    assert run.extra["steps_count"] == 123
    assert run.error.message == "<string>"
    assert run.current_step == "<string>"
    [step] = run.steps
    assert step.id == SEED_ID and step.key == SEED_ID
    assert step.name == "<string>" and step.type == "START"
    assert step.status == "pending" and step.provider_status == "NEW"
    assert step.info == "<string>" and step.error == "<string>"
    assert step.started_at == "2023-11-07T05:31:56Z" and step.finished_at is None
    out = run.to_json(raw=True)
    assert out["raw"] == seed()
    json.dumps(out)  # serializable


def test_failed_session_maps_every_field():
    run = map_session(load("generic_session_failed.json"))
    assert run.id == FAILED_ID
    assert run.status == "failed" and run.provider_status == "FAILED"
    assert run.automation_id == AUTO and run.name == AUTO
    assert run.trigger.payload == {"company_domain": "acme.example", "max_results": 25}
    assert run.trigger.occurred_at == "2025-02-03T10:15:00Z"
    assert run.finished_at == "2025-02-03T10:16:42Z"
    assert run.duration_ms == 102_000
    assert [(s.name, s.type, s.status) for s in run.steps] == [
        ("Resolve website", "START", "completed"),
        ("Enrich contacts", "TOOL", "failed"),
        ("Write summary", "END", "pending"),
    ]
    first, second, third = run.steps
    assert first.key == "def00000-0000-4000-8000-000000000001"
    assert first.id == "11111111-aaaa-4bbb-8ccc-000000000001"
    assert first.info == "https://acme.example"
    assert first.duration_ms == 20_000
    assert second.info == "tool_call prompt"  # no result: a prompt summary
    assert second.error == "upstream rate limit (429)"
    assert second.finished_at == "2025-02-03T10:16:42Z"
    assert third.finished_at is None and third.info is None
    assert run.current_step == "Enrich contacts"
    assert run.extra["current_step_id"] == "11111111-aaaa-4bbb-8ccc-000000000002"
    assert run.extra["steps_count"] == 3
    assert run.error.message == "Step 'Enrich contacts' failed: upstream rate limit (429)"
    assert run.error.step == "def00000-0000-4000-8000-000000000002"
    assert run.error.detail == "upstream rate limit (429)"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("NEW", "pending"),
        ("RUNNING", "running"),
        ("FINISHED", "completed"),
        ("FAILED", "failed"),
        # Not in the API's enum (a cancelled session reads FAILED): no guess.
        ("CANCELLED", "unknown"),
        ("CANCELED", "unknown"),
        ("finished", "completed"),
        (" Failed ", "failed"),
        ("PAUSED", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
        (123, "unknown"),
        ({"s": "NEW"}, "unknown"),
    ],
)
def test_status_table(value, expected):
    assert normalize(value, STATUS_TABLE) == expected


@pytest.mark.parametrize("count, expected", [(123, 123), ("7", 7), (None, None), ("<string>", None), (1.5, None), (True, None)])
def test_steps_count_never_crashes(count, expected):
    run = map_session({**session(1), "steps_count": count})
    assert run.extra["steps_count"] == expected


def test_odd_values_never_crash():
    doc = {
        **session(2, "WEIRD"),
        "error": "",
        "inputs": None,
        "steps": ["<string>", {"status": 5, "step": "not an object", "result": {"k": 1}, "error": {"code": 1}}],
        "current_step": "Draft reply",
    }
    run = map_session(doc)
    assert run.status == "unknown" and run.provider_status == "WEIRD"
    assert run.error is None  # empty error string: no error
    assert run.current_step == "Draft reply"
    a, b = run.steps
    assert a.status == "unknown" and a.name == "<string>" and a.key == "step_0"
    assert b.status == "unknown" and b.info == {"k": 1} and b.error == '{"code": 1}'
    assert b.key == "step_1" and b.name is None


def test_terminal_step_and_prompt_summaries():
    step = map_step(
        {
            "id": "s1",
            "status": "FINISHED",
            "prompt": {"type": "text", "text": "Summarise the ticket"},
            "result": "",
            "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:01.500Z",
        },
        0,
    )
    assert step.info == "Summarise the ticket" and step.duration_ms == 1500 and step.key == "s1"


def test_not_a_session_is_bad_response():
    with pytest.raises(BadResponseError):
        map_session(["x"])
    with pytest.raises(BadResponseError):
        map_session({"status": "NEW"})


# -- requests ---------------------------------------------------------------------


def test_bearer_auth_header(provider, api):
    route = api.get(f"{SESSIONS}{FAILED_ID}").respond(json=load("generic_session_failed.json"))
    provider.get_run(FAILED_ID)
    assert route.calls.last.request.headers["authorization"] == f"Bearer {TOKEN}"


def test_missing_automation_is_usage_error(api):
    p = make_provider(Settings(provider="generic", base_url=BASE, token=TOKEN))
    assert GenericProvider.needs_automation is True
    route = api.route().respond(200, json=[])
    with pytest.raises(UsageError) as exc:
        p.get_run(FAILED_ID)
    assert exc.value.exit_code == 2 and "--automation" in exc.value.hint
    with pytest.raises(UsageError):
        list(p.iter_runs(ListQuery()))
    assert route.call_count == 0
    p.close()


def test_malformed_automation_refused(api):
    p = make_provider(Settings(provider="generic", base_url=BASE, token=TOKEN, automation="../../admin"))
    route = api.route().respond(200, json=[])
    with pytest.raises(UsageError):
        p.get_run(FAILED_ID)
    assert route.call_count == 0
    p.close()


def test_get(provider, api):
    api.get(f"{SESSIONS}{FAILED_ID}").respond(json=load("generic_session_failed.json"))
    run = provider.get_run(FAILED_ID)
    assert run.id == FAILED_ID and run.status == "failed"


def test_list_offset_pagination_is_lazy(provider, api):
    items = [session(i) for i in range(1, 6)]

    def handler(request):
        offset = int(request.url.params.get("offset", "0"))
        limit = min(int(request.url.params["limit"]), 2)  # the server caps pages at 2
        return httpx.Response(200, json={"items": items[offset : offset + limit], "total": len(items)})

    route = api.get(SESSIONS).mock(side_effect=handler)
    runs = list(provider.iter_runs(ListQuery(limit=None)))
    assert [r.extra["steps_count"] for r in runs] == [0] * 5
    assert [r.trigger.payload["n"] for r in runs] == [1, 2, 3, 4, 5]
    assert [c.request.url.params.get("offset") for c in route.calls] == [None, "2", "4"]
    assert route.calls[0].request.url.params["limit"] == "100"
    before = route.call_count
    assert len(list(itertools.islice(provider.iter_runs(ListQuery(limit=None)), 2))) == 2
    assert route.call_count == before + 1  # the second page was never fetched


def test_bare_array_list_is_one_page(provider, api):
    route = api.get(SESSIONS).respond(json=[session(1, "RUNNING"), seed()])
    runs = list(provider.iter_runs(ListQuery(limit=20)))
    assert [r.status for r in runs] == ["running", "pending"]
    assert route.call_count == 1
    assert route.calls.last.request.url.params["limit"] == "20"


def test_latest_is_the_newest_whatever_the_server_order(provider, api):
    old, new, undated = session(1), session(2), session(3)
    old["created_at"] = "2025-02-01T00:00:00Z"
    new["created_at"] = "2025-02-03T12:00:00+02:00"
    undated["created_at"] = None
    api.get(SESSIONS).respond(json=[old, new, undated])
    assert provider.latest_id(ListQuery()) == new["id"]
    api.get(SESSIONS).respond(json=[])
    assert provider.latest_id(ListQuery()) is None


def test_list_uses_query_automation_and_path_override(api):
    p = make_provider(
        Settings(
            provider="generic",
            base_url=BASE,
            token=TOKEN,
            paths={"list_path": "/v2/automations/{automation_id}/runs"},
        )
    )
    route = api.get("/v2/automations/other-auto/runs").respond(json=[session(3)])
    runs = list(p.iter_runs(ListQuery(automation="other-auto")))
    assert route.called and runs[0].automation_id == AUTO
    p.close()


def test_retry_posts_recorded_inputs(provider, api):
    api.get(f"{SESSIONS}{FAILED_ID}").respond(json=load("generic_session_failed.json"))
    new = {**session(42, "NEW"), "inputs": {"company_domain": "acme.example", "max_results": 25}}
    post = api.post(SESSIONS).respond(201, json=new)
    run = provider.get_run(FAILED_ID)
    again = provider.retry(run)
    assert post.call_count == 1
    assert json.loads(post.calls.last.request.content) == {
        "inputs": {"company_domain": "acme.example", "max_results": 25}
    }
    assert again.id == new["id"] and again.id != FAILED_ID
    assert again.status == "pending"


def test_retry_uses_trigger_payload_when_raw_is_gone(provider, api):
    run = map_session(load("generic_session_failed.json"))
    run.raw = None  # e.g. a run read back from `show -o json` without --raw
    post = api.post(SESSIONS).respond(200, json=session(43, "NEW"))
    provider.retry(run)
    assert json.loads(post.calls.last.request.content)["inputs"]["company_domain"] == "acme.example"


def test_retry_without_session_in_answer_is_bad_response(provider, api):
    api.post(SESSIONS).respond(202, json={"detail": "accepted"})
    with pytest.raises(BadResponseError) as exc:
        provider.retry(map_session(load("generic_session_failed.json")))
    assert "autorun list" in exc.value.hint


def test_retry_is_not_repeated_after_a_500(provider, api):
    post = api.post(SESSIONS).respond(500, json={"detail": "Internal Server Error"})
    with pytest.raises(ServiceError):
        provider.retry(map_session(load("generic_session_failed.json")))
    assert post.call_count == 1


def test_cancel_patches_cancel_path(provider, api):
    running = {**load("generic_session_failed.json"), "status": "RUNNING", "error": None}
    cancelled = {**running, "status": "FAILED", "error": "Session cancelled"}
    patch = api.patch(f"{SESSIONS}{FAILED_ID}/cancel").respond(200, json=cancelled)
    get = api.get(f"{SESSIONS}{FAILED_ID}").respond(json=running)
    run = map_session(running)
    assert run.status == "running"
    after = provider.cancel(run)
    assert patch.call_count == 1 and patch.calls.last.request.method == "PATCH"
    assert get.call_count == 0  # the PATCH answered with the session
    assert after.status == "failed" and after.error.message == "Session cancelled"


def test_cancel_refetches_when_patch_body_is_not_a_session(provider, api):
    running = {**load("generic_session_failed.json"), "status": "RUNNING", "error": None}
    patch = api.patch(f"{SESSIONS}{FAILED_ID}/cancel").respond(200, json={"ok": True})
    get = api.get(f"{SESSIONS}{FAILED_ID}").respond(json={**running, "status": "FAILED", "error": "Session cancelled"})
    after = provider.cancel(map_session(running))
    assert patch.call_count == 1 and get.call_count == 1
    assert after.status == "failed"


def test_cancel_path_override(api):
    p = make_provider(
        Settings(
            provider="generic",
            base_url=BASE,
            token=TOKEN,
            automation=AUTO,
            paths={"cancel_path": "/automations/{automation_id}/sessions/{id}:stop"},
        )
    )
    route = api.patch(f"{SESSIONS}{FAILED_ID}:stop").respond(204)
    api.get(f"{SESSIONS}{FAILED_ID}").respond(json={**load("generic_session_failed.json"), "error": "Session cancelled"})
    assert p.cancel(map_session(load("generic_session_failed.json"))).error.message == "Session cancelled"
    assert route.called
    p.close()


# -- errors ----------------------------------------------------------------------


def test_fastapi_detail_string_in_message(provider, api):
    api.get(f"{SESSIONS}{FAILED_ID}").respond(404, json={"detail": "Session not found"})
    with pytest.raises(NotFoundError) as exc:
        provider.get_run(FAILED_ID)
    assert exc.value.exit_code == 3
    assert "Session not found" in exc.value.message


def test_fastapi_validation_detail_list_in_message(provider, api):
    api.post(SESSIONS).respond(
        422,
        json={
            "detail": [
                {"loc": ["body", "inputs", "company_domain"], "msg": "field required", "type": "value_error.missing"},
                {"loc": ["body", "inputs", "max_results"], "msg": "value is not a valid integer"},
            ]
        },
    )
    with pytest.raises(UsageError) as exc:
        provider.retry(map_session(load("generic_session_failed.json")))
    assert "inputs.company_domain: field required" in exc.value.message
    assert "inputs.max_results: value is not a valid integer" in exc.value.message


def test_default_error_message_fastapi_shapes():
    assert default_error_message({"detail": "Not authenticated"}) == "Not authenticated"
    assert default_error_message({"detail": [{"loc": ["query", "limit"], "msg": "bad"}]}) == "query.limit: bad"
    assert default_error_message({"detail": ["plain"]}) == "plain"


def test_token_never_in_errors(provider, api):
    api.get(f"{SESSIONS}{FAILED_ID}").respond(401, json={"detail": f"Invalid token {TOKEN}"})
    with pytest.raises(Exception) as exc:
        provider.get_run(FAILED_ID)
    assert TOKEN not in exc.value.message and exc.value.exit_code == 4


def test_persistent_503_is_service_error_after_retries(provider, api, delays):
    route = api.get(f"{SESSIONS}{FAILED_ID}").respond(503, json={"detail": "Service Unavailable"})
    with pytest.raises(ServiceError) as exc:
        provider.get_run(FAILED_ID)
    assert route.call_count == 4 and len(delays) == 3
    assert "Service Unavailable" in exc.value.message


def test_seed_session_roundtrip_copy_is_untouched():
    doc = seed()
    before = copy.deepcopy(doc)
    map_session(doc)
    assert doc == before
