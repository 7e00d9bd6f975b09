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


def failure(result, code: int) -> tuple[str, str]:
    """Exit ``code``, nothing on stdout, and exactly an ``error:`` and a ``hint:`` line."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), result.stderr
    return lines[0][len("error: "):], lines[1][len("hint: "):]


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
    result = send("mail.open", "--id", "evt_7")
    assert result.exit_code == 0
    assert sent().idempotency_key == "evt_7"
    assert "idempotency key:" not in result.stderr  # given, so not announced
    assert result.stderr == "sent mail.open; accepted\n" and result.stdout == ""


def test_id_and_key_that_differ_are_refused():
    result = send("mail.open", "--id", "evt_7", "--idempotency-key", "other")
    assert failure(result, 2) == ("--id and --idempotency-key name the same thing and were given different values", "pass only one of them")
    assert FakeProvider.calls == []


def test_payload_from_a_file_and_from_stdin(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"plan": "pro"}', encoding="utf-8")
    from_file = send("x", "--payload", f"@{path}", "--id", "k1")
    assert (from_file.exit_code, from_file.stderr) == (0, "sent x; accepted\n")
    assert sent().payload == {"plan": "pro"}
    FakeProvider.reset()
    from_stdin = send("x", "--payload", "@-", "--id", "k2", input='{"from": "stdin"}')
    assert (from_stdin.exit_code, from_stdin.stderr) == (0, "sent x; accepted\n")
    assert sent().payload == {"from": "stdin"}


def test_no_payload_is_an_empty_object():
    result = send("x", "--id", "k")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "sent x; accepted\n")
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
    error, hint = failure(result, 2)
    assert "error: " + error == message
    assert "--payload" in hint  # the fix names the option
    assert FakeProvider.calls == []


def test_unreadable_payload_file_is_exit_2(tmp_path):
    result = send("x", "--payload", f"@{tmp_path}/missing.json")
    error, hint = failure(result, 2)
    assert error == f"cannot read payload file {tmp_path}/missing.json: No such file or directory"
    assert hint.startswith("check the path, or pass the JSON inline")


def test_invalid_json_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"a": 1,}', encoding="utf-8")
    result = send("x", "--payload", f"@{path}")
    error, hint = failure(result, 2)
    assert error.startswith(f"payload file {path} is not valid JSON (line 1 column 9")
    assert "--payload" in hint
    assert FakeProvider.calls == []


def test_bad_payload_with_json_output_prints_the_error_document():
    result = send("x", "--payload", "{nope", "-o", "json")
    assert result.exit_code == 2
    err = json.loads(result.stdout)["error"]
    assert err["code"] == "usage" and "not valid JSON" in err["message"] and "--payload" in err["hint"]
    assert result.stderr == f"error: {err['message']}\nhint: {err['hint']}\n"


def test_bad_occurred_at_is_exit_2():
    result = send("x", "--occurred-at", "yesterday")
    assert failure(result, 2) == ("--occurred-at 'yesterday' is not an ISO 8601 time", "e.g. --occurred-at 2026-06-08T14:16:31Z")
    assert FakeProvider.calls == []


def test_empty_event_name_is_exit_2():
    assert failure(send("  "), 2) == ("the event name is empty", "e.g. autorun events send order.completed --email a@example.com")
    assert FakeProvider.calls == []


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
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "sent mail.open (event evt_2); no waiting run matched\n"


def test_an_answer_without_run_details_is_reported_as_accepted():
    FakeProvider.reset(event_answer={"status": "accepted"})
    result = send("mail.open", "--id", "k")
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "sent mail.open; accepted, status accepted\n"


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
    assert result.exit_code == 0
    assert json.loads(result.stdout) == answer
    assert result.stderr == "duplicate event: nothing new resumed\n"


def test_id_mode_prints_only_resumed_ids():
    FakeProvider.reset(event_answer={"resumed_runs": ["run_9"]})
    result = send("mail.open", "--id", "k", "-o", "id")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "run_9\n", "")


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
    assert result.exit_code == 0, result.stderr
    key = KEY_LINE.search(result.stderr).group(1)
    assert json.loads(route.calls[0].request.content)["idempotency_key"] == key
    assert result.stdout == "run_123\n"
    assert result.stderr == f"idempotency key: {key}\nsent order.completed; resumed 1 run\n"


def test_sendrealm_needs_a_contact_and_says_so_before_posting():
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        result = sendrealm("order.completed")
    error, hint = failure(result, 2)
    assert api.calls.call_count == 0
    assert "contact" in error and hint == "pass --email, --contact-id or --external-id"


def test_sendrealm_error_envelope_is_reported():
    body = {"status": 422, "error": {"code": "invalid_event", "message": "unknown event name", "details": None}}
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        route = api.post("/events").mock(return_value=httpx.Response(422, json=body))
        result = sendrealm("nope", "--email", "a@example.com", "--id", "k")
    assert route.call_count == 1  # a POST is never repeated
    error, hint = failure(result, 2)
    assert "unknown event name (invalid_event)" in error
    assert TOKEN not in result.stderr


def test_provider_without_events_is_exit_4():
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        result = cli("events", "send", "x", "--id", "k", "--provider", "tenant", "--base-url", BASE, env={"AUTORUN_TOKEN": TOKEN})
    error, hint = failure(result, 4)
    assert api.calls.call_count == 0
    assert error.startswith("the tenant API") and hint == "events send works with --provider sendrealm or local"


def test_events_without_a_subcommand_shows_help():
    result = cli("events")
    assert result.exit_code == 2  # no subcommand is bad usage, as with click
    assert "Commands:" in result.stdout + result.stderr
    assert "send  Send an event so runs waiting for it resume" in " ".join((result.stdout + result.stderr).split("\n"))


def test_the_made_up_key_is_printed_when_the_api_may_have_taken_the_event_not_when_refused_before():
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        api.post("/events").mock(return_value=httpx.Response(503, json={"status": 503, "error": {"code": "down", "message": "maintenance"}}))
        result = sendrealm("order.completed", "--email", "a@example.com")
    assert result.exit_code == 5
    lines = result.stderr.splitlines()
    assert KEY_LINE.match(lines[0]), result.stderr  # send it again with this key: no duplicate
    assert lines[1].startswith("error: ") and lines[2].startswith("hint: ") and len(lines) == 3
    assert result.stdout == ""
