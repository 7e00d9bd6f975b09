"""The plannr provider against respx-mocked responses (no network)."""

from __future__ import annotations

import copy
import itertools
import json

import httpx
import pytest
from respx_helpers import BASE, load

from autorun_cli.errors import (
    AuthError,
    BadResponseError,
    NotFoundError,
    NotSupportedError,
    ServiceError,
    UsageError,
)
from autorun_cli.http import HttpClient
from autorun_cli.providers import make_provider
from autorun_cli.providers.base import ListQuery, Settings
from autorun_cli.providers.plannr import PlannrProvider, map_execution

TOKEN = "plannr-secret-token-123"
ACCOUNT = "2066e7c6-feb1-4e00-b55a-8a0f91d47bad"
LIST = "/api/v1/automation-executions"
SEED_INFO = '"[{errors : "the account_uuid field is required" }]"'
RUN_ID = "82f16694-dbe3-4787-bd57-ab9eec12b43f"


# Backoffs are recorded, not slept (conftest.delays).
pytestmark = pytest.mark.usefixtures("delays")


def provider(**settings_kw) -> PlannrProvider:
    settings = Settings(provider="plannr", base_url=BASE, token=TOKEN, **settings_kw)
    http = HttpClient(
        BASE,
        headers=PlannrProvider.auth_headers(settings),
        secrets=settings.secrets,
        error_parser=PlannrProvider,
    )
    return PlannrProvider(settings, http)


def execution(n: int, status: str = "in_progress") -> dict:
    item = copy.deepcopy(load("seeds/plannr_list.json")["data"][0])
    item["uuid"] = f"00000000-0000-4000-8000-{n:012d}"
    item["status"] = status
    return item


# -- seed documents -----------------------------------------------------------


def test_list_seed_maps_every_field(api):
    doc = load("seeds/plannr_list.json")
    api.get(LIST).mock(return_value=httpx.Response(200, json=doc))
    runs = list(provider().iter_runs(ListQuery()))
    assert len(runs) == 1
    run = runs[0]
    assert run.id == "d24b4d73-7206-46a0-815a-508ef61110c6"
    assert run.provider == "plannr"
    assert run.name == "Send client welcome pack to newly created client"
    assert (run.status, run.provider_status) == ("running", "in_progress")
    assert run.trigger.event == "client.created"
    assert run.created_at == run.started_at == "2025-11-17T21:14:40+00:00"
    assert run.finished_at is None and run.duration_ms is None  # still running
    assert len(run.steps) == 1
    step = run.steps[0]
    assert step.id == "7fee25f3-1027-45b6-b063-05bcdc2d44b5"
    assert (step.name, step.status, step.key) == ("Send SMS", "completed", None)
    assert step.started_at == "2025-11-17T21:14:40+00:00"
    assert step.info == SEED_INFO
    assert run.extra["next_step"]["id"] == "422f970a-25a7-413d-b916-47864e865a5e"
    assert run.extra["previous_step"]["id"] == "f096c164-fea1-49f9-8e4e-442c104baaea"
    assert run.extra["next_step"]["status"] == "completed"
    assert run.current_step == "Send SMS"
    assert run.identity is None
    assert run.raw == doc["data"][0]


def test_get_seed_bare_object(api):
    doc = load("seeds/plannr_get.json")
    route = api.get(f"{LIST}/{RUN_ID}").mock(return_value=httpx.Response(200, json=doc))
    run = provider().get_run(RUN_ID)
    assert route.call_count == 1
    assert run.id == RUN_ID
    assert run.status == "running"
    assert run.identity.type == "email"
    assert run.identity.value == "gareth@codepotato.co.uk"
    assert run.identity.id == ACCOUNT
    assert run.identity.name == "Gareth Thompson"
    account = run.extra["account"]
    assert account["can_be_deleted"] == "false"
    assert account["firm"] == "App\\Http\\Resources\\FirmResource"
    assert run.raw == doc
    assert run.steps[0].info == SEED_INFO
    assert run.steps[0].finished_at == "2026-05-19T18:31:18+01:00"
    assert run.steps[0].duration_ms == 0


def test_info_string_is_preserved_exactly_in_json_output(api):
    doc = load("seeds/plannr_get.json")
    api.get(f"{LIST}/{RUN_ID}").mock(return_value=httpx.Response(200, json=doc))
    run = provider().get_run(RUN_ID)
    out = json.loads(json.dumps(run.to_json(raw=True)))
    assert out["steps"][0]["info"] == doc["steps"][0]["info"]
    assert out["raw"] == doc
    assert "raw" not in run.to_json()
    # Every contract key is present.
    for key in ("id", "provider", "name", "automation_id", "status", "provider_status", "trigger",
                "identity", "created_at", "updated_at", "started_at", "finished_at", "duration_ms",
                "steps", "current_step", "waits", "messages", "logs", "error", "links"):
        assert key in out


def test_get_data_wrapped_object(api):
    doc = {"data": load("seeds/plannr_get.json")}
    api.get(f"{LIST}/{RUN_ID}").mock(return_value=httpx.Response(200, json=doc))
    run = provider().get_run(RUN_ID)
    assert run.id == RUN_ID
    assert run.identity.value == "gareth@codepotato.co.uk"
    assert run.raw == doc  # what the API returned, wrapper included


@pytest.mark.parametrize(
    "body",
    [
        [load("seeds/plannr_get.json")],
        "just a string",
        {"name": "no uuid here"},
        {"data": [load("seeds/plannr_get.json")]},
        {"data": "x"},
        None,
        123,
    ],
)
def test_get_non_object_is_bad_response(api, body):
    api.get(f"{LIST}/{RUN_ID}").mock(return_value=httpx.Response(200, content=json.dumps(body).encode()))
    with pytest.raises(BadResponseError) as info:
        provider().get_run(RUN_ID)
    assert info.value.exit_code == 5
    assert "plannr" in info.value.message
    assert len(info.value.message) < 300


@pytest.mark.parametrize("bad", ["run_123", "82f16694-dbe3-4787-bd57", "../../etc", "", "82f16694dbe34787bd57ab9eec12b43f"])
def test_malformed_uuid_refused_before_any_request(api, bad):
    with pytest.raises(UsageError) as info:
        provider().get_run(bad)
    assert info.value.exit_code == 2
    assert info.value.hint
    assert len(api.calls) == 0


# -- status mapping ------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("in_progress", "running"),
        ("IN_PROGRESS", "running"),
        ("pending", "pending"),
        ("completed", "completed"),
        ("failed", "failed"),
        ("cancelled", "cancelled"),
        # Synonyms no seed or vendor document contains are not guessed (issue 12, item 14).
        ("queued", "unknown"),
        ("complete", "unknown"),
        ("success", "unknown"),
        ("error", "unknown"),
        ("canceled", "unknown"),
        ("in-progress", "unknown"),
        ("waiting", "waiting"),
        ("skipped", "skipped"),
        ("exploded", "unknown"),
        ("", "unknown"),
        (123, "unknown"),
        (None, "unknown"),
        (["failed"], "unknown"),
    ],
)
def test_status_mapping(given, expected):
    doc = execution(1, status=given)
    doc["steps"][0]["status"] = given
    run = map_execution(doc)
    assert run.status == expected
    assert run.provider_status == given
    assert run.steps[0].status == expected
    assert run.steps[0].provider_status == given


def test_terminal_run_has_finish_and_duration_and_failed_step_error():
    doc = execution(1, status="failed")
    doc["created_at"] = "2026-05-19T18:31:18+01:00"
    doc["updated_at"] = "2026-05-19T18:32:20+01:00"
    doc["steps"][0]["status"] = "failed"
    run = map_execution(doc)
    assert run.finished_at == "2026-05-19T18:32:20+01:00"
    assert run.duration_ms == 62000
    assert run.current_step is None  # terminal: no current step
    assert run.steps[0].error == '[{errors : "the account_uuid field is required" }]'
    assert run.error.step == "Send SMS"
    assert run.error.message == '[{errors : "the account_uuid field is required" }]'


def test_odd_types_never_crash():
    doc = execution(1)
    doc["name"] = 42
    doc["account"] = "App\\Http\\Resources\\AccountResource"
    doc["steps"] = ["App\\Http\\Resources\\StepResource", {"uuid": 7, "status": 123, "info": {"a": 1}}]
    doc["next_step"] = "App\\Http\\Resources\\StepResource"
    doc["triggered_by"] = None
    run = map_execution(doc)
    assert run.name == "42"
    assert run.identity is None
    assert run.extra["account"] == "App\\Http\\Resources\\AccountResource"
    assert "next_step" not in run.extra
    assert run.current_step is None
    assert run.trigger is None
    assert run.steps[0].info == "App\\Http\\Resources\\StepResource"
    assert run.steps[1].id == "7" and run.steps[1].status == "unknown"
    json.dumps(run.to_json(raw=True))


def test_account_without_email_falls_back_to_name():
    doc = execution(1)
    doc["account"] = {"uuid": ACCOUNT, "first_name": "Ada", "last_name": "Lovelace", "email": None}
    run = map_execution(doc)
    assert (run.identity.type, run.identity.value, run.identity.id) == ("account", "Ada Lovelace", ACCOUNT)


# -- info readability ----------------------------------------------------------


def test_seed_info_reads_readably_through_the_shared_helper():
    from autorun_cli.textsafe import readable_info

    doc = execution(1, status="failed")
    doc["steps"][0]["status"] = "failed"
    run = map_execution(doc)
    assert run.steps[0].info == SEED_INFO  # JSON keeps it as given
    assert readable_info(run.steps[0].info) == '[{errors : "the account_uuid field is required" }]'


# -- requests: filters, headers, paths ----------------------------------------


def test_filters_and_sort_reach_the_server(api):
    route = api.get(LIST).mock(return_value=httpx.Response(200, json={"data": []}))
    query = ListQuery(
        uuids=["a1", "b2"],
        client_uuids=[ACCOUNT, "c3"],
        statuses=["failed"],
        sort="created_at",
        limit=20,
    )
    assert list(provider().iter_runs(query)) == []
    params = route.calls.last.request.url.params
    assert params["sort"] == "created_at"
    assert params["filter[uuid]"] == "a1,b2"
    assert params["filter[client_uuids]"] == f"{ACCOUNT},c3"
    # A client-side status filter asks for full pages; status itself is not sent.
    assert params["per_page"] == "500"
    assert "status" not in params and "filter[status]" not in params


def test_limit_sets_page_size_and_unsupported_sort_is_not_sent(api):
    route = api.get(LIST).mock(return_value=httpx.Response(200, json={"data": []}))
    list(provider().iter_runs(ListQuery(sort="name", limit=7)))
    params = route.calls.last.request.url.params
    assert params["per_page"] == "7"
    assert "sort" not in params
    assert set(params.keys()) == {"per_page"}
    list(provider().iter_runs(ListQuery(limit=None)))
    assert route.calls.last.request.url.params["per_page"] == "500"
    assert route.calls.last.request.url.params["sort"] == "-created_at"


def test_headers_bearer_accept_and_account(api):
    route = api.get(LIST).mock(return_value=httpx.Response(200, json={"data": []}))
    list(provider(account=ACCOUNT).iter_runs(ListQuery()))
    headers = route.calls.last.request.headers
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Accept"] == "application/json"
    assert headers["X-PLANNR-ACCOUNT-UUID"] == ACCOUNT
    list(provider().iter_runs(ListQuery()))
    assert "X-PLANNR-ACCOUNT-UUID" not in route.calls.last.request.headers


def test_make_provider_wires_account_header(api):
    route = api.get(LIST).mock(return_value=httpx.Response(200, json={"data": []}))
    prov = make_provider(Settings(provider="plannr", base_url=BASE, token=TOKEN, account=ACCOUNT))
    assert isinstance(prov, PlannrProvider)
    list(prov.iter_runs(ListQuery()))
    assert route.calls.last.request.headers["X-PLANNR-ACCOUNT-UUID"] == ACCOUNT


def test_blueprint_lists_its_executions(api):
    blueprint = "6ff8f7f6-1eb3-3525-be4a-3932c805afed"
    route = api.get(f"/api/v1/automation-blueprints/{blueprint}/executions").mock(
        return_value=httpx.Response(200, json=load("seeds/plannr_list.json"))
    )
    runs = list(provider().iter_runs(ListQuery(automation=blueprint)))
    assert route.call_count == 1
    assert runs[0].automation_id == blueprint
    runs = list(provider(automation=blueprint).iter_runs(ListQuery()))
    assert route.call_count == 2


def test_path_overrides_from_profile(api):
    route = api.get("/v2/execs/").mock(return_value=httpx.Response(200, json={"data": []}))
    get = api.get(f"/v2/execs/{RUN_ID}/").mock(return_value=httpx.Response(200, json=load("seeds/plannr_get.json")))
    prov = provider(paths={"list_path": "/v2/execs/", "get_path": "/v2/execs/{id}/"})
    list(prov.iter_runs(ListQuery()))
    assert prov.get_run(RUN_ID).id == RUN_ID
    assert route.call_count == get.call_count == 1


def test_malformed_blueprint_refused_before_any_request(api):
    with pytest.raises(UsageError):
        list(provider().iter_runs(ListQuery(automation="../admin")))
    assert len(api.calls) == 0


# -- pagination ----------------------------------------------------------------


def test_laravel_links_next_across_three_pages(api):
    pages = {
        1: [execution(1), execution(2)],
        2: [execution(3), execution(4)],
        3: [execution(5)],
    }

    def answer(request):
        page = int(request.url.params.get("page", 1))
        # Laravel's default paginator links carry only ?page=N.
        nxt = f"{BASE}{LIST}?page={page + 1}" if page < 3 else None
        return httpx.Response(200, json={"data": pages[page], "links": {"next": nxt}, "meta": {}})

    route = api.get(LIST).mock(side_effect=answer)
    runs = list(provider().iter_runs(ListQuery(uuids=["u1"], limit=None)))
    assert [r.id[-1] for r in runs] == ["1", "2", "3", "4", "5"]
    assert route.call_count == 3
    for call, page in zip(route.calls, (None, "2", "3"), strict=True):
        params = call.request.url.params
        assert params.get("page") == page
        # Filters, sort and page size survive links that do not carry them.
        assert params["filter[uuid]"] == "u1"
        assert params["per_page"] == "500"
        assert params["sort"] == "-created_at"


def test_laravel_meta_pages_across_three_pages(api):
    def answer(request):
        page = int(request.url.params.get("page", 1))
        items = [execution(page * 10 + i) for i in range(2)]
        return httpx.Response(200, json={"data": items, "meta": {"current_page": page, "last_page": 3}})

    route = api.get(LIST).mock(side_effect=answer)
    runs = list(provider().iter_runs(ListQuery(limit=None)))
    assert len(runs) == 6
    assert len({r.id for r in runs}) == 6
    assert [c.request.url.params.get("page") for c in route.calls] == [None, "2", "3"]


def test_pages_are_fetched_lazily(api):
    def answer(request):
        page = int(request.url.params.get("page", 1))
        items = [execution(page * 10 + i) for i in range(2)]
        return httpx.Response(200, json={"data": items, "meta": {"current_page": page, "last_page": 3}})

    route = api.get(LIST).mock(side_effect=answer)
    first = list(itertools.islice(provider().iter_runs(ListQuery(limit=None)), 3))
    assert len(first) == 3
    assert route.call_count == 2  # page 3 never requested


def test_bare_array_is_one_page(api):
    route = api.get(LIST).mock(return_value=httpx.Response(200, json=[execution(1), execution(2)]))
    assert len(list(provider().iter_runs(ListQuery()))) == 2
    assert route.call_count == 1


def test_list_item_without_uuid_is_bad_response(api):
    api.get(LIST).mock(return_value=httpx.Response(200, json={"data": [{"name": "x"}]}))
    with pytest.raises(BadResponseError):
        list(provider().iter_runs(ListQuery()))


# -- errors --------------------------------------------------------------------


def test_laravel_validation_error_message(api):
    api.get(LIST).mock(return_value=httpx.Response(422, json=load("plannr_validation_error.json")))
    with pytest.raises(UsageError) as info:
        list(provider().iter_runs(ListQuery(uuids=["nope"])))
    msg = info.value.message
    assert "The given data was invalid." in msg
    assert "The filter.uuid must be a comma separated list of UUIDs." in msg
    assert "The per page may not be greater than 500." in msg
    assert "must be an integer" not in msg  # only the first error per field


def test_error_message_without_errors_uses_message():
    assert PlannrProvider.error_message({"message": "Unauthenticated."}) == "Unauthenticated."
    assert PlannrProvider.error_message({"errors": {"x": "The x is bad."}}) == "The x is bad."
    assert PlannrProvider.error_message({"message": "Invalid.", "errors": ["one", 2]}) == "Invalid. (one; 2)"
    assert PlannrProvider.error_message({"message": "m", "errors": {"a": [], "b": None}}) == "m"


def test_not_found(api):
    api.get(f"{LIST}/{RUN_ID}").mock(
        return_value=httpx.Response(404, json={"message": "No query results for model [AutomationExecution]."})
    )
    with pytest.raises(NotFoundError) as info:
        provider().get_run(RUN_ID)
    assert info.value.exit_code == 3
    assert "No query results" in info.value.message


def test_unauthorized_never_shows_the_token(api):
    api.get(f"{LIST}/{RUN_ID}").mock(
        return_value=httpx.Response(401, json={"message": f"Unauthenticated: token {TOKEN} is revoked"})
    )
    with pytest.raises(AuthError) as info:
        provider().get_run(RUN_ID)
    assert info.value.exit_code == 4
    assert TOKEN not in info.value.message
    assert TOKEN not in (info.value.hint or "")
    assert "Unauthenticated" in info.value.message


def test_429_retry_after_then_success(api, delays):
    route = api.get(f"{LIST}/{RUN_ID}").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}, json={"message": "Too Many Attempts."}),
            httpx.Response(200, json=load("seeds/plannr_get.json")),
        ]
    )
    run = provider().get_run(RUN_ID)
    assert run.id == RUN_ID
    assert route.call_count == 2
    assert delays == [7.0]


def test_persistent_503_is_service_error_after_four_requests(api, delays):
    route = api.get(LIST).mock(return_value=httpx.Response(503, json={"message": "Service Unavailable"}))
    with pytest.raises(ServiceError) as info:
        list(provider().iter_runs(ListQuery()))
    assert info.value.exit_code == 5
    assert route.call_count == 4
    assert len(delays) == 3
    assert "Service Unavailable" in info.value.message


def test_html_body_is_bad_response(api):
    api.get(f"{LIST}/{RUN_ID}").mock(
        return_value=httpx.Response(
            200, text="<!DOCTYPE html><html><body>Login</body></html>", headers={"content-type": "text/html"}
        )
    )
    with pytest.raises(BadResponseError) as info:
        provider().get_run(RUN_ID)
    assert "HTML" in info.value.message
    assert info.value.exit_code == 5


# -- actions -------------------------------------------------------------------


def test_retry_and_cancel_are_not_offered():
    run = map_execution(execution(1, status="failed"))
    with pytest.raises(NotSupportedError) as info:
        provider().retry(run)
    assert info.value.exit_code == 4
    assert f"autorun replay {run.id}" in info.value.hint
    with pytest.raises(NotSupportedError):
        provider().cancel(run)


def test_server_applied_client_uuid_filter_is_not_rechecked_on_the_client(api):
    # List items carry no account: a client-side re-check would drop every run.
    from autorun_cli.listing import list_runs

    route = api.get(LIST).mock(return_value=httpx.Response(200, json={"data": [execution(1), execution(2, "failed")]}))
    runs = list(list_runs(provider(), ListQuery(client_uuids=[ACCOUNT], statuses=["failed"])))
    assert [r.id for r in runs] == [execution(2)["uuid"]]  # status is still filtered on the client
    assert route.calls.last.request.url.params["filter[client_uuids]"] == ACCOUNT
