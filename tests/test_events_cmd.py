"""`autorun events send`: options, payload errors, reporting, and Sendrealm POST /events."""

from __future__ import annotations

import json
import re

import fakes
import httpx
import pytest
import respx
from fakes import FakeProvider
from typer.testing import CliRunner

from autorun_cli import http as http_mod
from autorun_cli.cli.app import app
from autorun_cli.cli.commands.events import summarize

BASE = "https://api.example.test"
TOKEN = "tk_live_SECRET_events_98765"
KEY_LINE = re.compile(r"^idempotency key: (autorun-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})$", re.M)


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path):
    for name in ("AUTORUN_OUTPUT", "AUTORUN_PROVIDER", "AUTORUN_PROFILE", "AUTORUN_BASE_URL", "AUTORUN_TOKEN",
                 "AUTORUN_AUTOMATION_ID", "NO_COLOR", "AUTORUN_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(http_mod, "sleep", lambda s: None)
    fakes.register(monkeypatch)
    FakeProvider.reset()


def cli(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    result = CliRunner().invoke(app, list(args), env=env, input=input)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def send(*args: str, **kw):
    return cli("events", "send", *args, "--provider", "fake", **kw)


def sent():
    events = [c[1] for c in FakeProvider.calls if c[0] == "event"]
    assert len(events) == 1
    return events[0]


# -- building the request ----------------------------------------------------------


def test_builds_the_event_request_from_every_option():
    result = send("order.completed", "--payload", '{"order_id": 42, "items": ["a"]}', "--email", "ann@example.com",
                  "--contact-id", "c_1", "--external-id", "x_1", "--occurred-at", "2026-06-08T14:16:31Z",
                  "--idempotency-key", "k-1")
    assert result.exit_code == 0, result.stderr
    ev = sent()
    assert (ev.event, ev.payload, ev.email, ev.contact_id, ev.external_id, ev.occurred_at, ev.idempotency_key) == (
        "order.completed", {"order_id": 42, "items": ["a"]}, "ann@example.com", "c_1", "x_1", "2026-06-08T14:16:31Z", "k-1")
    # A key the user gave is not echoed back.
    assert "idempotency key:" not in result.stderr


def test_default_key_is_fresh_and_printed_on_stderr():
    first = send("order.completed", "--email", "a@example.com")
    key1 = KEY_LINE.search(first.stderr).group(1)
    assert sent().idempotency_key == key1
    assert key1 not in first.stdout
    FakeProvider.reset()
    second = send("order.completed", "--email", "a@example.com")
    assert KEY_LINE.search(second.stderr).group(1) != key1


def test_id_is_the_idempotency_key():
    assert send("mail.open", "--id", "evt_7").exit_code == 0
    assert sent().idempotency_key == "evt_7"


def test_id_and_key_that_differ_are_refused():
    result = send("mail.open", "--id", "evt_7", "--idempotency-key", "other")
    assert result.exit_code == 2
    assert "hint: pass only one of them" in result.stderr
    assert FakeProvider.calls == []


def test_payload_from_a_file_and_from_stdin(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"plan": "pro"}', encoding="utf-8")
    assert send("x", "--payload", f"@{path}").exit_code == 0
    assert sent().payload == {"plan": "pro"}
    FakeProvider.reset()
    assert send("x", "--payload", "@-", input='{"from": "stdin"}').exit_code == 0
    assert sent().payload == {"from": "stdin"}


def test_no_payload_is_an_empty_object():
    send("x")
    assert sent().payload == {}


# -- bad input: exit 2 with the fix, before any request ---------------------------------


@pytest.mark.parametrize("payload,message", [
    ("{order_id: 42}", "error: --payload is not valid JSON (line 1 column 2: Expecting property name enclosed in double quotes)"),
    ("[1, 2]", "error: --payload must be a JSON object, not list"),
    ("null", "error: --payload must be a JSON object, not null"),
    ("@", "error: --payload @ names no file"),
])
def test_bad_payload_is_exit_2_with_a_hint(payload, message):
    result = send("x", "--payload", payload)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == message
    assert result.stderr.splitlines()[1].startswith("hint: ")
    assert FakeProvider.calls == []


def test_unreadable_payload_file_is_exit_2(tmp_path):
    result = send("x", "--payload", f"@{tmp_path}/missing.json")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: cannot read payload file {tmp_path}/missing.json: No such file or directory")
    assert "hint: check the path, or pass the JSON inline" in result.stderr


def test_invalid_json_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"a": 1,}', encoding="utf-8")
    result = send("x", "--payload", f"@{path}")
    assert result.exit_code == 2
    assert f"error: payload file {path} is not valid JSON (line 1 column 9" in result.stderr


def test_bad_payload_with_json_output_prints_the_error_document():
    result = send("x", "--payload", "{nope", "-o", "json")
    assert result.exit_code == 2
    err = json.loads(result.stdout)["error"]
    assert err["code"] == "usage" and "not valid JSON" in err["message"] and "--payload" in err["hint"]


def test_bad_occurred_at_is_exit_2():
    result = send("x", "--occurred-at", "yesterday")
    assert result.exit_code == 2
    assert "hint: e.g. --occurred-at 2026-06-08T14:16:31Z" in result.stderr


def test_empty_event_name_is_exit_2():
    assert send("  ").exit_code == 2


# -- reporting the answer -------------------------------------------------------------


def test_resumed_runs_are_listed_on_stdout():
    FakeProvider.reset(event_answer={"event_id": "evt_1", "resumed": [{"id": "run_1"}, "run_2"]})
    result = send("mail.open", "--id", "evt_1")
    assert result.exit_code == 0
    assert result.stdout == "run_1\nrun_2\n"
    assert result.stderr.strip() == "sent mail.open (event evt_1); resumed 2 runs"


def test_nothing_matched_is_said():
    FakeProvider.reset(event_answer={"data": {"id": "evt_2", "resumed_runs": []}})
    result = send("mail.open", "--id", "k")
    assert result.stdout == ""
    assert result.stderr.strip() == "sent mail.open (event evt_2); no waiting run matched"


def test_an_answer_without_run_details_is_reported_as_accepted():
    FakeProvider.reset(event_answer={"status": "accepted"})
    result = send("mail.open", "--id", "k")
    assert result.stderr.strip() == "sent mail.open; accepted, status accepted"


@pytest.mark.parametrize("answer", [{"deduplicated": True}, {"status": "duplicate"}, {"data": {"duplicate": "true"}}])
def test_deduplicated_answer_is_reported_as_such(answer):
    FakeProvider.reset(event_answer=answer)
    result = send("mail.open", "--idempotency-key", "k-1")
    assert result.exit_code == 0
    assert result.stderr.strip() == "duplicate event: nothing new resumed (idempotency key k-1)"
    assert result.stdout == ""


def test_json_prints_the_answer_as_given():
    answer = {"data": {"id": "evt_3", "deduplicated": True, "extra": [1, 2]}}
    FakeProvider.reset(event_answer=answer)
    result = send("mail.open", "--id", "k", "-o", "json")
    assert json.loads(result.stdout) == answer
    assert "duplicate event: nothing new resumed" in result.stderr


def test_id_mode_prints_only_resumed_ids():
    FakeProvider.reset(event_answer={"resumed_runs": ["run_9"]})
    result = send("mail.open", "--id", "k", "-o", "id")
    assert (result.stdout, result.stderr) == ("run_9\n", "")


def test_summarize_ignores_odd_shapes():
    assert summarize(None) == {"deduplicated": False, "resumed": None, "resumed_count": None, "event_id": None, "status": None}
    odd = summarize({"resumed": [True, {"x": 1}, 5], "resumed_count": "3", "id": False, "status": 200})
    assert odd == {"deduplicated": False, "resumed": ["5"], "resumed_count": 1, "event_id": None, "status": None}


# -- Sendrealm POST /events over respx, and providers without events ---------------------


def sendrealm(*args: str):
    return cli("events", "send", *args, "--provider", "sendrealm", "--base-url", BASE, env={"AUTORUN_TOKEN": TOKEN})


def test_sendrealm_posts_the_event():
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        route = api.post("/events").mock(return_value=httpx.Response(202, json={"id": "evt_9", "status": "accepted"}))
        result = sendrealm("sendrealm.mail.open", "--email", "ann@example.com", "--payload", '{"message_id": "msg_1"}',
                           "--occurred-at", "2026-06-08T14:20:00Z", "--idempotency-key", "ci-42")
    assert result.exit_code == 0, result.stderr
    assert route.call_count == 1
    request = route.calls[0].request
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert json.loads(request.content) == {
        "event": "sendrealm.mail.open", "email": "ann@example.com", "payload": {"message_id": "msg_1"},
        "occurred_at": "2026-06-08T14:20:00Z", "idempotency_key": "ci-42",
    }
    assert result.stderr.strip() == "sent sendrealm.mail.open (event evt_9); accepted, status accepted"
    assert TOKEN not in result.stdout + result.stderr


def test_sendrealm_default_key_reaches_the_api():
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        route = api.post("/events").mock(return_value=httpx.Response(200, json={"deduplicated": False, "resumed_runs": ["run_123"]}))
        result = sendrealm("order.completed", "--external-id", "cust-7")
    key = KEY_LINE.search(result.stderr).group(1)
    assert json.loads(route.calls[0].request.content)["idempotency_key"] == key
    assert result.stdout == "run_123\n"


def test_sendrealm_needs_a_contact_and_says_so_before_posting():
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        result = sendrealm("order.completed")
    assert result.exit_code == 2
    assert api.calls.call_count == 0
    assert "hint: pass --email, --contact-id or --external-id" in result.stderr


def test_sendrealm_error_envelope_is_reported():
    body = {"status": 422, "error": {"code": "invalid_event", "message": "unknown event name", "details": None}}
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        route = api.post("/events").mock(return_value=httpx.Response(422, json=body))
        result = sendrealm("nope", "--email", "a@example.com", "--id", "k")
    assert route.call_count == 1  # a POST is never repeated
    assert result.exit_code == 2
    assert "unknown event name (invalid_event)" in result.stderr


def test_provider_without_events_is_exit_4():
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        result = cli("events", "send", "x", "--id", "k", "--provider", "tenant", "--base-url", BASE, env={"AUTORUN_TOKEN": TOKEN})
    assert result.exit_code == 4
    assert api.calls.call_count == 0
    assert "hint: events send works with --provider sendrealm or local" in result.stderr


def test_events_without_a_subcommand_shows_help():
    result = cli("events")
    assert "send" in result.stdout + result.stderr
