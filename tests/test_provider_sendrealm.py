"""The sendrealm provider against respx-mocked responses (no network)."""

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
from autorun_cli.providers.base import EventRequest, ListQuery, Settings
from autorun_cli.providers.sendrealm import SendrealmProvider, map_run

TOKEN = "sr_live_secret_token_456"
RUNS = "/automations/aut_123/runs"


# Backoffs are recorded, not slept (conftest.delays).
pytestmark = pytest.mark.usefixtures("delays")


def provider(**settings_kw) -> SendrealmProvider:
    settings_kw.setdefault("automation", "aut_123")
    settings = Settings(provider="sendrealm", base_url=BASE, token=TOKEN, **settings_kw)
    http = HttpClient(
        BASE,
        headers=SendrealmProvider.auth_headers(settings),
        secrets=settings.secrets,
        error_parser=SendrealmProvider,
    )
    return SendrealmProvider(settings, http)


def seed_run() -> dict:
    return copy.deepcopy(load("seeds/sendrealm_run.json")["data"])


def summary(n: int, status: str = "completed") -> dict:
    run = seed_run()
    run["id"] = f"run_{n}"
    run["status"] = status
    return run


# -- seed documents -----------------------------------------------------------


def test_seed_run_detail_maps_every_field(api):
    doc = load("seeds/sendrealm_run.json")
    route = api.get("/automation-runs/run_123").mock(return_value=httpx.Response(200, json=doc))
    run = provider().get_run("run_123")
    assert route.call_count == 1
    assert (run.id, run.provider, run.automation_id) == ("run_123", "sendrealm", "aut_123")
    assert (run.status, run.provider_status) == ("completed", "completed")
    assert run.trigger.event == "order.completed"
    assert run.trigger.payload == {"order_id": "ord_123"}
    assert run.trigger.occurred_at == "2026-06-08T14:15:00.000Z"
    assert run.trigger.id == "evt_123"
    assert (run.identity.type, run.identity.value) == ("email", "olivia@example.com")
    # No created_at in the document: the trigger's time; the end is the last activity.
    assert run.created_at == run.started_at == "2026-06-08T14:15:00.000Z"
    assert run.finished_at == "2026-06-08T14:16:31.000Z"
    assert run.duration_ms == 91000
    assert run.current_step is None
    assert run.error is None

    assert [s.key for s in run.steps] == ["send_receipt", "wait_for_open", "send_push_follow_up"]
    assert [s.type for s in run.steps] == ["send_email_template", "wait_for_event", "send_push_template"]
    assert [s.id for s in run.steps] == ["step_1", "step_2", "step_3"]
    assert all(s.status == "completed" for s in run.steps)
    assert run.steps[1].branch == "received"
    assert run.steps[0].branch is None

    # The same wait at the top level and under its step: one wait.
    assert len(run.waits) == 1
    wait = run.waits[0]
    assert wait.id == "wait_123"
    assert wait.step_key == "wait_for_open"
    assert wait.event == "sendrealm.mail.open"
    assert wait.status == "received"
    assert wait.timeout_at == "2026-06-08T14:45:00.000Z"
    assert wait.resumed_at == "2026-06-08T14:16:30.000Z"
    assert wait.timed_out_at is None
    assert wait.branch == "received"
    assert wait.resumed_by_event == {
        "id": "evt_124",
        "event_name": "sendrealm.mail.open",
        "occurred_at": "2026-06-08T14:16:30.000Z",
    }

    # Run-level sent records and the steps' linked ones: one message each.
    assert [(m.id, m.channel, m.step_key, m.title, m.status) for m in run.messages] == [
        ("email_123", "email", "send_receipt", "Your receipt", "sent"),
        ("push_123", "push", "send_push_follow_up", "Need anything else?", "sent"),
    ]
    assert run.raw == doc
    out = run.to_json(raw=True)
    assert out["raw"] == doc
    assert out["duration_ms"] == 91000
    json.dumps(out)


def test_bare_run_object_is_accepted(api):
    bare = seed_run()
    api.get("/automation-runs/run_123").mock(return_value=httpx.Response(200, json=bare))
    run = provider().get_run("run_123")
    assert run.id == "run_123" and run.duration_ms == 91000
    assert run.raw == bare


def test_failed_run_fixture():
    doc = load("sendrealm_run_failed.json")
    run = map_run(doc["data"], raw=doc)
    assert run.status == "failed"
    assert run.name == "Order receipt"
    assert run.identity.id == "contact_456"
    assert run.error.message == "contact has no push token"
    assert run.error.step == "send_push_reminder"
    assert json.loads(run.error.detail) == {"contact_id": "contact_456"}
    step1, step2, step3 = run.steps
    assert step1.duration_ms == 500 and step1.attempt == 1
    assert step3.status == "failed" and step3.attempt == 3
    assert step3.error == "contact has no push token"
    assert step2.branch == "timed_out"
    assert len(run.waits) == 1
    wait = run.waits[0]
    assert (wait.status, wait.branch, wait.timed_out_at) == ("timed_out", "timed_out", "2026-06-08T15:30:02.000Z")
    assert wait.step_key == "wait_for_open"
    assert wait.resumed_by_event is None
    # The email appears twice (run level and step): one message, the first status kept.
    assert [(m.id, m.channel, m.step_key, m.status) for m in run.messages] == [
        ("email_456", "email", "send_receipt", "delivered")
    ]
    assert run.finished_at == "2026-06-08T15:30:03.000Z"
    assert run.duration_ms == (30 * 60 + 3) * 1000


def test_running_run_has_current_step_and_no_finish():
    doc = seed_run()
    doc["status"] = "waiting"
    doc["steps"][1]["status"] = "waiting"
    doc["steps"][2]["status"] = "pending"
    for w in doc["waits"] + doc["steps"][1]["waits"]:
        w.update(status="waiting", resumed_at=None, outcome_branch=None, resumed_by_event=None)
    run = map_run(doc)
    assert run.status == "waiting"
    assert run.current_step == "wait_for_open"
    assert run.finished_at is None and run.duration_ms is None
    assert run.waits[0].status == "waiting"


def test_step_waits_without_top_level_and_step_key_from_step():
    doc = seed_run()
    doc["waits"] = []
    del doc["steps"][1]["waits"][0]["step_key"]
    run = map_run(doc)
    assert len(run.waits) == 1
    assert run.waits[0].step_key == "wait_for_open"


@pytest.mark.parametrize(
    "body",
    [
        [seed_run()],
        "run_123",
        {"data": None},
        {"data": [seed_run()]},
        {"data": {"status": "completed"}},
        123,
    ],
)
def test_non_object_get_is_bad_response(api, body):
    api.get("/automation-runs/run_123").mock(return_value=httpx.Response(200, content=json.dumps(body).encode()))
    with pytest.raises(BadResponseError) as info:
        provider().get_run("run_123")
    assert info.value.exit_code == 5
    assert len(info.value.message) < 300


def test_error_envelope_with_200_reports_its_message(api):
    api.get("/automation-runs/run_123").mock(
        return_value=httpx.Response(200, json={"status": 500, "error": {"code": "boom", "message": "internal"}})
    )
    with pytest.raises(BadResponseError) as info:
        provider().get_run("run_123")
    assert "internal (boom)" in info.value.message


@pytest.mark.parametrize("bad", ["../run", "run 1", "", "run/1", "a" * 300])
def test_malformed_run_id_refused_before_any_request(api, bad):
    with pytest.raises(UsageError) as info:
        provider().get_run(bad)
    assert info.value.exit_code == 2
    assert len(api.calls) == 0


# -- status mapping ------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("pending", "pending"),
        ("running", "running"),
        ("waiting", "waiting"),
        ("completed", "completed"),
        ("Completed", "completed"),
        ("failed", "failed"),
        ("cancelled", "cancelled"),
        # Synonyms no seed or vendor document contains are not guessed (issue 12, item 14).
        ("queued", "unknown"),
        ("in_progress", "unknown"),
        ("succeeded", "unknown"),
        ("error", "unknown"),
        ("canceled", "unknown"),
        ("expired", "unknown"),
        ("timeout", "unknown"),
        ("timed_out", "timed_out"),
        ("skipped", "skipped"),
        ("<string>", "unknown"),
        ("sideways", "unknown"),
        (123, "unknown"),
        (None, "unknown"),
        ({"s": 1}, "unknown"),
    ],
)
def test_status_mapping(given, expected):
    doc = seed_run()
    doc["status"] = given
    doc["steps"][0]["status"] = given
    run = map_run(doc)
    assert (run.status, run.provider_status) == (expected, given)
    assert (run.steps[0].status, run.steps[0].provider_status) == (expected, given)


@pytest.mark.parametrize(
    ("given", "times", "expected"),
    [
        ("waiting", {}, "waiting"),
        ("received", {}, "received"),
        ("timed_out", {}, "timed_out"),
        ("TIMED_OUT", {}, "timed_out"),
        # Guessed synonyms are gone: read off the wait's times, else unknown.
        ("expired", {}, "unknown"),
        ("timeout", {"timed_out_at": "2026-06-08T14:45:00.000Z"}, "timed_out"),
        ("resumed", {}, "unknown"),
        (None, {}, "waiting"),
        ("cancelled", {}, "unknown"),
        (123, {}, "unknown"),
        ("<string>", {"resumed_at": "2026-06-08T14:16:30.000Z"}, "received"),
        ("odd", {"timed_out_at": "2026-06-08T14:45:00.000Z"}, "timed_out"),
    ],
)
def test_wait_status_mapping(given, times, expected):
    doc = seed_run()
    doc["steps"][1]["waits"] = []
    doc["waits"] = [{"id": "w1", "status": given, "resumed_at": None, "timed_out_at": None, **times}]
    run = map_run(doc)
    assert run.waits[0].status == expected
    known = isinstance(given, str) and given.lower() in ("waiting", "received", "timed_out")
    if given is not None and not known:
        assert run.extra["wait_provider_statuses"] == {"w1": given}
    else:
        assert "wait_provider_statuses" not in run.extra


# -- messages and errors in the document ----------------------------------------


def test_messages_dedup_fills_gaps_and_keeps_channels_apart():
    doc = seed_run()
    doc["sent_emails"][0]["automation_step_key"] = None
    # A push with the same id as the email is another record (another channel).
    doc["sent_push_notifications"].append({"id": "email_123", "title": "Same id, other channel"})
    doc["sent_push_notifications"].append({"title": "no id", "status": "queued"})
    run = map_run(doc)
    emails = [m for m in run.messages if m.channel == "email"]
    pushes = [m for m in run.messages if m.channel == "push"]
    assert len(emails) == 1
    assert emails[0].step_key == "send_receipt"  # filled from the step's linked record
    assert len(pushes) == 3
    assert {m.title for m in pushes} == {"Need anything else?", "Same id, other channel", "no id"}


@pytest.mark.parametrize(
    ("field", "value", "message", "step"),
    [
        ("last_error", "SMTP 550 mailbox unavailable", "SMTP 550 mailbox unavailable", None),
        ("error", {"message": "template missing", "step_key": "send_receipt"}, "template missing", "send_receipt"),
        ("last_error", {"code": "rate_limited"}, "rate_limited", None),
        ("error", {"message": "<string>", "details": None, "code": "<string>"}, "<string>", None),
    ],
)
def test_run_error_from_document(field, value, message, step):
    doc = seed_run()
    doc["status"] = "failed"
    doc[field] = value
    run = map_run(doc)
    assert run.error.message == message
    assert run.error.step == step


def test_odd_types_never_crash():
    doc = seed_run()
    doc["trigger_event"] = "order.completed"
    doc["steps"].append("not a step")
    doc["steps"][0]["linked_emails"] = "App\\Resources\\Email"
    doc["waits"] = [None, 5, {"id": 9, "status": ["x"], "resumed_by_event": "evt"}]
    doc["sent_emails"] = {"id": "x"}
    doc["resolved_identity_value"] = 42
    doc["steps"][1]["attempt"] = True
    run = map_run(doc)
    assert run.trigger.event == "order.completed" and run.trigger.payload is None
    assert run.identity.value == "42"
    assert run.steps[-1].info == "not a step"
    assert run.steps[1].attempt is None
    assert {w.id for w in run.waits} == {"9", "wait_123"}
    json.dumps(run.to_json(raw=True))


# -- requests: list params, automation, pages ----------------------------------


def test_list_needs_an_automation(api):
    with pytest.raises(UsageError) as info:
        list(provider(automation=None).iter_runs(ListQuery()))
    assert "--automation" in info.value.hint
    assert len(api.calls) == 0


def test_list_params_reach_the_server(api):
    route = api.get(RUNS).mock(return_value=httpx.Response(200, json={"data": [summary(1)], "has_more": False}))
    runs = list(provider().iter_runs(ListQuery(statuses=["failed"], limit=20)))
    assert [r.id for r in runs] == ["run_1"]
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert dict(request.url.params) == {"status": "failed", "limit": "20"}


def test_several_statuses_are_filtered_on_the_client_only(api):
    route = api.get(RUNS).mock(return_value=httpx.Response(200, json={"data": []}))
    list(provider().iter_runs(ListQuery(statuses=["failed", "running"], limit=5)))
    params = route.calls.last.request.url.params
    assert "status" not in params
    assert params["limit"] == "100"  # full pages: the client drops what does not match


def test_limit_is_capped_at_100_and_query_automation_wins(api):
    route = api.get("/automations/aut_999/runs").mock(return_value=httpx.Response(200, json={"data": []}))
    list(provider().iter_runs(ListQuery(automation="aut_999", limit=500)))
    assert route.calls.last.request.url.params["limit"] == "100"


def test_malformed_automation_refused(api):
    with pytest.raises(UsageError):
        list(provider().iter_runs(ListQuery(automation="../../admin")))
    assert len(api.calls) == 0


def _cursor_pages(request):
    cursor = request.url.params.get("cursor")
    page = {None: 1, "c2": 2, "c3": 3}[cursor]
    items = [summary(page * 10 + i) for i in range(2)]
    nxt = {1: "c2", 2: "c3", 3: None}[page]
    return httpx.Response(200, json={"data": items, "next_cursor": nxt, "has_more": nxt is not None})


def test_cursor_pages_across_three_pages(api):
    route = api.get(RUNS).mock(side_effect=_cursor_pages)
    runs = list(provider().iter_runs(ListQuery(statuses=["completed"], limit=None)))
    assert [r.id for r in runs] == ["run_10", "run_11", "run_20", "run_21", "run_30", "run_31"]
    assert [c.request.url.params.get("cursor") for c in route.calls] == [None, "c2", "c3"]
    for call in route.calls:
        assert call.request.url.params["status"] == "completed"
        assert call.request.url.params["limit"] == "100"


def test_cursor_pages_are_fetched_lazily(api):
    route = api.get(RUNS).mock(side_effect=_cursor_pages)
    first = list(itertools.islice(provider().iter_runs(ListQuery(limit=None)), 3))
    assert [r.id for r in first] == ["run_10", "run_11", "run_20"]
    assert route.call_count == 2


def test_make_provider_builds_sendrealm(api):
    route = api.get(RUNS).mock(return_value=httpx.Response(200, json={"data": []}))
    prov = make_provider(Settings(provider="sendrealm", base_url=BASE, token=TOKEN, automation="aut_123"))
    assert isinstance(prov, SendrealmProvider)
    list(prov.iter_runs(ListQuery()))
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"


# -- error envelope and transport failures -------------------------------------


def test_error_envelope_message_in_error_line(api):
    api.get("/automation-runs/run_404").mock(
        return_value=httpx.Response(
            404, json={"status": 404, "error": {"code": "run_not_found", "message": "Run not found", "details": None}}
        )
    )
    with pytest.raises(NotFoundError) as info:
        provider().get_run("run_404")
    assert info.value.exit_code == 3
    assert info.value.message == "Run not found (run_not_found)"


def test_seed_error_envelope_placeholders_do_not_crash(api):
    api.get(RUNS).mock(return_value=httpx.Response(400, json=load("seeds/sendrealm_error.json")))
    with pytest.raises(UsageError) as info:
        list(provider().iter_runs(ListQuery()))
    assert "<string>" in info.value.message
    assert info.value.exit_code == 2


def test_error_message_hook():
    hook = SendrealmProvider.error_message
    assert hook(load("seeds/sendrealm_error.json")) == "<string>"
    assert hook({"error": {"code": "bad_cursor", "message": "Cursor expired", "details": {"cursor": "c2"}}}) == (
        'Cursor expired (bad_cursor): {"cursor":"c2"}'
    )
    assert hook({"status": 403, "error": {"code": "forbidden"}}) == "forbidden"
    assert hook({"error": {"message": 123}}) == "123"
    assert hook({"message": "plain"}) == "plain"
    assert hook({"status": 500, "error": {}}) is None


def test_unauthorized_never_shows_the_token(api):
    api.get("/automation-runs/run_123").mock(
        return_value=httpx.Response(
            401, json={"status": 401, "error": {"code": "unauthorized", "message": f"bad key {TOKEN}"}}
        )
    )
    with pytest.raises(AuthError) as info:
        provider().get_run("run_123")
    assert info.value.exit_code == 4
    assert TOKEN not in info.value.message
    assert "bad key" in info.value.message


def test_429_retry_after_then_success(api, delays):
    route = api.get("/automation-runs/run_123").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "2"}, json={"status": 429, "error": {"message": "slow"}}),
            httpx.Response(200, json=load("seeds/sendrealm_run.json")),
        ]
    )
    assert provider().get_run("run_123").id == "run_123"
    assert route.call_count == 2
    assert delays == [2.0]


def test_persistent_503_is_service_error_after_four_requests(api, delays):
    route = api.get(RUNS).mock(return_value=httpx.Response(503, text="upstream down"))
    with pytest.raises(ServiceError) as info:
        list(provider().iter_runs(ListQuery()))
    assert info.value.exit_code == 5
    assert route.call_count == 4
    assert len(delays) == 3


def test_html_body_is_bad_response(api):
    api.get(RUNS).mock(
        return_value=httpx.Response(200, text="<html><body>Maintenance</body></html>", headers={"content-type": "text/html"})
    )
    with pytest.raises(BadResponseError) as info:
        list(provider().iter_runs(ListQuery()))
    assert "HTML" in info.value.message


# -- events --------------------------------------------------------------------


def test_send_event_posts_the_documented_body(api):
    route = api.post("/events").mock(
        return_value=httpx.Response(202, json={"data": {"id": "evt_900", "deduplicated": False}})
    )
    answer = provider().send_event(
        EventRequest(
            event="sendrealm.mail.open",
            payload={"message_id": "email_123"},
            email="olivia@example.com",
            occurred_at="2026-06-08T14:16:30.000Z",
            idempotency_key="key-1",
        )
    )
    assert answer == {"data": {"id": "evt_900", "deduplicated": False}}
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(request.content) == {
        "event": "sendrealm.mail.open",
        "email": "olivia@example.com",
        "payload": {"message_id": "email_123"},
        "occurred_at": "2026-06-08T14:16:30.000Z",
        "idempotency_key": "key-1",
    }


def test_send_event_optional_fields_are_left_out(api):
    route = api.post("/events").mock(return_value=httpx.Response(204))
    assert provider(automation=None).send_event(EventRequest(event="x", contact_id="contact_1")) == {}
    assert json.loads(route.calls.last.request.content) == {"event": "x", "contact_id": "contact_1", "payload": {}}


def test_send_event_needs_a_contact(api):
    with pytest.raises(UsageError) as info:
        provider().send_event(EventRequest(event="x"))
    assert "--email" in info.value.hint
    assert len(api.calls) == 0


def test_send_event_is_not_repeated_after_a_5xx(api, delays):
    route = api.post("/events").mock(return_value=httpx.Response(503, json={"error": {"message": "busy"}}))
    with pytest.raises(ServiceError):
        provider().send_event(EventRequest(event="x", external_id="ext-1", idempotency_key="k"))
    assert route.call_count == 1


def test_send_event_non_object_answer_is_bad_response(api):
    api.post("/events").mock(return_value=httpx.Response(200, json=["ok"]))
    with pytest.raises(BadResponseError):
        provider().send_event(EventRequest(event="x", email="a@b.test"))


def test_retry_and_cancel_are_not_offered():
    run = map_run(seed_run())
    with pytest.raises(NotSupportedError) as info:
        provider().retry(run)
    assert "autorun replay run_123" in info.value.hint
    with pytest.raises(NotSupportedError):
        provider().cancel(run)


def test_several_statuses_filtered_by_the_cli_listing(api):
    from autorun_cli.listing import list_runs

    api.get(RUNS).mock(
        return_value=httpx.Response(
            200, json={"data": [summary(1, "failed"), summary(2, "completed"), summary(3, "running")]}
        )
    )
    runs = list(list_runs(provider(), ListQuery(statuses=["failed", "running"], limit=20)))
    assert [r.id for r in runs] == ["run_1", "run_3"]
