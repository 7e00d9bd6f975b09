"""End-to-end: the ``autorun`` CLI (in-process, CliRunner) against the test API server.

Every request goes over a real socket to ``tests/apiserver.py`` on 127.0.0.1. The
server's request log is the witness for what reached the API (pages, filters, retries);
stdout/stderr are checked for the contract's output shapes, exit codes and safety
(one ``error:`` line, a ``hint:`` line, no traceback, never the token).
"""

from __future__ import annotations

import json
import re
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import apiserver
import pytest
from apiserver import (
    GENERIC_AUTOMATION,
    GENERIC_SEED_AUTOMATION,
    MARKUP_IDS,
    MARKUP_NAME,
    NAMES,
    PLANNR_BLUEPRINT,
    PLANNR_CLIENTS,
    SENDREALM_AUTOMATION,
    SENDREALM_SEED_AUTOMATION,
    SENDREALM_WAITING_ID,
    TENANT_RULES,
    TENANT_SEED_ID,
    ApiServer,
    Fault,
    _status,
    gen_id,
)
from typer.testing import CliRunner

import autorun_cli.http as http_mod
from autorun_cli.cli.app import app

SEEDS = Path(__file__).parent / "fixtures" / "seeds"
PROVIDERS = ("plannr", "sendrealm", "tenant", "generic")
N = 250
BAD_TOKEN = "wrong-token-e2e-91b3"
FORBIDDEN_KEY = "forbidden-key-e2e-4c7a"
PLANNR_SEED_GET = "82f16694-dbe3-4787-bd57-ab9eec12b43f"
PLANNR_SEED_LIST = "d24b4d73-7206-46a0-815a-508ef61110c6"
GENERIC_SEED_ID = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
MISSING_UUID = "0badc0de-0000-4000-8000-00000000dead"

# Where each provider's list lives, and the automation the generated runs belong to.
LIST_PATHS = {
    "plannr": f"/api/v1/automation-blueprints/{PLANNR_BLUEPRINT}/executions",
    "sendrealm": f"/automations/{SENDREALM_AUTOMATION}/runs",
    "tenant": "/api/v1/automation/executions",
    "generic": f"/automations/{GENERIC_AUTOMATION}/sessions/",
}
# (Tenant lists are not per automation; a rule holds every third generated run and no seed.)
GEN_AUTOMATION = {"plannr": PLANNR_BLUEPRINT, "sendrealm": SENDREALM_AUTOMATION, "tenant": TENANT_RULES[1],
                  "generic": GENERIC_AUTOMATION}
# A run of each provider that exists on the seeded server, and the automation it needs.
SEED_RUN = {
    "plannr": (PLANNR_SEED_GET, None),
    "sendrealm": ("run_123", None),
    "tenant": (TENANT_SEED_ID, None),
    "generic": (GENERIC_SEED_ID, GENERIC_SEED_AUTOMATION),
}
MISSING_RUN = {"plannr": MISSING_UUID, "sendrealm": "run_nope", "tenant": MISSING_UUID, "generic": MISSING_UUID}
MALFORMED_ID = {"plannr": "not-a-uuid", "sendrealm": "../etc/passwd", "tenant": "12345", "generic": "a b"}
# Vendor statuses behind the normalized "failed" and "running".
FAILED_OR_RUNNING = {
    "plannr": {"failed", "in_progress"},
    "sendrealm": {"failed", "running"},
    "tenant": {"failed", "running"},
    "generic": {"FAILED", "RUNNING"},
}

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read the user's config or data; no stray AUTORUN_* from the shell."""
    for var in ("AUTORUN_PROVIDER", "AUTORUN_BASE_URL", "AUTORUN_TOKEN", "AUTORUN_PROFILE", "AUTORUN_OUTPUT",
                "AUTORUN_AUTOMATION_ID", "AUTORUN_TENANT_ID", "AUTORUN_ACCOUNT_UUID", "AUTORUN_DEBUG",
                "AUTORUN_CONCURRENCY", "NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the backoff sleeps instead of sleeping."""
    slept: list[float] = []
    monkeypatch.setattr(http_mod, "sleep", slept.append)
    return slept


@pytest.fixture
def server(api_server: ApiServer) -> ApiServer:
    for provider in PROVIDERS:
        api_server.state.generate(provider, N)
    return api_server


def cli(server: ApiServer, provider: str, *args: str, automation: str | None = None, token: str | None = None,
        **extra: str) -> Any:
    env = server.env(provider, automation=automation, token=token, COLUMNS="250", **extra)
    return runner.invoke(app, list(args), env=env)


def assert_clean(result: Any, server: ApiServer, *secrets: str) -> None:
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream
        for secret in (server.token, *secrets):
            assert secret not in stream


def assert_error(result: Any, server: ApiServer, exit_code: int, *secrets: str) -> str:
    """The contract's error shape; returns the text of the error line."""
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    assert_clean(result, server, *secrets)
    lines = result.stderr.splitlines()
    errors = [ln for ln in lines if ln.startswith("error: ")]
    hints = [ln for ln in lines if ln.startswith("hint: ")]
    assert len(errors) == 1, result.stderr
    assert len(hints) == 1 and len(hints[0]) > len("hint: "), result.stderr
    return errors[0][len("error: "):]


def list_requests(server: ApiServer, provider: str) -> list[dict]:
    path = LIST_PATHS[provider]
    return [r for r in server.requests if r["path"] == path and r["method"] == "GET"]


def arg(request: dict, name: str) -> str | None:
    vals = request["query"].get(name)
    return vals[-1] if vals else None


def gen_ids(provider: str, n: int = N) -> list[str]:
    return [gen_id(provider, i) for i in range(n)]


def in_automation(provider: str, index: bool = False) -> list[Any]:
    """Generated runs (newest first) listed under ``GEN_AUTOMATION[provider]``."""
    indexes = [i for i in range(N) if provider != "tenant" or i % 3 == 1]
    return indexes if index else [gen_id(provider, i) for i in indexes]


# -- pagination ---------------------------------------------------------------------

# Generated runs needed for three pages, and the page parameter of each style.
PAGE_CASES = {
    "plannr": (1100, "page", [None, "2", "3"]),  # per_page is capped at 500; links.next after page 1
    "sendrealm": (N, "cursor", None),
    "tenant": (N, "page", ["1", "2", "3"]),
    "generic": (N, "offset", [None, "100", "200"]),
}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_list_all_ndjson_reads_every_page_once(api_server: ApiServer, provider: str) -> None:
    n, page_param, pages = PAGE_CASES[provider]
    api_server.state.generate(provider, n)
    automation = None if provider == "tenant" else GEN_AUTOMATION[provider]
    result = cli(api_server, provider, "list", "--all", "-o", "ndjson", automation=automation)
    assert result.exit_code == 0, result.stderr
    assert_clean(result, api_server)
    runs = [json.loads(line) for line in result.stdout.splitlines()]
    ids = [r["id"] for r in runs]
    expected = set(gen_ids(provider, n))
    if provider == "tenant":  # no per-automation path: the seeded executions are listed too
        expected |= {TENANT_SEED_ID, MARKUP_IDS["tenant"]}
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == expected
    assert all(r["provider"] == provider for r in runs)
    reqs = list_requests(api_server, provider)
    assert len(reqs) == 3
    if pages is not None:
        assert [arg(r, page_param) for r in reqs] == pages
    else:  # cursor: none on the first page, then the cursor the server handed out
        assert arg(reqs[0], "cursor") is None
        assert arg(reqs[1], "cursor") and arg(reqs[2], "cursor") and arg(reqs[1], "cursor") != arg(reqs[2], "cursor")


def test_list_all_json_is_one_array_of_every_run(server: ApiServer) -> None:
    result = cli(server, "sendrealm", "list", "--all", "-o", "json", automation=SENDREALM_AUTOMATION)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert isinstance(doc, list)
    assert [r["id"] for r in doc] == gen_ids("sendrealm")  # server order is newest first
    assert result.stderr == ""


def test_list_all_id_prints_one_id_per_line(server: ApiServer) -> None:
    result = cli(server, "generic", "list", "--all", "-o", "id", automation=GENERIC_AUTOMATION)
    assert result.exit_code == 0, result.stderr
    # Newest first, sorted on the client (the API documents no order).
    assert result.stdout.splitlines() == gen_ids("generic")


def test_list_all_table_has_a_row_per_run(server: ApiServer) -> None:
    result = cli(server, "tenant", "list", "--all", "--automation", TENANT_RULES[1])
    assert result.exit_code == 0, result.stderr
    rows = [ln for ln in result.stdout.splitlines() if re.match(r"^e0000000-", ln)]
    expected = [gen_id("tenant", i) for i in range(N) if i % 3 == 1]
    assert [row.split()[0] for row in rows] == expected
    assert result.stdout.splitlines()[0].split()[:3] == ["ID", "STATUS", "NAME"]


@pytest.mark.parametrize("provider", ["plannr", "sendrealm", "tenant"])
def test_limit_stops_after_the_first_page(server: ApiServer, provider: str) -> None:
    result = cli(server, provider, "list", "--limit", "5", "-o", "id", automation=GEN_AUTOMATION[provider])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [rid for rid in in_automation(provider)][:5]
    reqs = list_requests(server, provider)
    assert len(reqs) == 1
    size = {"plannr": "per_page", "sendrealm": "limit", "tenant": "limit"}[provider]
    assert arg(reqs[0], size) == "5"


def test_limit_across_pages_reads_only_the_pages_needed(server: ApiServer) -> None:
    result = cli(server, "sendrealm", "list", "--limit", "150", "-o", "id", automation=SENDREALM_AUTOMATION)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == gen_ids("sendrealm", 150)
    assert len(list_requests(server, "sendrealm")) == 2  # of 3


def test_generic_limit_reads_full_pages_to_find_the_newest(server: ApiServer) -> None:
    # No server order: the newest 5 need every session, read in as few pages as the API allows.
    result = cli(server, "generic", "list", "--limit", "5", "-o", "id", automation=GENERIC_AUTOMATION)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == gen_ids("generic", 5)
    reqs = list_requests(server, "generic")
    assert [arg(r, "limit") for r in reqs] == ["100", "100", "100"]


def test_client_side_sort_reads_full_pages(server: ApiServer) -> None:
    result = cli(server, "plannr", "list", "--sort", "name", "--limit", "3", "-o", "id", automation=PLANNR_BLUEPRINT)
    assert result.exit_code == 0, result.stderr
    reqs = list_requests(server, "plannr")
    assert len(reqs) == 1 and arg(reqs[0], "per_page") == "500"


# -- filters reaching the server ------------------------------------------------------

def test_plannr_uuid_filter_and_sort_reach_the_server(server: ApiServer) -> None:
    wanted = [gen_id("plannr", 7), gen_id("plannr", 3)]
    result = cli(server, "plannr", "list", "--uuid", ",".join(wanted), "--sort", "created_at", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [r["id"] for r in json.loads(result.stdout)] == [gen_id("plannr", 7), gen_id("plannr", 3)]  # oldest first
    (req,) = [r for r in server.requests if r["path"] == "/api/v1/automation-executions"]
    assert arg(req, "filter[uuid]") == ",".join(wanted)
    assert arg(req, "sort") == "created_at"


def test_plannr_client_uuids_filter_reaches_the_server(server: ApiServer) -> None:
    client = PLANNR_CLIENTS[2]
    result = cli(server, "plannr", "list", "--client-uuids", client, "--all", "-o", "id", automation=PLANNR_BLUEPRINT)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [gen_id("plannr", i) for i in range(N) if i % 4 == 2]
    (req,) = list_requests(server, "plannr")
    assert arg(req, "filter[client_uuids]") == client
    assert arg(req, "sort") == "-created_at"


def test_plannr_account_header_reaches_the_server(server: ApiServer) -> None:
    account = PLANNR_CLIENTS[1]
    result = cli(server, "plannr", "show", PLANNR_SEED_GET, "--account", account, "-o", "json")
    assert result.exit_code == 0, result.stderr
    (req,) = server.requests
    assert req["headers"]["x-plannr-account-uuid"] == account


def test_sendrealm_single_status_and_cursor_reach_the_server(server: ApiServer) -> None:
    result = cli(server, "sendrealm", "list", "--status", "failed", "--all", "-o", "id", automation=SENDREALM_AUTOMATION)
    assert result.exit_code == 0, result.stderr
    expected = [gen_id("sendrealm", i) for i in range(N) if _status("sendrealm", i) == "failed"]
    assert result.stdout.splitlines() == expected
    reqs = list_requests(server, "sendrealm")
    assert all(arg(r, "status") == "failed" for r in reqs)
    assert len(reqs) == 1 + (len(expected) - 1) // 100


@pytest.mark.parametrize("provider", PROVIDERS)
def test_several_statuses_are_filtered_on_the_client(server: ApiServer, provider: str) -> None:
    result = cli(server, provider, "list", "--status", "failed,running", "--all", "-o", "ndjson",
                 automation=GEN_AUTOMATION[provider])
    assert result.exit_code == 0, result.stderr
    runs = [json.loads(line) for line in result.stdout.splitlines()]
    expected = {gen_id(provider, i) for i in in_automation(provider, index=True)
                if _status(provider, i) in FAILED_OR_RUNNING[provider]}
    assert {r["id"] for r in runs} == expected and len(runs) == len(expected)
    assert {r["status"] for r in runs} == {"failed", "running"}
    assert all(arg(r, "status") is None for r in list_requests(server, provider))


def test_tenant_filters_reach_the_server(server: ApiServer) -> None:
    rule = TENANT_RULES[2]
    since = "2026-05-31T23:00:00Z"  # the newest hour of generated runs (one every 61 s)
    result = cli(server, "tenant", "list", "--status", "timed_out", "--automation", rule, "--since", since,
                 "--all", "-o", "json")
    assert result.exit_code == 0, result.stderr
    runs = json.loads(result.stdout)
    expected = [gen_id("tenant", i) for i in range(N)
                if i % 3 == 2 and _status("tenant", i) == "timeout" and i * 61 <= 3600]
    assert expected and [r["id"] for r in runs] == expected
    assert {r["status"] for r in runs} == {"timed_out"}
    (req,) = list_requests(server, "tenant")
    assert arg(req, "status") == "timeout"  # the vendor's own word
    assert arg(req, "automation_rule_id") == rule
    assert arg(req, "started_from") and arg(req, "started_from").startswith("2026-05-31T23:00:00")
    assert arg(req, "page") == "1"


def test_tenant_id_header_scopes_the_list(server: ApiServer) -> None:
    result = cli(server, "tenant", "list", "--all", "-o", "id", "--tenant", "7e000000-0000-4000-8000-00000000ffff")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert list_requests(server, "tenant")[0]["headers"]["x-tenant-id"] == "7e000000-0000-4000-8000-00000000ffff"


def test_generic_offset_and_limit_reach_the_server(server: ApiServer) -> None:
    result = cli(server, "generic", "list", "--all", "-o", "id", automation=GENERIC_AUTOMATION)
    assert result.exit_code == 0, result.stderr
    reqs = list_requests(server, "generic")
    assert [(arg(r, "offset"), arg(r, "limit")) for r in reqs] == [(None, "100"), ("100", "100"), ("200", "100")]


def test_sort_name_is_client_side_and_stable(server: ApiServer) -> None:
    args = ("list", "--sort", "name", "--all", "-o", "id")
    first = cli(server, "plannr", *args, automation=PLANNR_BLUEPRINT)
    assert first.exit_code == 0, first.stderr
    names = {gen_id("plannr", i): f"{NAMES[i % len(NAMES)]} #{i}" for i in range(N)}
    assert first.stdout.splitlines() == sorted(names, key=lambda rid: (names[rid].lower(), rid))
    assert all(arg(r, "sort") is None for r in list_requests(server, "plannr"))  # the API sorts by name itself
    again = cli(server, "plannr", *args, automation=PLANNR_BLUEPRINT)
    assert again.stdout == first.stdout


def test_sort_name_ties_fall_back_to_the_id(server: ApiServer) -> None:
    # Sendrealm runs carry no name: every key ties, the ID decides (ascending, or
    # descending with -name) so the order never depends on the server's.
    up = cli(server, "sendrealm", "list", "--sort", "name", "--all", "-o", "id", automation=SENDREALM_AUTOMATION)
    down = cli(server, "sendrealm", "list", "--sort", "-name", "--all", "-o", "id", automation=SENDREALM_AUTOMATION)
    assert up.exit_code == down.exit_code == 0
    assert up.stdout.splitlines() == sorted(gen_ids("sendrealm"))
    assert down.stdout.splitlines() == sorted(gen_ids("sendrealm"), reverse=True)


# -- show -------------------------------------------------------------------------------

def show_json(server: ApiServer, provider: str, *ids: str, automation: str | None = None, raw: bool = False) -> Any:
    args = ["show", *ids, "-o", "json"] + (["--raw"] if raw else [])
    result = cli(server, provider, *args, automation=automation)
    assert result.exit_code == 0, result.stderr
    assert_clean(result, server)
    return json.loads(result.stdout)


def test_show_sendrealm_seed_json(api_server: ApiServer) -> None:
    run = show_json(api_server, "sendrealm", "run_123")
    assert run["id"] == "run_123" and run["provider"] == "sendrealm"
    assert run["status"] == "completed" and run["automation_id"] == "aut_123"
    assert run["duration_ms"] == 91000
    assert run["trigger"]["event"] == "order.completed"
    assert run["trigger"]["payload"] == {"order_id": "ord_123"}
    assert run["identity"] == {**run["identity"], "type": "email", "value": "olivia@example.com"}
    assert [s["key"] for s in run["steps"]][:2] == ["send_receipt", "wait_for_open"]
    assert run["steps"][1]["branch"] == "received"
    wait = run["waits"][0]
    assert wait["status"] == "received" and wait["event"] == "sendrealm.mail.open"
    assert wait["branch"] == "received" and wait["resumed_at"] and wait["timeout_at"]
    assert {"id": "email_123", "channel": "email"}.items() <= run["messages"][0].items()
    assert {m["channel"] for m in run["messages"]} >= {"email", "push"}
    assert run["error"] is None and "raw" not in run
    for key in ("name", "updated_at", "current_step", "links", "logs"):
        assert key in run  # a missing value is null, never absent


def test_show_plannr_seed_json(api_server: ApiServer) -> None:
    run = show_json(api_server, "plannr", PLANNR_SEED_GET)
    assert run["status"] == "running" and run["provider_status"] == "in_progress"
    assert run["name"] == "Send client welcome pack to newly created client"
    assert run["trigger"]["event"] == "client.created"
    assert run["identity"]["id"] == "2066e7c6-feb1-4e00-b55a-8a0f91d47bad"
    step = run["steps"][0]
    assert step["name"] == "Send SMS" and step["status"] == "completed"
    assert step["info"] == "\"[{errors : \"the account_uuid field is required\" }]\""  # as the API gave it
    assert run["finished_at"] is None and run["duration_ms"] is None


def test_show_plannr_data_wrapped_document(api_server: ApiServer) -> None:
    run = show_json(api_server, "plannr", PLANNR_SEED_LIST, raw=True)
    assert run["id"] == PLANNR_SEED_LIST and run["status"] == "running"
    # Served wrapped in "data": raw is the response as sent, envelope included.
    assert run["raw"] == {"data": json.loads((SEEDS / "plannr_list.json").read_text())["data"][0]}


def test_show_tenant_seed_json(api_server: ApiServer) -> None:
    run = show_json(api_server, "tenant", TENANT_SEED_ID)
    assert run["status"] == "failed" and run["duration_ms"] == 2500
    assert run["error"]["message"] == "Action 'send_email' failed: SMTP connection refused"
    assert [s["status"] for s in run["steps"]] == ["completed", "failed", "skipped"]
    assert len(run["logs"]) == 3 and run["logs"][2]["level"] == "error" and run["logs"][2]["step_index"] == 1
    assert run["links"]["retry"].endswith(f"/api/v1/automation/executions/{TENANT_SEED_ID}/retry")
    assert run["trigger"]["event"] == "ticket.created"


def test_show_generic_seed_json(api_server: ApiServer) -> None:
    run = show_json(api_server, "generic", GENERIC_SEED_ID, automation=GENERIC_SEED_AUTOMATION)
    assert run["status"] == "pending" and run["provider_status"] == "NEW"
    assert run["steps"][0]["type"] == "START"
    assert run["automation_id"] == GENERIC_SEED_AUTOMATION


@pytest.mark.parametrize("provider,seed", [("sendrealm", "sendrealm_run.json"), ("plannr", "plannr_get.json"),
                                           ("generic", "generic_session.json")])
def test_show_raw_is_the_vendor_document_untouched(api_server: ApiServer, provider: str, seed: str) -> None:
    rid, automation = SEED_RUN[provider]
    run = show_json(api_server, provider, rid, automation=automation, raw=True)
    assert run["raw"] == json.loads((SEEDS / seed).read_text())


def test_show_tenant_raw_keeps_the_envelope_and_links(api_server: ApiServer) -> None:
    run = show_json(api_server, "tenant", TENANT_SEED_ID, raw=True)
    doc = run["raw"]["data"]
    assert doc["execution_id"] == TENANT_SEED_ID
    assert doc["error_stack"].startswith("Error: SMTP connection refused\n    at EmailAction")
    assert doc["_links"]["retry"]["method"] == "POST"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_show_several_ids_keeps_the_order(server: ApiServer, provider: str) -> None:
    ids = [gen_id(provider, i) for i in (9, 2, 40, 0, 17, 5)]
    runs = show_json(server, provider, *ids, automation=GEN_AUTOMATION[provider])
    assert isinstance(runs, list)
    assert [r["id"] for r in runs] == ids
    assert len([r for r in server.requests if r["method"] == "GET"]) == len(ids)


def test_show_several_ids_table_shows_each(server: ApiServer) -> None:
    result = cli(server, "sendrealm", "show", "run_123", SENDREALM_WAITING_ID)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.index("run_123") < result.stdout.index(SENDREALM_WAITING_ID)


@pytest.mark.parametrize("provider,expected", [
    ("plannr", MARKUP_IDS["plannr"]),
    ("sendrealm", "run_123"),
    ("tenant", TENANT_SEED_ID),
    ("generic", gen_id("generic", 0)),
])
def test_show_latest(server: ApiServer, provider: str, expected: str) -> None:
    automation = {"sendrealm": SENDREALM_SEED_AUTOMATION, "generic": GENERIC_AUTOMATION}.get(provider)
    run = show_json(server, provider, "@latest", automation=automation)
    assert run["id"] == expected


def test_show_human_view_sendrealm(api_server: ApiServer) -> None:
    result = cli(api_server, "sendrealm", "show", "run_123")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for text in ("run_123", "completed", "order.completed", "olivia@example.com", "1m31s", "send_receipt",
                 "wait_for_open", "sendrealm.mail.open", "received", "Your receipt"):
        assert text in out, text
    assert result.stderr == ""
    assert "\x1b" not in out  # not a terminal: no escape codes


def test_show_human_view_tenant_failed(api_server: ApiServer) -> None:
    result = cli(api_server, "tenant", "show", TENANT_SEED_ID)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for text in ("failed", "SMTP connection refused", "Ticket assigned", "skipped", "autorun retry"):
        assert text in out, text


def test_show_human_view_plannr_info_readable(api_server: ApiServer) -> None:
    result = cli(api_server, "plannr", "show", PLANNR_SEED_GET)
    assert result.exit_code == 0, result.stderr
    assert "[{errors : \"the account_uuid field is required\" }]" in result.stdout
    assert "Send client welcome pack" in result.stdout


# -- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("provider", PROVIDERS)
def test_wrong_token_is_exit_4(api_server: ApiServer, provider: str) -> None:
    rid, automation = SEED_RUN[provider]
    result = cli(api_server, provider, "show", rid, automation=automation, token=BAD_TOKEN)
    message = assert_error(result, api_server, 4, BAD_TOKEN)
    assert message.startswith("authentication refused")
    assert len(api_server.requests) == 1  # a 401 is final, not retried


@pytest.mark.parametrize("provider", PROVIDERS)
def test_wrong_token_on_list_is_exit_4(api_server: ApiServer, provider: str) -> None:
    automation = {"sendrealm": SENDREALM_SEED_AUTOMATION, "generic": GENERIC_SEED_AUTOMATION}.get(provider)
    result = cli(api_server, provider, "list", "-o", "json", automation=automation, token=BAD_TOKEN)
    assert_error(result, api_server, 4, BAD_TOKEN)
    doc = json.loads(result.stdout)
    assert doc["error"]["code"] == "unauthorized"


def test_wrong_token_verbose_logs_requests_without_secrets(api_server: ApiServer) -> None:
    result = cli(api_server, "sendrealm", "show", "run_123", "-v", token=BAD_TOKEN)
    assert_error(result, api_server, 4, BAD_TOKEN)
    assert f"> GET {api_server.url}/automation-runs/run_123" in result.stderr
    assert "< 401" in result.stderr


@pytest.mark.parametrize("provider", PROVIDERS)
def test_verbose_request_log_redacts_the_token(api_server: ApiServer, provider: str) -> None:
    # The token typed as the ID puts it in the URL: the log must still not show it.
    token_id = api_server.token
    rid, automation = SEED_RUN[provider]
    ok = cli(api_server, provider, "show", rid, "-v", "-o", "json", automation=automation)
    assert ok.exit_code == 0, ok.stderr
    assert_clean(ok, api_server)
    assert "> GET " in ok.stderr and "< 200" in ok.stderr
    if provider == "sendrealm":
        leaked = cli(api_server, provider, "show", token_id, "-v")
        assert_error(leaked, api_server, 3)
        assert "/automation-runs/***" in leaked.stderr


@pytest.mark.parametrize("provider", PROVIDERS)
def test_not_found_is_exit_3(api_server: ApiServer, provider: str) -> None:
    automation = GENERIC_SEED_AUTOMATION if provider == "generic" else None
    result = cli(api_server, provider, "show", MISSING_RUN[provider], automation=automation)
    assert_error(result, api_server, 3)
    assert len(api_server.requests) == 1  # not retried, even the tenant's 500


def test_tenant_500_not_found_quirk_is_exit_3(api_server: ApiServer) -> None:
    result = cli(api_server, "tenant", "show", MISSING_UUID, "-o", "json")
    message = assert_error(result, api_server, 3)
    assert "not found" in message.lower()
    assert json.loads(result.stdout)["error"]["code"] == "not_found"
    assert [r["status"] for r in api_server.requests] == [500]


def test_tenant_forbidden_key_is_exit_4(api_server: ApiServer) -> None:
    api_server.state.forbidden_tokens.add(FORBIDDEN_KEY)
    result = cli(api_server, "tenant", "show", TENANT_SEED_ID, token=FORBIDDEN_KEY)
    message = assert_error(result, api_server, 4, FORBIDDEN_KEY)
    assert message.startswith("permission refused") and "Permission denied" in message


def test_plannr_unknown_blueprint_message_is_literal(api_server: ApiServer) -> None:
    result = cli(api_server, "plannr", "list", "--automation", MISSING_UUID)
    message = assert_error(result, api_server, 3)
    assert f"[App\\Models\\AutomationBlueprint] {MISSING_UUID}" in message


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rate_limit_then_success(api_server: ApiServer, sleeps: list[float], provider: str) -> None:
    rid, automation = SEED_RUN[provider]
    api_server.faults.rate_limit(times=1, retry_after=7)
    result = cli(api_server, provider, "show", rid, "-o", "json", automation=automation)
    assert result.exit_code == 0, result.stderr
    assert_clean(result, api_server)
    assert json.loads(result.stdout)["id"] == rid
    assert sleeps == [7.0]
    assert [r["status"] for r in api_server.requests] == [429, 200]


def test_rate_limit_http_date_retry_after(server: ApiServer, sleeps: list[float]) -> None:
    server.faults.rate_limit(times=2, retry_after=formatdate(time.time() + 30, usegmt=True))
    result = cli(server, "tenant", "list", "--limit", "3", "-o", "id")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3
    assert len(sleeps) == 2 and all(25 <= s <= 30 for s in sleeps)


def test_rate_limit_during_pagination_resumes_the_same_page(server: ApiServer, sleeps: list[float],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # A 429 on the second page (the server's faults hit the next request, so count them here).
    taken: list[str] = []
    real_take = server.faults.take

    def take(path: str, method: str = "GET") -> Fault | None:
        taken.append(path)
        return Fault("status", 429, 1, None, "2") if len(taken) == 2 else real_take(path, method)

    monkeypatch.setattr(server.faults, "take", take)
    result = cli(server, "sendrealm", "list", "--all", "-o", "id", automation=SENDREALM_AUTOMATION)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == gen_ids("sendrealm")
    assert sleeps == [2.0]
    reqs = list_requests(server, "sendrealm")
    assert [r["status"] for r in reqs] == [200, 429, 200, 200]
    assert arg(reqs[1], "cursor") == arg(reqs[2], "cursor") is not None


@pytest.mark.parametrize("provider", PROVIDERS)
def test_persistent_503_is_exit_5_after_four_requests(api_server: ApiServer, sleeps: list[float],
                                                      provider: str) -> None:
    rid, automation = SEED_RUN[provider]
    api_server.faults.error(503)
    result = cli(api_server, provider, "show", rid, automation=automation)
    message = assert_error(result, api_server, 5)
    assert "after 3 retries" in message
    assert [r["status"] for r in api_server.requests] == [503] * 4
    assert len(sleeps) == 3


def test_persistent_503_json_error_document(api_server: ApiServer) -> None:
    api_server.faults.error(503)
    result = cli(api_server, "sendrealm", "list", "-o", "json", automation=SENDREALM_SEED_AUTOMATION)
    assert_error(result, api_server, 5)
    doc = json.loads(result.stdout)
    assert set(doc) == {"error"} and set(doc["error"]) == {"code", "message", "hint"}
    assert doc["error"]["code"] == "service" and doc["error"]["hint"]
    assert doc["error"]["message"] == result.stderr.splitlines()[0][len("error: "):]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_malformed_json_is_exit_5(api_server: ApiServer, provider: str) -> None:
    rid, automation = SEED_RUN[provider]
    api_server.faults.malformed_json()
    result = cli(api_server, provider, "show", rid, automation=automation)
    message = assert_error(result, api_server, 5)
    assert "malformed JSON" in message
    assert len(api_server.requests) == 1


def test_malformed_json_in_a_list_page_is_exit_5(server: ApiServer) -> None:
    server.faults.malformed_json(path=LIST_PATHS["plannr"])
    result = cli(server, "plannr", "list", "--all", "-o", "json", automation=PLANNR_BLUEPRINT)
    assert_error(result, server, 5)
    assert json.loads(result.stdout)["error"]["code"] == "bad_response"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_html_error_page_is_exit_5_and_says_html(api_server: ApiServer, sleeps: list[float], provider: str) -> None:
    rid, automation = SEED_RUN[provider]
    api_server.faults.html(502)
    result = cli(api_server, provider, "show", rid, automation=automation)
    message = assert_error(result, api_server, 5)
    assert message.startswith("the service failed (after 3 retries): HTTP 502 Bad Gateway with an HTML page")
    assert len(api_server.requests) == 4


def test_html_page_with_200_is_exit_5(api_server: ApiServer) -> None:
    # A login page or a wrong base URL answers 200 with HTML.
    api_server.faults.html(200)
    result = cli(api_server, "tenant", "list", "-o", "json")
    message = assert_error(result, api_server, 5)
    assert "HTML" in message
    assert json.loads(result.stdout)["error"]["code"] == "bad_response"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_malformed_id_is_exit_2_with_no_request(api_server: ApiServer, provider: str) -> None:
    automation = GENERIC_SEED_AUTOMATION if provider == "generic" else None
    good = SEED_RUN[provider][0]
    result = cli(api_server, provider, "show", good, MALFORMED_ID[provider], "-o", "json", automation=automation)
    message = assert_error(result, api_server, 2)
    assert "malformed" in message
    assert json.loads(result.stdout)["error"]["code"] == "usage"
    assert api_server.requests == []


def test_show_several_with_one_missing_prints_found_and_fails(server: ApiServer) -> None:
    ids = ["run_123", "run_nope", SENDREALM_WAITING_ID]
    result = cli(server, "sendrealm", "show", *ids, "-o", "ndjson")
    assert result.exit_code == 3
    assert_clean(result, server)
    *found, failure = [json.loads(ln) for ln in result.stdout.splitlines()]
    assert [r["id"] for r in found] == ["run_123", SENDREALM_WAITING_ID]
    assert failure["error"]["code"] == "not_found"  # one line, like every other ndjson record
    assert sum(ln.startswith("error: ") for ln in result.stderr.splitlines()) == 1


def test_show_several_json_with_one_missing_is_one_document(server: ApiServer) -> None:
    ids = ["run_123", "run_nope", SENDREALM_WAITING_ID]
    result = cli(server, "sendrealm", "show", *ids, "-o", "json")
    assert result.exit_code == 3
    assert_clean(result, server)
    doc = json.loads(result.stdout)  # one JSON document: the runs that were found
    assert [r["id"] for r in doc] == ["run_123", SENDREALM_WAITING_ID]
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "run_nope" in result.stderr


def test_connection_refused_is_exit_5(api_server: ApiServer, sleeps: list[float]) -> None:
    url = api_server.url
    api_server.stop()
    result = runner.invoke(app, ["show", "run_123"], env={"AUTORUN_PROVIDER": "sendrealm", "AUTORUN_BASE_URL": url,
                                                          "AUTORUN_TOKEN": api_server.token})
    message = assert_error(result, api_server, 5)
    assert message.startswith("could not reach 127.0.0.1")
    assert len(sleeps) == 3


# -- markup and escapes in API text ---------------------------------------------------------

# The API's own control sequences (Rich's styling codes with --color always are fine).
ESC_SEQUENCES = ("\x1b[31mred", "red\x1b[0m", "\x1b]8;;https://evil", "\x07osc", "\x1b[2J")


def assert_literal(text: str) -> None:
    assert "[bold red]pwned[/]" in text
    assert "\\x1b[31mred" in text
    for seq in ESC_SEQUENCES:
        assert seq not in text


@pytest.mark.parametrize("color", ["never", "always"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_markup_in_show_is_literal(api_server: ApiServer, provider: str, color: str) -> None:
    automation = GENERIC_SEED_AUTOMATION if provider == "generic" else None
    result = cli(api_server, provider, "show", MARKUP_IDS[provider], "--color", color, automation=automation)
    assert result.exit_code == 0, result.stderr
    assert_clean(result, api_server)
    assert_literal(result.stdout)
    # The other text (a link tag, an OSC 8 hyperlink, a clear-screen) is shown too, escaped.
    assert "[link=https://evil.example]click[/link]" in result.stdout
    assert "\\x1b]8;;https://evil.example\\x07osc" in result.stdout
    if color == "never":
        assert "\x1b" not in result.stdout
    else:
        assert "\x1b[" in result.stdout  # colour really was on


@pytest.mark.parametrize("color", ["never", "always"])
def test_markup_in_list_table_is_literal(api_server: ApiServer, color: str) -> None:
    result = cli(api_server, "plannr", "list", "--color", color)
    assert result.exit_code == 0, result.stderr
    assert MARKUP_IDS["plannr"] in result.stdout
    assert_literal(result.stdout)
    if color == "never":
        assert "\x1b" not in result.stdout
    else:
        assert "\x1b[" in result.stdout  # colour really was on: only the API's own codes are neutralised


def test_markup_in_step_info_log_and_error_is_literal(api_server: ApiServer) -> None:
    plannr = cli(api_server, "plannr", "show", MARKUP_IDS["plannr"], "--color", "never")
    assert "[link=https://evil.example]click[/link]" in plannr.stdout  # step info
    sendrealm = cli(api_server, "sendrealm", "show", MARKUP_IDS["sendrealm"], "--color", "never")
    assert "[link=https://evil.example]click[/link]" in sendrealm.stdout  # error message
    assert "\\x1b[2J" in sendrealm.stdout
    tenant = cli(api_server, "tenant", "show", MARKUP_IDS["tenant"], "--color", "never")
    assert tenant.stdout.count("[bold red]pwned[/]") >= 2  # error message and log line
    generic = cli(api_server, "generic", "show", MARKUP_IDS["generic"], "--color", "never",
                  automation=GENERIC_SEED_AUTOMATION)
    assert "[link=https://evil.example]click[/link]" in generic.stdout  # step error
    for result in (plannr, sendrealm, tenant, generic):
        assert result.exit_code == 0
        for seq in ESC_SEQUENCES:
            assert seq not in result.stdout


def test_markup_kept_exactly_in_json(api_server: ApiServer) -> None:
    run = show_json(api_server, "plannr", MARKUP_IDS["plannr"])
    assert run["name"] == MARKUP_NAME  # JSON carries the data as given; escaping is JSON's


def test_client_side_status_filter_reads_full_pages(server: ApiServer) -> None:
    result = cli(server, "tenant", "list", "--status", "failed,running", "--limit", "5", "-o", "id")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 5
    reqs = list_requests(server, "tenant")
    assert len(reqs) == 1 and arg(reqs[0], "limit") == "100"


def test_markup_in_an_api_error_message_is_literal(api_server: ApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The server words its 503 body with the reason table: make the API's message hostile.
    monkeypatch.setitem(apiserver._REASONS, 503, MARKUP_NAME)
    api_server.faults.error(503)
    result = cli(api_server, "sendrealm", "show", "run_123", "-o", "json")
    message = assert_error(result, api_server, 5)
    assert "[bold red]pwned[/] \\x1b[31mred\\x1b[0m" in message
    assert "\x1b" not in result.stderr and "\x1b" not in result.stdout
    assert "[bold red]pwned[/]" in json.loads(result.stdout)["error"]["message"]


def test_generic_without_automation_is_exit_2_with_no_request(api_server: ApiServer) -> None:
    result = cli(api_server, "generic", "show", GENERIC_SEED_ID)
    message = assert_error(result, api_server, 2)
    assert "automation" in message
    assert "AUTORUN_AUTOMATION_ID" in result.stderr
    assert api_server.requests == []


def _fail_from_second_request(server: ApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[str] = []
    real_take = server.faults.take

    def take(path: str, method: str = "GET") -> Fault | None:
        taken.append(path)
        return Fault("status", 503, None) if len(taken) >= 2 else real_take(path, method)

    monkeypatch.setattr(server.faults, "take", take)


def test_json_list_failing_on_a_later_page_keeps_stdout_well_formed(server: ApiServer,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_from_second_request(server, monkeypatch)
    result = cli(server, "sendrealm", "list", "--all", "-o", "json", automation=SENDREALM_AUTOMATION)
    assert_error(result, server, 5)
    decoder = json.JSONDecoder()
    runs, end = decoder.raw_decode(result.stdout)
    failure, _ = decoder.raw_decode(result.stdout[end:].lstrip())
    assert [r["id"] for r in runs] == gen_ids("sendrealm", 100)  # the first page
    assert failure["error"]["code"] == "service"


def test_ndjson_list_failing_on_a_later_page_ends_with_the_error_line(server: ApiServer,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_from_second_request(server, monkeypatch)
    result = cli(server, "tenant", "list", "--all", "-o", "ndjson")
    assert_error(result, server, 5)
    *runs, failure = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(runs) == 100 and failure == {"error": {**failure["error"], "code": "service"}}


def test_rate_limit_asking_too_long_is_not_waited_for(api_server: ApiServer, sleeps: list[float]) -> None:
    api_server.faults.rate_limit(times=1, retry_after=3600)
    result = cli(api_server, "plannr", "show", PLANNR_SEED_GET)
    message = assert_error(result, api_server, 5)
    assert message.startswith("rate limited by the API")
    assert "3600 s" in result.stderr.splitlines()[1]  # the hint says how long the API asked for
    assert sleeps == [] and len(api_server.requests) == 1


def test_token_echoed_by_the_api_is_redacted(api_server: ApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # A careless API that quotes the credential back in its error message.
    monkeypatch.setitem(apiserver._REASONS, 503, f"bad key {api_server.token} for this route")
    api_server.faults.error(503)
    result = cli(api_server, "tenant", "show", TENANT_SEED_ID, "-o", "json", "-v")
    message = assert_error(result, api_server, 5)
    assert "bad key *** for this route" in message
    assert json.loads(result.stdout)["error"]["message"] == message


def test_tenant_list_nested_one_level_too_deep(server: ApiServer) -> None:
    server.state.tenant_nested = True
    result = cli(server, "tenant", "list", "--all", "-o", "id")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [TENANT_SEED_ID, MARKUP_IDS["tenant"], *gen_ids("tenant")]
    assert len(list_requests(server, "tenant")) == 3


def test_generic_bare_array_is_one_page(server: ApiServer) -> None:
    server.state.generic_bare = True
    result = cli(server, "generic", "list", "--all", "-o", "id", automation=GENERIC_AUTOMATION)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == gen_ids("generic")
    assert len(list_requests(server, "generic")) == 1


def test_options_before_the_command(api_server: ApiServer) -> None:
    env = {"AUTORUN_TOKEN": api_server.token, "COLUMNS": "250"}
    result = runner.invoke(app, ["--provider", "sendrealm", "--base-url", api_server.url, "-o", "json",
                                 "show", "run_123"], env=env)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["id"] == "run_123"
