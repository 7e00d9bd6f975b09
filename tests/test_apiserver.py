"""The test server itself, over real sockets with httpx, and the HTTP client against it.

Each API's pagination style is followed end to end by ``HttpClient.paginate`` (so this
is also an integration test of autorun's HTTP layer): totals across pages, filters
reaching the server, faults mapped onto the right exceptions.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from apiserver import (
    DEFAULT_TOKEN,
    GENERIC_AUTOMATION,
    GENERIC_SEED_AUTOMATION,
    MARKUP_IDS,
    MARKUP_NAME,
    PLANNR_BLUEPRINT,
    PLANNR_CLIENTS,
    SENDREALM_AUTOMATION,
    SENDREALM_WAITING_ID,
    TENANT_SEED_ID,
    ApiServer,
    gen_id,
)

import autorun_cli.http as http_mod
from autorun_cli.errors import (
    AuthError,
    BadResponseError,
    NotAllowedError,
    NotFoundError,
    ServiceError,
    UsageError,
)
from autorun_cli.http import HttpClient, PageSpec

SEEDS = Path(__file__).parent / "fixtures" / "seeds"
N = 250  # generated runs per provider: several pages in every style
BAD_TOKEN = "not-the-right-token-7d1e"


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(http_mod, "sleep", slept.append)
    return slept


@pytest.fixture
def server(api_server: ApiServer) -> ApiServer:
    for provider in ("plannr", "sendrealm", "tenant", "generic"):
        api_server.state.generate(provider, N)
    return api_server


def client(server: ApiServer, provider: str, token: str | None = None, **headers: str) -> HttpClient:
    token = server.token if token is None else token
    auth = {"x-api-key": token} if provider == "tenant" else {"Authorization": f"Bearer {token}"}
    return HttpClient(server.url, headers={**auth, **headers}, secrets=[token])


def raw(server: ApiServer, provider: str = "sendrealm") -> httpx.Client:
    auth = {"x-api-key": server.token} if provider == "tenant" else {"Authorization": f"Bearer {server.token}"}
    return httpx.Client(base_url=server.url, headers=auth)


# -- pagination, one style per API ------------------------------------------------

def test_plannr_laravel_pages_follow_links_next(server: ApiServer) -> None:
    http = client(server, "plannr")
    spec = PageSpec(size_param="per_page", max_size=500)
    items = list(http.paginate(f"/api/v1/automation-blueprints/{PLANNR_BLUEPRINT}/executions",
                               {"sort": "-created_at"}, spec))
    ids = [d["uuid"] for d in items]
    assert ids == [gen_id("plannr", i) for i in range(N)]  # newest first, no gaps, no repeats
    reqs = server.requests_to("/executions")
    assert len(reqs) == 1  # 250 fit one page of 500
    items = list(http.paginate("/api/v1/automation-executions", {"sort": "-created_at"},
                               PageSpec(size_param="per_page", max_size=100)))
    assert len(items) == N + 3 and len({d["uuid"] for d in items}) == N + 3  # + 2 seeds + markup run
    pages = server.requests_to("/api/v1/automation-executions")
    assert len(pages) == math.ceil((N + 3) / 100)
    # links.next carried the filters and page size: every page asked the same thing.
    assert all(r["query"]["per_page"] == ["100"] and r["query"]["sort"] == ["-created_at"] for r in pages)
    assert [r["query"].get("page") for r in pages] == [None, ["2"], ["3"]]


def test_plannr_filters_reach_the_server(server: ApiServer) -> None:
    http = client(server, "plannr", **{"X-PLANNR-ACCOUNT-UUID": "acc-1"})
    spec = PageSpec(size_param="per_page", max_size=500)
    items = list(http.paginate("/api/v1/automation-executions",
                               {"filter[client_uuids]": PLANNR_CLIENTS[1], "sort": "created_at"}, spec))
    assert {d["uuid"] for d in items} == {gen_id("plannr", i) for i in range(N) if i % 4 == 1}
    assert [d["created_at"] for d in items] == sorted(d["created_at"] for d in items)  # ascending
    wanted = [gen_id("plannr", 3), "82f16694-dbe3-4787-bd57-ab9eec12b43f"]
    items = list(http.paginate("/api/v1/automation-executions", {"filter[uuid]": ",".join(wanted)}, spec))
    assert sorted(d["uuid"] for d in items) == sorted(wanted)
    last = server.requests[-1]
    assert last["query"]["filter[uuid]"] == [",".join(wanted)]
    assert last["headers"]["x-plannr-account-uuid"] == "acc-1"


def test_plannr_caps_per_page_and_rejects_unknown_sort(server: ApiServer) -> None:
    with raw(server, "plannr") as c:
        doc = c.get("/api/v1/automation-executions", params={"per_page": 1000}).json()
        assert doc["meta"]["per_page"] == 500 and doc["meta"]["total"] == N + 3
        assert doc["links"]["next"] is None and doc["meta"]["last_page"] == 1
        bad = c.get("/api/v1/automation-executions", params={"sort": "status"})
        assert bad.status_code == 400 and "not allowed" in bad.json()["message"]


def test_plannr_get_bare_and_data_wrapped(server: ApiServer) -> None:
    with raw(server, "plannr") as c:
        bare = c.get(f"/api/v1/automation-executions/{gen_id('plannr', 2)}").json()
        wrapped = c.get(f"/api/v1/automation-executions/{gen_id('plannr', 3)}").json()
        assert bare["uuid"] == gen_id("plannr", 2) and "account" in bare
        assert list(wrapped) == ["data"] and wrapped["data"]["uuid"] == gen_id("plannr", 3)
        server.state.plannr_wrapped.add(gen_id("plannr", 2))
        assert list(c.get(f"/api/v1/automation-executions/{gen_id('plannr', 2)}").json()) == ["data"]
        missing = c.get(f"/api/v1/automation-executions/{gen_id('plannr', N + 5)}")
        assert missing.status_code == 404 and "No query results" in missing.json()["message"]


def test_sendrealm_cursor_pages_and_status_filter(server: ApiServer) -> None:
    http = client(server, "sendrealm")
    # Asking for 500 gets 100 a page: the client must follow the cursor, not trust the size.
    items = list(http.paginate(f"/automations/{SENDREALM_AUTOMATION}/runs", None, PageSpec(max_size=500)))
    assert [d["id"] for d in items] == [gen_id("sendrealm", i) for i in range(N)]
    reqs = server.requests_to("/runs")
    assert len(reqs) == 3 and reqs[1]["query"]["cursor"] and reqs[0]["query"]["limit"] == ["500"]
    failed = list(http.paginate(f"/automations/{SENDREALM_AUTOMATION}/runs", {"status": "failed,waiting"},
                                PageSpec(max_size=100)))
    assert failed and len(failed) < N and {d["status"] for d in failed} == {"failed", "waiting"}
    assert server.requests[-1]["query"]["status"] == ["failed,waiting"]
    assert all("steps" not in d for d in failed)  # list entries are summaries


def test_sendrealm_unknown_automation_and_run(server: ApiServer) -> None:
    with raw(server) as c:
        r = c.get("/automations/aut_nope/runs")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found" and r.json()["status"] == 404
        r = c.get("/automation-runs/run_nope")
        assert r.status_code == 404 and "run_nope" in r.json()["error"]["message"]
        assert c.get("/automations/aut_123/runs", params={"cursor": "!!"}).status_code == 400


def test_tenant_page_style_capped_limit_and_filters(server: ApiServer) -> None:
    http = client(server, "tenant", **{"x-tenant-id": "7e000000-0000-4000-8000-000000000001"})
    spec = PageSpec(size_param="limit", max_size=500, first_page=1)
    items = list(http.paginate("/api/v1/automation/executions", None, spec))
    assert len(items) == N + 2 and len({d["execution_id"] for d in items}) == N + 2
    reqs = server.requests_to("/api/v1/automation/executions")
    assert [r["query"]["page"] for r in reqs] == [["1"], ["2"], ["3"]]
    assert all(r["headers"]["x-tenant-id"] == "7e000000-0000-4000-8000-000000000001" for r in reqs)
    params = {"status": "failed", "automation_rule_id": "7a000000-0000-4000-8000-000000000001",
              "started_from": "2026-05-31T22:00:00Z", "started_to": "2026-06-01T00:00:00Z"}
    items = list(http.paginate("/api/v1/automation/executions", params, spec))
    assert items and all(d["status"] == "failed" and d["automation_rule_id"] == params["automation_rule_id"]
                         and "2026-05-31T22:00" <= d["started_at"] <= "2026-06-01T00:00:00.000Z" for d in items)
    assert {k: v[0] for k, v in server.requests[-1]["query"].items() if k in params} == params


def test_tenant_nested_data_quirk(server: ApiServer) -> None:
    with raw(server, "tenant") as c:
        assert isinstance(c.get("/api/v1/automation/executions", params={"_nested": 1}).json()["data"][0], list)
    server.state.tenant_nested = True
    items = list(client(server, "tenant").paginate("/api/v1/automation/executions", None,
                                                   PageSpec(max_size=100, first_page=1)))
    assert len(items) == N + 2 and all(isinstance(d, dict) for d in items)


def test_tenant_other_tenant_sees_nothing(server: ApiServer) -> None:
    other = {"x-tenant-id": "7e000000-0000-4000-8000-000000000999"}
    with raw(server, "tenant") as c:
        assert c.get("/api/v1/automation/executions", headers=other).json()["pagination"]["total"] == 0
        assert c.get(f"/api/v1/automation/executions/{TENANT_SEED_ID}", headers=other).status_code == 500


def test_generic_offset_pages_and_bare_array(server: ApiServer) -> None:
    http = client(server, "generic")
    path = f"/automations/{GENERIC_AUTOMATION}/sessions/"
    items = list(http.paginate(path, None, PageSpec(size_param="limit", max_size=100)))
    assert [d["id"] for d in items] == [gen_id("generic", i) for i in range(N)]
    assert [r["query"].get("offset") for r in server.requests_to("/sessions/")] == [None, ["100"], ["200"]]
    server.state.generic_bare = True
    server.clear_requests()
    items = list(http.paginate(path, None, PageSpec(size_param="limit", max_size=100)))
    assert len(items) == N and len(server.requests) == 1


def test_generic_fastapi_shapes(server: ApiServer) -> None:
    with raw(server, "generic") as c:
        r = c.get(f"/automations/{GENERIC_AUTOMATION}/sessions")
        assert r.status_code == 307 and r.headers["location"].endswith("/sessions/")
        r = c.get(f"/automations/{GENERIC_AUTOMATION}/sessions/not-a-uuid")
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "session_id"]
        r = c.get(f"/automations/{GENERIC_AUTOMATION}/sessions/{gen_id('generic', N + 1)}")
        assert r.status_code == 404 and r.json() == {"detail": "Session not found"}
        # A session is only found under its own automation.
        r = c.get(f"/automations/{GENERIC_SEED_AUTOMATION}/sessions/{gen_id('generic', 1)}")
        assert r.status_code == 404


# -- documents, markup, actions ---------------------------------------------------

def test_seed_documents_are_served_unchanged(api_server: ApiServer) -> None:
    plannr_list = json.loads((SEEDS / "plannr_list.json").read_text())
    plannr_get = json.loads((SEEDS / "plannr_get.json").read_text())
    sendrealm = json.loads((SEEDS / "sendrealm_run.json").read_text())
    generic = json.loads((SEEDS / "generic_session.json").read_text())
    with raw(api_server) as c:
        assert c.get(f"/api/v1/automation-executions/{plannr_get['uuid']}").json() == plannr_get
        listed = plannr_list["data"][0]
        assert c.get(f"/api/v1/automation-executions/{listed['uuid']}").json() == {"data": listed}
        assert c.get(f"/automation-runs/{sendrealm['data']['id']}").json() == sendrealm
        got = c.get(f"/automations/{generic['automation_id']}/sessions/{generic['id']}").json()
        assert got == generic


def test_markup_and_escapes_are_served_verbatim(api_server: ApiServer) -> None:
    with raw(api_server) as c:
        doc = c.get(f"/api/v1/automation-executions/{MARKUP_IDS['plannr']}").json()
        assert doc["name"] == MARKUP_NAME and "\x1b[31m" in doc["name"]
        run = c.get(f"/automation-runs/{MARKUP_IDS['sendrealm']}").json()["data"]
        assert run["trigger_event_name"] == MARKUP_NAME
    with raw(api_server, "tenant") as c:
        ex = c.get(f"/api/v1/automation/executions/{MARKUP_IDS['tenant']}").json()["data"]
        assert ex["error_message"] == MARKUP_NAME


def test_tenant_not_found_quirk_bad_uuid_and_forbidden(server: ApiServer, sleeps: list[float]) -> None:
    with raw(server, "tenant") as c:
        r = c.get(f"/api/v1/automation/executions/{gen_id('tenant', N + 1)}")
        assert r.status_code == 500
        assert r.json() == {"error": {"code": "INTERNAL_ERROR", "message": "Automation execution not found"}}
        r = c.get("/api/v1/automation/executions/not-a-uuid")
        assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION_ERROR"
    with pytest.raises(ServiceError, match="Automation execution not found"):
        client(server, "tenant").get_json(f"/api/v1/automation/executions/{gen_id('tenant', N + 1)}")
    with pytest.raises(UsageError):
        client(server, "tenant").get_json("/api/v1/automation/executions/not-a-uuid")
    server.state.forbidden_tokens.add("read-only-key")
    with pytest.raises(NotAllowedError, match="Permission denied") as exc:
        client(server, "tenant", token="read-only-key").get_json(f"/api/v1/automation/executions/{TENANT_SEED_ID}")
    assert not isinstance(exc.value, AuthError)


def test_tenant_retry_link_puts_execution_back_to_pending(server: ApiServer) -> None:
    http = client(server, "tenant")
    doc = http.get_json(f"/api/v1/automation/executions/{TENANT_SEED_ID}")["data"]
    link = doc["_links"]["retry"]
    assert doc["status"] == "failed" and link["method"] == "POST"
    retried = http.send_json("POST", http.resolve(link["href"]))["data"]
    assert retried["status"] == "pending" and retried["execution_id"] == TENANT_SEED_ID
    assert "retry" not in retried["_links"]
    assert http.get_json(f"/api/v1/automation/executions/{TENANT_SEED_ID}")["data"]["status"] == "pending"
    with pytest.raises(ServiceError, match="Only failed executions"):
        http.send_json("POST", http.resolve(link["href"]))
    assert len(server.requests_to("/retry", "POST")) == 2  # a POST is never repeated
    # A generated failed execution with an odd index carries its retry link as a plain string.
    odd = next(i for i in range(1, N, 2) if http.get_json(
        f"/api/v1/automation/executions/{gen_id('tenant', i)}")["data"]["status"] == "failed")
    assert isinstance(http.get_json(f"/api/v1/automation/executions/{gen_id('tenant', odd)}")["data"]["_links"]
                      ["retry"], str)


def test_sendrealm_events_dedup_and_resume_a_wait(api_server: ApiServer) -> None:
    http = client(api_server, "sendrealm")
    assert http.get_json(f"/automation-runs/{SENDREALM_WAITING_ID}")["data"]["status"] == "waiting"
    event = {"event": "sendrealm.mail.open", "email": "olivia@example.com", "idempotency_key": "k-1"}
    first = http.send_json("POST", "/events", event)["data"]
    assert first["deduplicated"] is False and first["resumed_run_ids"] == [SENDREALM_WAITING_ID]
    again = http.send_json("POST", "/events", event)["data"]
    assert again["deduplicated"] is True and again["id"] == first["id"]
    run = http.get_json(f"/automation-runs/{SENDREALM_WAITING_ID}")["data"]
    assert run["status"] == "running"
    assert run["waits"][0]["status"] == "received" and run["waits"][0]["resumed_by_event"]["id"] == first["id"]
    with pytest.raises(UsageError):  # 422: no identity
        http.send_json("POST", "/events", {"event": "x"})


def test_generic_create_new_session_and_cancel(api_server: ApiServer) -> None:
    http = client(api_server, "generic")
    path = f"/automations/{GENERIC_SEED_AUTOMATION}/sessions/"
    created = http.send_json("POST", path, {"inputs": {"ticket": "T-9"}})
    assert created["status"] == "NEW" and created["inputs"] == {"ticket": "T-9"}
    assert created["id"] != GENERIC_SEED_AUTOMATION
    assert api_server.requests[-1]["status"] == 201 and api_server.requests[-1]["body"] == {"inputs": {"ticket": "T-9"}}
    cancelled = http.send_json("PATCH", f"{path}{created['id']}/cancel")
    assert cancelled["status"] == "FAILED" and cancelled["error"] == "Session cancelled"
    with pytest.raises(NotAllowedError, match="already FAILED"):  # 409
        http.send_json("PATCH", f"{path}{created['id']}/cancel")
    with pytest.raises(UsageError, match="inputs"):  # FastAPI 422
        http.send_json("POST", path, {"nope": 1})
    assert len(list(http.paginate(path, None, PageSpec()))) == 3  # seed + markup + the new one


# -- faults ------------------------------------------------------------------------

def test_429_retry_after_is_honoured(api_server: ApiServer, sleeps: list[float]) -> None:
    api_server.faults.rate_limit(times=2, retry_after=7)
    doc = client(api_server, "sendrealm").get_json("/automation-runs/run_123")
    assert doc["data"]["id"] == "run_123"
    assert sleeps == [7.0, 7.0]
    assert [r["status"] for r in api_server.requests] == [429, 429, 200]


def test_429_body_has_vendor_shape(api_server: ApiServer) -> None:
    api_server.faults.rate_limit(times=1, retry_after=2)
    with raw(api_server, "plannr") as c:
        r = c.get("/api/v1/automation-executions")
        assert r.status_code == 429 and r.headers["retry-after"] == "2" and r.json() == {"message": "Too Many Attempts."}
        assert c.get("/api/v1/automation-executions").status_code == 200


def test_persistent_503_is_a_service_error(api_server: ApiServer, sleeps: list[float]) -> None:
    api_server.faults.error(503)
    with pytest.raises(ServiceError, match="Service Unavailable") as exc:
        client(api_server, "generic").get_json(f"/automations/{GENERIC_SEED_AUTOMATION}/sessions/")
    assert exc.value.exit_code == 5
    assert len(api_server.requests) == 4 and len(sleeps) == 3  # 3 retries, then give up


def test_fault_limited_to_a_path(api_server: ApiServer) -> None:
    api_server.faults.error(503, path="/automation-runs/")
    with raw(api_server) as c:
        assert c.get("/automation-runs/run_123").status_code == 503
        assert c.get("/automations/aut_123/runs").status_code == 200
    api_server.faults.clear()
    with raw(api_server) as c:
        assert c.get("/automation-runs/run_123").status_code == 200


def test_malformed_json_is_a_bad_response(api_server: ApiServer) -> None:
    api_server.faults.malformed_json(times=1)
    with pytest.raises(BadResponseError, match="malformed JSON") as exc:
        client(api_server, "sendrealm").get_json("/automation-runs/run_123")
    assert exc.value.exit_code == 5


def test_xml_and_other_markup_are_not_called_html_pages(api_server: ApiServer) -> None:
    api_server.faults.body(b'<?xml version="1.0"?><error>maintenance</error>', times=1)
    with pytest.raises(BadResponseError, match="answered an XML document where JSON was expected") as exc:
        client(api_server, "sendrealm").get_json("/automation-runs/run_123")
    assert "HTML" not in exc.value.message and "maintenance" in exc.value.message
    api_server.faults.body(b"<error>maintenance</error>", times=1)
    with pytest.raises(BadResponseError, match=r"answered markup \(not JSON\)"):
        client(api_server, "sendrealm").get_json("/automation-runs/run_123")


def test_html_pages_are_bad_responses(api_server: ApiServer, sleeps: list[float]) -> None:
    api_server.faults.html(status=200, times=1)
    with pytest.raises(BadResponseError, match="HTML page"):
        client(api_server, "plannr").get_json("/api/v1/automation-executions")
    api_server.faults.html(status=502)
    with pytest.raises(ServiceError, match="HTML page") as exc:
        client(api_server, "plannr").get_json("/api/v1/automation-executions")
    assert "502 Bad Gateway" in exc.value.message and exc.value.exit_code == 5
    with raw(api_server) as c:
        assert c.get("/automation-runs/run_123").headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("provider", "path"),
    [("plannr", "/api/v1/automation-executions"), ("sendrealm", "/automation-runs/run_123"),
     ("tenant", f"/api/v1/automation/executions/{TENANT_SEED_ID}"),
     ("generic", f"/automations/{GENERIC_SEED_AUTOMATION}/sessions/")],
)
def test_auth_failure_never_leaks_a_token(api_server: ApiServer, provider: str, path: str) -> None:
    with pytest.raises(AuthError) as exc:
        client(api_server, provider, token=BAD_TOKEN).get_json(path)
    text = f"{exc.value.message} {exc.value.hint}"
    assert BAD_TOKEN not in text and DEFAULT_TOKEN not in text
    assert api_server.requests[-1]["status"] == 401
    logged = json.dumps(api_server.requests)
    assert BAD_TOKEN not in logged and "[redacted]" in logged
    with httpx.Client(base_url=api_server.url) as c:  # no credentials at all
        assert c.get(path).status_code == 401


def test_unknown_path_and_method(api_server: ApiServer) -> None:
    with raw(api_server) as c:
        assert c.get("/nope").status_code == 404
        r = c.delete("/automation-runs/run_123")
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_100k_runs_are_generated_lazily(sleeps: list[float]) -> None:
    with ApiServer(runs=100_000, seeds=False) as srv:
        http = client(srv, "plannr")
        doc = http.get_json("/api/v1/automation-executions", {"per_page": 500, "page": 200, "sort": "-created_at"})
        assert doc["meta"]["total"] == 100_000 and doc["meta"]["last_page"] == 200
        assert doc["data"][-1]["uuid"] == gen_id("plannr", 99_999) and doc["links"]["next"] is None
        assert len(srv.state.docs["plannr"]) == 0  # nothing was stored to answer it
        with pytest.raises(NotFoundError):
            http.get_json(f"/api/v1/automation-executions/{gen_id('plannr', 100_000)}")


def test_standalone_prints_base_url_first() -> None:
    script = Path(__file__).parent / "apiserver.py"
    proc = subprocess.Popen([sys.executable, str(script), "--port", "0", "--runs", "10", "--no-seeds"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        r = httpx.get(f"{url}/automations/{SENDREALM_AUTOMATION}/runs",
                      headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"})
        assert r.status_code == 200 and len(r.json()["data"]) == 10
    finally:
        proc.terminate()
        proc.wait(timeout=10)
