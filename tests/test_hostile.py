"""The CLI against hostile servers on 127.0.0.1 (``tests/hostile.py``): redirects,
pages that never end, answers trickled a byte at a time. Each case names the
issue-12 item it reproduces."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from hostile import Answer, HostileServer, Seen
from typer.testing import CliRunner

import autorun_cli.http as http_mod
import autorun_cli.http.paging as paging_mod
import autorun_cli.http.transport as transport_mod
from autorun_cli.cli.app import app
from autorun_cli.http import HttpClient

runner = CliRunner()
TOKEN = "hostile-token-7f3b2a9c"
AID = "aut_1"
SESSIONS = f"/automations/{AID}/sessions/"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    for var in ("AUTORUN_PROFILE", "AUTORUN_OUTPUT", "AUTORUN_DEBUG", "AUTORUN_CONCURRENCY", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))
    slept: list[float] = []
    monkeypatch.setattr(http_mod, "sleep", slept.append)
    return slept


def session(sid: str, status: str = "FAILED", **extra: Any) -> dict[str, Any]:
    return {"id": sid, "automation_id": AID, "status": status, "inputs": {"n": 1}, "error": None,
            "created_at": "2026-06-01T10:00:00Z", "updated_at": "2026-06-01T10:00:05Z", "steps": [], **extra}


def cli(server: HostileServer, provider: str, *args: str, **env: str) -> Any:
    base = {"AUTORUN_PROVIDER": provider, "AUTORUN_BASE_URL": server.url, "AUTORUN_TOKEN": TOKEN,
            "COLUMNS": "200", **env}
    if provider in ("generic", "sendrealm"):
        base.setdefault("AUTORUN_AUTOMATION_ID", AID)
    return runner.invoke(app, list(args), env=base)


def one_error(result: Any, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert [ln for ln in lines if ln.startswith("error: ")] == [lines[0]], result.stderr
    assert lines[1].startswith("hint: ") and len(lines) == 2, result.stderr
    assert "Traceback" not in result.stderr and TOKEN not in result.stderr + result.stdout
    return lines[0]


# -- item 21: a redirect is an error, never success ------------------------------------


def redirecting(status: int, location: str, methods: tuple[str, ...] = ("POST", "PATCH")):
    def route(req: Seen) -> Answer:
        if req.method in methods or req.path == "/elsewhere":
            return Answer(status, b"", {"Location": location})
        return Answer(200, session(req.path.rstrip("/").split("/")[-1], status="FAILED"
                                   if "failed" in req.path else "RUNNING"))
    return route


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_retry_answered_with_a_redirect_is_exit_5_not_retried(status: int) -> None:
    with HostileServer(redirecting(status, "/elsewhere/sessions/")) as server:
        result = cli(server, "generic", "retry", "sess_failed")
        message = one_error(result, 5)
        assert "retried" not in result.stderr and result.stdout == ""
        assert f"redirect ({status} " in message and "to /elsewhere/sessions/" in message
        assert "autorun does not follow redirects, so the request was not sent there" in message
        assert [r.method for r in server.requests] == ["GET", "POST"]  # nothing sent to the new place


def test_cancel_answered_with_a_redirect_is_exit_5() -> None:
    with HostileServer(redirecting(307, "http://evil.example/steal")) as server:
        result = cli(server, "generic", "cancel", "sess_running", "-o", "json")
        message = one_error(result, 5)
        assert "cancel requested" not in result.stderr
        assert "PATCH" in message and "http://evil.example/steal" in message
        assert '"code": "redirect"' in result.stdout


def test_events_send_answered_with_a_redirect_is_exit_5() -> None:
    with HostileServer(redirecting(302, "/login")) as server:
        result = cli(server, "sendrealm", "events", "send", "order.completed", "--email", "a@example.com",
                     "--idempotency-key", "k1")
        message = one_error(result, 5)
        assert "accepted" not in result.stderr and "sent order.completed" not in result.stderr
        assert "POST /events" in message
        assert [r.method for r in server.requests] == ["POST"]


def test_a_redirect_on_get_says_so_instead_of_malformed_json() -> None:
    with HostileServer(redirecting(301, "https://new.example/api", methods=("GET",))) as server:
        result = cli(server, "generic", "show", "sess_1")
        message = one_error(result, 5)
        assert "malformed JSON" not in message and "empty body" not in message
        assert "GET /automations/aut_1/sessions/sess_1 with a redirect (301 " in message
        assert "https://new.example/api" in message
        assert len(server.requests) == 1


# -- item 22: pagination has bounds ----------------------------------------------------


def test_one_item_pages_claiming_a_billion_do_not_loop_list_or_latest() -> None:
    # The server ignores offset: every page is the same single session, "of 1e9".
    def route(req: Seen) -> Answer:
        if not req.path.endswith("/sessions/"):
            return Answer(200, session("sess_same", "FINISHED"))
        return Answer(200, {"items": [session("sess_same", "FINISHED")], "total": 1_000_000_000})

    with HostileServer(route) as server:
        started = time.monotonic()
        result = cli(server, "generic", "list", "-n", "5", "-o", "id")
        assert result.exit_code == 0, result.stderr
        assert result.stdout.splitlines() == ["sess_same"]
        assert len(server.requests) == 2  # the second page repeated the first: stop
        result = cli(server, "generic", "show", "@latest", "-o", "json")
        assert result.exit_code == 0, result.stderr
        assert '"id": "sess_same"' in result.stdout
        assert len(server.requests) == 5  # two pages, then the run itself
        assert time.monotonic() - started < 20


def test_float_total_of_1e9_is_bounded_too() -> None:
    def route(req: Seen) -> Answer:
        return Answer(200, b'{"items": [' + __import__("json").dumps(session("s1", "FINISHED")).encode()
                      + b'], "total": 1e9}')

    with HostileServer(route) as server:
        result = cli(server, "generic", "list", "--all", "-o", "id")
        assert result.exit_code == 0, result.stderr
        assert result.stdout.splitlines() == ["s1"] and len(server.requests) <= 2


def endless_cursor(req: Seen) -> Answer:
    n = int((req.arg("cursor") or "c0")[1:])
    # Ends after 500 pages only so that a broken bound fails the test instead of hanging it.
    return Answer(200, {"data": [{"id": f"run_{n}", "status": "completed"}], "next_cursor": f"c{n + 1}",
                        "has_more": n < 500})


def test_endless_distinct_cursors_stop_at_the_documented_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paging_mod, "MAX_PAGES", 40)  # 10,000 in use; 40 keeps the test fast
    with HostileServer(endless_cursor) as server:
        result = cli(server, "sendrealm", "list", "--all", "-o", "id")
        message = one_error(result, 5)
        assert message == ("error: stopped after 40 pages (40 records): the API still announced another page, "
                           "and autorun reads at most 40 pages per listing")
        assert len(result.stdout.splitlines()) == 40  # what was read is kept
        assert len(server.requests) == 40


def test_the_ceiling_is_ten_thousand_pages() -> None:
    assert paging_mod.MAX_PAGES == 10_000


def test_has_next_forever_beyond_the_announced_total_pages_stops() -> None:
    def route(req: Seen) -> Answer:
        page = int(req.arg("page") or 1)
        return Answer(200, {"data": [{"execution_id": f"e{page}", "status": "completed"}],
                            "pagination": {"page": page, "totalPages": 3, "hasNext": True}})

    with HostileServer(route) as server:
        result = cli(server, "tenant", "list", "--all", "-o", "id")
        message = one_error(result, 5)
        assert message == ("error: the API sent 17 pages (17 records) but announced 3 pages; "
                           "stopped reading a listing that does not end")
        assert len(server.requests) == 17


def test_laravel_last_page_of_1e12_ends_at_the_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paging_mod, "MAX_PAGES", 25)

    def route(req: Seen) -> Answer:
        page = int(req.arg("page") or 1)
        item = {"uuid": f"00000000-0000-4000-8000-{page:012d}", "name": "x", "status": "completed",
                "steps": [], "created_at": "2026-06-01T10:00:00+00:00"}
        last = 10**12 if page < 500 else page  # a bounded lie, so a broken bound fails rather than hangs
        return Answer(200, {"data": [item], "meta": {"current_page": page, "last_page": last}})

    with HostileServer(route) as server:
        result = cli(server, "plannr", "list", "--all", "-o", "id")
        assert "stopped after 25 pages" in one_error(result, 5)


def test_an_empty_page_ends_a_listing_that_claims_more() -> None:
    def route(req: Seen) -> Answer:
        offset = int(req.arg("offset") or 0)
        items = [session(f"s{offset}", "FINISHED")] if offset < 2 else []
        return Answer(200, {"items": items, "total": 500})

    with HostileServer(route) as server:
        result = cli(server, "generic", "list", "--all", "-o", "id")
        assert result.exit_code == 0, result.stderr
        assert result.stdout.splitlines() == ["s1", "s0"] or sorted(result.stdout.splitlines()) == ["s0", "s1"]
        assert len(server.requests) == 3


# -- item 23: every request has an overall deadline ------------------------------------


@pytest.mark.parametrize("body_only", [False, True], ids=["status-line-trickled", "body-trickled"])
def test_a_server_trickling_bytes_times_out_at_the_deadline(monkeypatch: pytest.MonkeyPatch, body_only: bool) -> None:
    monkeypatch.setattr(transport_mod, "DEADLINE", 1.0)  # 60 s in use

    def route(req: Seen) -> Answer:
        return Answer(200, session("sess_1", "FINISHED"), trickle=0.05, trickle_body_only=body_only)

    with HostileServer(route) as server:
        started = time.monotonic()
        result = cli(server, "generic", "show", "sess_1")
        took = time.monotonic() - started
        message = one_error(result, 5)
        assert message == (f"error: 127.0.0.1:{server.url.rsplit(':', 1)[1]} did not finish its answer in time: "
                           "no complete answer within 1 s (the overall deadline of one request)")
        assert took < 3.0, took  # each byte came well within the 30 s read timeout
        assert len(server.requests) == 1  # not retried: it would only take as long again


def test_the_deadline_is_sixty_seconds_and_leaves_fast_answers_alone() -> None:
    assert transport_mod.DEADLINE == 60.0
    with HostileServer(lambda req: Answer(200, session("sess_1", "FINISHED"), trickle=0.0005)) as server:
        http = HttpClient(server.url, deadline=5.0)
        assert http.get_json(SESSIONS + "sess_1")["id"] == "sess_1"  # ~0.3 s of trickle: fine
        http.close()
