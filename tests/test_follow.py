"""`watch`, `retry`, `cancel` and `show --svg/--html` through the CLI.

A scripted fake provider (tests/fakes.py) plays the runs; respx plays the real
APIs where a provider's own behaviour is under test. Sleep, clock and wall time
of the follower are replaced, so nothing here waits.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import fakes
import httpx
import pytest
import respx
from fakes import FakeProvider, run_doc
from typer.testing import CliRunner

from autorun_cli import http as http_mod
from autorun_cli.cli import following as follow
from autorun_cli.cli.app import app

FIX = Path(__file__).parent / "fixtures"
T = "2026-06-08T14:00:00Z"
BASE = "https://api.example.test"
TOKEN = "tk_live_SECRET_follow_123456"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path):
    for name in ("AUTORUN_OUTPUT", "AUTORUN_PROVIDER", "AUTORUN_PROFILE", "AUTORUN_BASE_URL", "AUTORUN_TOKEN",
                 "AUTORUN_AUTOMATION_ID", "AUTORUN_TENANT_ID", "AUTORUN_ACCOUNT_UUID", "NO_COLOR", "AUTORUN_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(http_mod, "sleep", lambda s: None)
    fakes.register(monkeypatch)
    FakeProvider.reset()


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(follow, "sleep", c.sleep)
    monkeypatch.setattr(follow, "monotonic", c.monotonic)
    monkeypatch.setattr(follow, "utcnow", lambda: datetime(2026, 6, 8, 14, 0, 5, tzinfo=UTC))
    return c


def cli(*args: str, env: dict[str, str] | None = None):
    result = CliRunner().invoke(app, list(args), env=env)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def fake(*args: str, **kw):
    return cli(*args, "--provider", "fake", **kw)


def stderr_error(result, code: int) -> tuple[str, str]:
    """Exit ``code`` and, on stderr, exactly one ``error:`` and one ``hint:`` line."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), result.stderr
    return lines[0][len("error: "):], lines[1][len("hint: "):]


def ops(*names: str) -> list[tuple]:
    return [c for c in FakeProvider.calls if c[0] in names]


RUNNING = run_doc("r1", "running", [("send_email", "running"), ("wait_open", "pending")])
WAITING = run_doc("r1", "waiting", [("send_email", "completed"), ("wait_open", "waiting")])
COMPLETED = run_doc("r1", "completed", [("send_email", "completed"), ("wait_open", "completed")])
FAILED = run_doc("r1", "failed", [("send_email", "completed"), ("wait_open", "failed")], error={"message": "SMTP refused", "step": "wait_open"})


# -- watch: piped lines ----------------------------------------------------------


def test_watch_piped_prints_one_line_per_change_and_exits_0(clock):
    FakeProvider.reset({"r1": [RUNNING, RUNNING, WAITING, WAITING, COMPLETED]})
    result = fake("watch", "r1", "--interval", "0.01")
    assert result.exit_code == 0, result.stderr
    w = "2026-06-08T14:00:05Z"
    assert result.stdout == (
        f"{w} r1 - running\n"
        f"{w} r1 send_email running\n"
        f"{w} r1 wait_open pending\n"
        f"{w} r1 send_email completed\n"
        f"{w} r1 wait_open waiting\n"
        f"{w} r1 - waiting\n"
        f"{w} r1 wait_open completed\n"
        f"{w} r1 - completed\n"
    )
    assert result.stderr == ""
    assert clock.slept == [0.01] * 4


def test_watch_ticks_the_provider_before_every_poll(clock):
    FakeProvider.reset({"r1": [RUNNING, WAITING, COMPLETED]})
    result = fake("watch", "r1", "--interval", "1")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.splitlines()[-1] == "2026-06-08T14:00:05Z r1 - completed"
    assert [c[0] for c in ops("tick", "get")] == ["tick", "get"] * 3


@pytest.mark.parametrize("status", ["failed", "cancelled", "timed_out"])
def test_watch_exits_1_when_the_run_ends_badly(clock, status):
    end = run_doc("r1", status, [("send_email", status)])
    FakeProvider.reset({"r1": [RUNNING, end]})
    result = fake("watch", "r1", "--interval", "0.01")
    assert stderr_error(result, 1) == (f"run r1 ended {status}", "see what happened with `autorun show r1`")
    assert result.stdout.splitlines()[-1] == f"2026-06-08T14:00:05Z r1 - {status}"


def test_watch_failure_quotes_the_run_error(clock):
    FakeProvider.reset({"r1": [RUNNING, FAILED]})
    result = fake("watch", "r1", "--interval", "0.01")
    assert stderr_error(result, 1) == ("run r1 ended failed: SMTP refused", "see what happened with `autorun show r1`")
    assert result.stdout.splitlines()[-2:] == ["2026-06-08T14:00:05Z r1 wait_open failed", "2026-06-08T14:00:05Z r1 - failed"]


def test_watch_timeout_exits_6_after_the_time_given(clock):
    FakeProvider.reset({"r1": [RUNNING]})
    result = fake("watch", "r1", "--interval", "2", "--timeout", "5")
    error, hint = stderr_error(result, 6)
    # 2 + 2 + the last 1 s, then it gives up.
    assert clock.slept == [2, 2, 1]
    assert error == "--timeout 5s elapsed and r1 is still running"
    assert hint.startswith("keep following with `autorun watch r1`")
    assert result.stdout.splitlines()[0] == "2026-06-08T14:00:05Z r1 - running"


def test_watch_timeout_accepts_durations(clock):
    FakeProvider.reset({"r1": [RUNNING]})
    result = fake("watch", "r1", "--interval", "1m", "--timeout", "5m")
    assert stderr_error(result, 6)[0] == "--timeout 300s elapsed and r1 is still running"
    assert sum(clock.slept) == 300 and len(clock.slept) == 5


def test_watch_run_that_ends_as_the_timeout_is_reached_counts_as_ended(clock):
    FakeProvider.reset({"r1": [RUNNING, RUNNING, COMPLETED]})
    result = fake("watch", "r1", "--interval", "2", "--timeout", "4")
    assert (result.exit_code, result.stderr) == (0, "")  # no timeout error: it ended
    assert result.stdout.splitlines()[-1] == "2026-06-08T14:00:05Z r1 - completed"


def test_watch_already_terminal_prints_final_state_and_returns_at_once(clock):
    FakeProvider.reset({"r1": [COMPLETED]})
    result = fake("watch", "r1")
    assert result.exit_code == 0
    assert clock.slept == []
    assert len(ops("get")) == 1
    assert result.stdout.splitlines()[0] == "2026-06-08T14:00:05Z r1 - completed"


def test_watch_already_failed_exits_1_at_once(clock):
    FakeProvider.reset({"r1": [FAILED]})
    result = fake("watch", "r1")
    assert stderr_error(result, 1)[0] == "run r1 ended failed: SMTP refused"
    assert result.stdout.splitlines()[0] == "2026-06-08T14:00:05Z r1 - failed"
    assert clock.slept == []


def test_watch_several_runs_one_fails(clock):
    FakeProvider.reset({
        "a": [run_doc("a", "running"), run_doc("a", "completed")],
        "b": [run_doc("b", "running"), run_doc("b", "running"), run_doc("b", "failed")],
    })
    result = fake("watch", "a", "b", "--interval", "0.01")
    assert stderr_error(result, 1) == ("run b ended failed", "see what happened with `autorun show b`")
    # A run that ended is not polled again.
    assert len([c for c in ops("get") if c[1] == "a"]) == 2
    assert len([c for c in ops("get") if c[1] == "b"]) == 3
    assert "2026-06-08T14:00:05Z a - completed" in result.stdout.splitlines()


def test_watch_several_runs_failing_are_all_named(clock):
    FakeProvider.reset({"a": [run_doc("a", "cancelled")], "b": [run_doc("b", "failed")], "c": [run_doc("c", "completed")]})
    result = fake("watch", "a", "b", "c")
    assert stderr_error(result, 1) == ("2 of 3 runs did not complete: a (cancelled), b (failed)", "see what happened with `autorun show a`")


def test_watch_same_id_twice_is_followed_once(clock):
    FakeProvider.reset({"r1": [COMPLETED]})
    result = fake("watch", "r1", "r1")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.count("r1 - completed") == 1
    assert len(ops("get")) == 1


def test_watch_step_labels_are_single_safe_fields(clock):
    doc = run_doc("r1", "completed")
    doc["steps"] = [{"key": None, "name": "Send \x1b[31m the mail", "status": "completed"}]
    FakeProvider.reset({"r1": [doc]})
    result = fake("watch", "r1")
    line = result.stdout.splitlines()[1]
    assert line == "2026-06-08T14:00:05Z r1 Send_\\x1b[31m_the_mail completed"
    assert "\x1b" not in result.stdout


def test_watch_retried_step_under_the_same_key_is_reported(clock):
    first = run_doc("r1", "running", [("call_api", "failed")])
    second = run_doc("r1", "completed", [("call_api", "failed"), ("call_api", "completed")])
    FakeProvider.reset({"r1": [first, second]})
    result = fake("watch", "r1", "--interval", "0.01")
    assert result.stdout.splitlines()[2:] == [
        "2026-06-08T14:00:05Z r1 call_api#2 completed",
        "2026-06-08T14:00:05Z r1 - completed",
    ]


# -- watch: JSON and other modes ---------------------------------------------------


def test_watch_json_prints_the_final_run_only(clock):
    FakeProvider.reset({"r1": [RUNNING, COMPLETED]})
    result = fake("watch", "r1", "--interval", "0.01", "-o", "json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["id"] == "r1" and doc["status"] == "completed"
    assert "raw" not in doc


def test_watch_json_failed_is_one_document_and_exit_1(clock):
    FakeProvider.reset({"r1": [RUNNING, FAILED]})
    result = fake("watch", "r1", "--interval", "0.01", "--json")
    assert stderr_error(result, 1)[0] == "run r1 ended failed: SMTP refused"
    assert json.loads(result.stdout)["status"] == "failed"  # the run, not an error document


def test_watch_json_timeout_prints_the_last_state(clock):
    FakeProvider.reset({"r1": [RUNNING]})
    result = fake("watch", "r1", "--interval", "1", "--timeout", "2", "-o", "json")
    assert stderr_error(result, 6)[0] == "--timeout 2s elapsed and r1 is still running"
    assert json.loads(result.stdout)["status"] == "running"


def test_watch_json_several_runs_is_an_array(clock):
    FakeProvider.reset({"a": [run_doc("a", "completed")], "b": [run_doc("b", "completed")]})
    result = fake("watch", "a", "b", "-o", "json")
    assert (result.exit_code, result.stderr) == (0, "")
    assert [r["id"] for r in json.loads(result.stdout)] == ["a", "b"]


def test_watch_id_mode_prints_ids_at_the_end(clock):
    FakeProvider.reset({"r1": [RUNNING, COMPLETED]})
    result = fake("watch", "r1", "-o", "id", "--interval", "0.01")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "r1\n", "")


def test_watch_not_found_is_exit_3_with_json_error_document(clock):
    result = fake("watch", "nope", "-o", "json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["error"]["code"] == "not_found"
    assert result.stderr.startswith("error: no fake run 'nope'")


def test_watch_malformed_id_is_refused_before_any_request(clock):
    result = fake("watch", "r1", "../etc", "--interval", "0.01")
    error, _ = stderr_error(result, 2)
    assert error.startswith("malformed run ID '../etc'")
    assert result.stdout == ""
    assert FakeProvider.calls == []


@pytest.mark.parametrize("flag,value", [("--interval", "soon"), ("--interval", "0"), ("--timeout", "-3")])
def test_watch_bad_durations_are_usage_errors(clock, flag, value):
    FakeProvider.reset({"r1": [RUNNING]})
    result = fake("watch", "r1", flag, value)
    error, hint = stderr_error(result, 2)
    assert error.startswith(f"{flag} {value!r} is ") and "(accepted: " in error
    assert hint.startswith(f"e.g. {flag} ")
    assert result.stdout == ""
    assert FakeProvider.calls == []


def test_watch_ctrl_c_exits_130_cleanly(clock, monkeypatch):
    FakeProvider.reset({"r1": [RUNNING]})

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(follow, "sleep", interrupted)
    result = fake("watch", "r1")
    assert result.exit_code == 130
    assert result.stderr.strip() == "interrupted"


# -- watch: live view (a terminal is simulated; tests/test_watch_tmux.py uses a real one)


@pytest.fixture
def tty(monkeypatch):
    monkeypatch.setattr(follow, "stdout_is_tty", lambda: True)


def test_watch_live_redraws_in_place_and_ends_with_the_final_state(clock, tty):
    FakeProvider.reset({"r1": [RUNNING, WAITING, COMPLETED]})
    result = fake("watch", "r1", "--interval", "0.01", "--color", "always")
    assert result.exit_code == 0
    out = result.stdout
    # Rich's Live moves the cursor up over the previous frame instead of scrolling.
    assert "\x1b[1A" in out or "\x1b[2K" in out
    assert "\x1b[?25l" in out and out.rfind("\x1b[?25h") > out.rfind("\x1b[?25l")  # cursor hidden, then shown again
    # The final state is printed once the live region is gone (Live would crop it).
    live, final = out.rsplit("\x1b[?25h", 1)
    assert final.count("Status") == 1 and "completed" in final and "watching" not in final
    assert "watching 1 of 1 run" in out  # the footer while it ran


def test_watch_live_ctrl_c_restores_the_cursor(clock, tty, monkeypatch):
    FakeProvider.reset({"r1": [RUNNING]})
    monkeypatch.setattr(follow, "sleep", lambda s: (_ for _ in ()).throw(KeyboardInterrupt()))
    result = fake("watch", "r1", "--color", "always")
    assert result.exit_code == 130
    assert result.stdout.rstrip().endswith("\x1b[?25h")


def test_watch_live_already_terminal_prints_the_view_once(clock, tty):
    FakeProvider.reset({"r1": [COMPLETED]})
    result = fake("watch", "r1", "--color", "never")
    assert result.exit_code == 0
    assert result.stdout.count("Status") == 1
    assert "watching" not in result.stdout
    assert "\x1b" not in result.stdout


def test_watch_live_never_interprets_markup_from_the_api(clock, tty):
    doc = run_doc("r1", "completed", [("[bold red]step[/]", "completed")], name="[link=http://x]name[/link]")
    FakeProvider.reset({"r1": [RUNNING, doc]})
    result = fake("watch", "r1", "--interval", "0.01", "--color", "never")
    assert "[bold red]step[/]" in result.stdout
    assert "[link=http://x]name[/link]" in result.stdout


# -- retry -----------------------------------------------------------------------


@pytest.mark.parametrize("status", ["running", "waiting", "pending", "completed", "unknown"])
def test_retry_refuses_a_run_that_did_not_fail_without_any_retry_request(clock, status):
    FakeProvider.reset({"r1": [run_doc("r1", status)]})
    result = fake("retry", "r1")
    error, hint = stderr_error(result, 4)
    assert ops("retry") == []
    assert result.stdout == ""
    assert error.startswith(f"run r1 is {status}")
    assert "--force" in hint
    if status in ("running", "waiting", "pending"):
        assert hint == "follow it with `autorun watch r1`, or pass --force to retry anyway"
    else:
        assert hint == "pass --force to retry it anyway (`autorun retry r1 --force`)"


def test_retry_refusal_in_json_prints_the_error_document(clock):
    FakeProvider.reset({"r1": [run_doc("r1", "running")]})
    result = fake("retry", "r1", "-o", "json")
    error, hint = stderr_error(result, 4)
    err = json.loads(result.stdout)["error"]
    assert err == {"code": "not_retryable", "message": error, "hint": hint}
    assert "autorun watch r1" in hint


def test_retry_force_retries_a_completed_run(clock):
    FakeProvider.reset({"r1": [COMPLETED, run_doc("r1", "pending")]})
    result = fake("retry", "r1", "--force")
    assert result.exit_code == 0
    assert ops("retry") == [("retry", "r1")]
    assert result.stdout == "r1\n"
    assert result.stderr.strip() == "retried r1 (pending)"


@pytest.mark.parametrize("status", ["failed", "cancelled", "timed_out"])
def test_retry_a_failed_run_prints_the_new_id(clock, status):
    FakeProvider.reset({"r1": [run_doc("r1", status)], "r9": [run_doc("r9", "pending")]}, retry_to={"r1": "r9"})
    result = fake("retry", "r1")
    assert result.exit_code == 0
    assert result.stdout == "r9\n"
    assert result.stderr.strip() == "retried r1 → r9 (pending)"


def test_retry_id_mode_prints_only_the_id(clock):
    FakeProvider.reset({"r1": [FAILED], "r9": [run_doc("r9", "pending")]}, retry_to={"r1": "r9"})
    result = fake("retry", "r1", "-o", "id")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "r9\n", "")


def test_retry_json_prints_the_new_run(clock):
    FakeProvider.reset({"r1": [FAILED], "r9": [run_doc("r9", "pending")]}, retry_to={"r1": "r9"})
    result = fake("retry", "r1", "--json")
    assert (result.exit_code, result.stderr) == (0, "")
    assert json.loads(result.stdout)["id"] == "r9"


@pytest.mark.parametrize("end,code", [("completed", 0), ("failed", 1), ("timed_out", 1)])
def test_retry_wait_follows_the_new_run_with_watch_exit_codes(clock, end, code):
    FakeProvider.reset(
        {"r1": [FAILED], "r9": [run_doc("r9", "pending"), run_doc("r9", "running"), run_doc("r9", end)]},
        retry_to={"r1": "r9"},
    )
    result = fake("retry", "r1", "--wait", "--interval", "0.5")
    assert result.exit_code == code
    lines = result.stdout.splitlines()
    assert lines[0] == "r9"
    assert lines[1:] == [
        "2026-06-08T14:00:05Z r9 - pending",
        "2026-06-08T14:00:05Z r9 - running",
        f"2026-06-08T14:00:05Z r9 - {end}",
    ]
    assert clock.slept == [0.5, 0.5]
    assert ops("tick")  # the provider's due work runs while waiting


def test_retry_wait_timeout_exits_6(clock):
    FakeProvider.reset({"r1": [FAILED], "r9": [run_doc("r9", "running")]}, retry_to={"r1": "r9"})
    result = fake("retry", "r1", "--wait", "--interval", "1", "--timeout", "3")
    assert result.exit_code == 6
    assert result.stderr.splitlines() == [
        "retried r1 → r9 (running)",
        "error: --timeout 3s elapsed and r9 is still running",
        "hint: keep following with `autorun watch r9`, or raise --timeout",
    ]
    assert result.stdout.splitlines()[0] == "r9"


def test_retry_wait_json_is_one_document(clock):
    FakeProvider.reset({"r1": [FAILED], "r9": [run_doc("r9", "running"), run_doc("r9", "completed")]}, retry_to={"r1": "r9"})
    result = fake("retry", "r1", "--wait", "-o", "json", "--interval", "0.01")
    assert (result.exit_code, result.stderr) == (0, "")
    assert json.loads(result.stdout)["status"] == "completed"  # one document: json.loads would fail on two


def test_retry_wait_id_mode_prints_the_id_once(clock):
    FakeProvider.reset({"r1": [FAILED], "r9": [run_doc("r9", "running"), run_doc("r9", "failed")]}, retry_to={"r1": "r9"})
    result = fake("retry", "r1", "--wait", "-o", "id", "--interval", "0.01")
    assert (result.exit_code, result.stdout) == (1, "r9\n")
    assert stderr_error(result, 1) == ("run r9 ended failed", "see what happened with `autorun show r9`")


PLANNR_ID = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f"


@pytest.mark.parametrize("provider,run_id", [("plannr", PLANNR_ID), ("sendrealm", "run_123")])
@pytest.mark.parametrize("command", ["retry", "cancel"])
def test_providers_without_the_operation_exit_4_before_any_request(provider, run_id, command):
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        result = cli(command, run_id, "--provider", provider, "--base-url", BASE, "--automation", "aut_1",
                     env={"AUTORUN_TOKEN": TOKEN})
    error, hint = stderr_error(result, 4)
    assert api.calls.call_count == 0
    assert result.stdout == ""
    if command == "retry":
        assert error.startswith(f"the {provider} API offers no retry for a run")
        assert f"autorun replay {run_id}" in hint
    else:
        assert error.startswith(f"the {provider} API offers no way to cancel a run")
        assert hint == "cancel is available on the generic and local providers"
    assert TOKEN not in result.stdout + result.stderr


def test_retry_not_supported_in_json_prints_the_error_document():
    with respx.mock(base_url=BASE, assert_all_called=False):
        result = cli("retry", "run_123", "--provider", "sendrealm", "--base-url", BASE, "-o", "json", env={"AUTORUN_TOKEN": TOKEN})
    error, hint = stderr_error(result, 4)
    err = json.loads(result.stdout)["error"]
    assert err == {"code": "not_supported", "message": error, "hint": hint}
    assert "autorun replay run_123" in hint


# -- retry end to end on the tenant API (follows data._links.retry) ------------------

TENANT_ID = "7d3e2c1a-5b4f-4e8a-9c2d-1f0e3a4b5c6d"
EXEC = f"/api/v1/automation/executions/{TENANT_ID}"


def tenant_doc(status: str) -> dict:
    doc = json.loads((FIX / "tenant_execution_failed.json").read_text())
    doc["data"]["status"] = status
    if status != "failed":
        for key in ("error_message", "error_stack", "failed_action_index", "completed_at"):
            doc["data"].pop(key, None)
    return doc


def test_retry_on_tenant_follows_the_retry_link_with_its_method(clock):
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        get = api.get(EXEC).mock(side_effect=[
            httpx.Response(200, json=tenant_doc("failed")),
            httpx.Response(200, json=tenant_doc("pending")),
        ])
        retry = api.patch(f"{EXEC}/retry").mock(return_value=httpx.Response(200, json={"data": {"execution_id": TENANT_ID, "status": "pending"}}))
        result = cli("retry", TENANT_ID, "--provider", "tenant", "--base-url", BASE, env={"AUTORUN_TOKEN": TOKEN})
    assert result.exit_code == 0, result.stderr
    assert retry.call_count == 1 and get.call_count == 2
    assert retry.calls[0].request.headers["x-api-key"] == TOKEN
    assert result.stdout == f"{TENANT_ID}\n"
    assert result.stderr.strip() == f"retried {TENANT_ID} (pending)"


def test_retry_on_tenant_refuses_a_completed_execution_before_the_retry_request(clock):
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        api.get(EXEC).mock(return_value=httpx.Response(200, json=tenant_doc("completed")))
        retry = api.patch(f"{EXEC}/retry").mock(return_value=httpx.Response(500, json={"error": "Execution is not in failed state"}))
        result = cli("retry", TENANT_ID, "--provider", "tenant", "--base-url", BASE, env={"AUTORUN_TOKEN": TOKEN})
    error, hint = stderr_error(result, 4)
    assert retry.call_count == 0
    assert result.stdout == ""
    assert error.startswith(f"run {TENANT_ID} is completed") or "only failed" in error, error
    assert TOKEN not in result.stderr


def test_retry_wait_on_tenant_follows_until_completed(clock):
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        api.get(EXEC).mock(side_effect=[
            httpx.Response(200, json=tenant_doc("failed")),
            httpx.Response(200, json=tenant_doc("pending")),
            httpx.Response(200, json=tenant_doc("running")),
            httpx.Response(200, json=tenant_doc("completed")),
        ])
        api.patch(f"{EXEC}/retry").mock(return_value=httpx.Response(200, json={"data": {"status": "pending"}}))
        result = cli("retry", TENANT_ID, "--wait", "--interval", "3", "-o", "json", "--provider", "tenant", "--base-url", BASE,
                     env={"AUTORUN_TOKEN": TOKEN})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "completed"
    assert clock.slept == [3, 3]


# -- cancel ------------------------------------------------------------------------


@pytest.mark.parametrize("status,hint", [
    ("completed", "see it with `autorun show r1`"),
    ("failed", "retry it with `autorun retry r1`"),
    ("cancelled", "retry it with `autorun retry r1`"),
    ("skipped", "see it with `autorun show r1`"),
])
def test_cancel_refuses_a_run_that_already_ended(clock, status, hint):
    FakeProvider.reset({"r1": [run_doc("r1", status)]})
    result = fake("cancel", "r1")
    assert stderr_error(result, 4) == (f"run r1 already ended {status}: there is nothing to cancel", hint)
    assert ops("cancel") == []
    assert result.stdout == ""


def test_cancel_stops_a_running_run(clock):
    FakeProvider.reset({"r1": [RUNNING]})
    result = fake("cancel", "r1")
    assert result.exit_code == 0
    assert ops("cancel") == [("cancel", "r1")]
    assert result.stderr.strip() == "cancelled r1"
    assert result.stdout == ""


def test_cancel_json_prints_the_run(clock):
    FakeProvider.reset({"r1": [WAITING]})
    result = fake("cancel", "r1", "-o", "json")
    assert (result.exit_code, result.stderr) == (0, "")
    assert json.loads(result.stdout)["status"] == "cancelled"


def test_cancel_on_generic_patches_the_cancel_endpoint(clock):
    session = json.loads((FIX / "seeds" / "generic_session.json").read_text())
    sid = str(session["id"])
    running = {**session, "automation_id": "aut_1", "status": "RUNNING"}
    # TrueState's enum has no CANCELLED: a cancelled session reads FAILED.
    cancelled = {**running, "status": "FAILED", "error": "Session cancelled"}
    path = f"/automations/aut_1/sessions/{sid}"
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        api.get(path).mock(return_value=httpx.Response(200, json=running))
        patch = api.patch(f"{path}/cancel").mock(return_value=httpx.Response(200, json=cancelled))
        result = cli("cancel", sid, "--provider", "generic", "--base-url", BASE, "--automation", "aut_1", env={"AUTORUN_TOKEN": TOKEN})
    assert result.exit_code == 0, result.stderr
    assert patch.call_count == 1
    assert result.stderr.strip() == f"cancel requested for {sid} (now failed)"


# -- show --svg / --html -------------------------------------------------------------


def test_show_exports_svg_and_html_and_leaves_stdout_unchanged(clock, tmp_path):
    doc = run_doc("r1", "failed", [("send_email", "failed")], name="[bold]Orders[/] <script>", error={"message": "SMTP refused"})
    FakeProvider.reset({"r1": [doc]})
    plain = fake("show", "r1")
    FakeProvider.reset({"r1": [doc]})
    svg, html = tmp_path / "run.svg", tmp_path / "run.html"
    result = fake("show", "r1", "--svg", str(svg), "--html", str(html))
    assert result.exit_code == 0
    assert result.stdout == plain.stdout
    assert f"saved {svg}" in result.stderr and f"saved {html}" in result.stderr
    svg_text, html_text = svg.read_text(), html.read_text()
    assert svg_text.lstrip().startswith("<svg")
    assert "SMTP" in svg_text and "send_email" in svg_text
    # API text stays text: markup is shown, HTML is escaped.
    assert "&lt;script&gt;" in html_text and "<script>" not in html_text
    assert "[bold]Orders[/]" in html_text
    assert "SMTP refused" in html_text


def test_show_export_with_json_output_keeps_stdout_json(clock, tmp_path):
    FakeProvider.reset({"r1": [COMPLETED]})
    result = fake("show", "r1", "-o", "json", "--svg", str(tmp_path / "r.svg"))
    assert json.loads(result.stdout)["id"] == "r1"
    assert (tmp_path / "r.svg").exists()


def test_show_export_to_an_unwritable_place_is_exit_2(clock, tmp_path):
    FakeProvider.reset({"r1": [COMPLETED]})
    result = fake("show", "r1", "--html", str(tmp_path / "missing" / "r.html"))
    assert result.exit_code == 2
    assert "error: cannot write" in result.stderr
    assert "hint: check that the folder exists" in result.stderr


def test_watch_live_frames_while_running_are_compact_and_the_last_is_the_full_view(clock, tty):
    end = run_doc("r1", "failed", [("send_email", "failed")], error={"message": "SMTP refused"})
    FakeProvider.reset({"r1": [RUNNING, end]})
    result = fake("watch", "r1", "--interval", "0.01", "--color", "always")
    assert result.exit_code == 1
    frames = result.stdout.split("Status")
    assert len(frames) >= 3  # at least the first frame and the final one
    first, final = frames[1], frames[-1]
    assert "next: autorun watch r1" not in result.stdout
    assert "watching 1 of 1 run" in first and "Error" not in first
    assert "SMTP refused" in final and "Error" in final and "watching" not in final
    assert "autorun automations draft r1 -f draft.toml && autorun replay r1 -d draft.toml" in final


def test_watch_latest_follows_the_newest_run(clock):
    FakeProvider.reset({"r1": [COMPLETED]})
    result = fake("watch", "@latest")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "2026-06-08T14:00:05Z r1 - completed"


# -- watch --fail-fast -------------------------------------------------------------


def test_fail_fast_stops_at_the_first_run_that_ends_badly(clock):
    FakeProvider.reset({
        "a": [run_doc("a", "running")] * 10 + [run_doc("a", "completed")],
        "b": [run_doc("b", "running"), run_doc("b", "failed", error={"message": "SMTP refused"})],
    })
    result = fake("watch", "a", "b", "--fail-fast", "--interval", "1", "-o", "json")
    assert result.exit_code == 1
    # Two polls: b failed on the second, and a was not followed any further.
    assert len([c for c in ops("get") if c[1] == "a"]) == 2
    assert [r["status"] for r in json.loads(result.stdout)] == ["running", "failed"]
    assert result.stderr.startswith(
        "error: run b ended failed: SMTP refused (--fail-fast: stopped following 1 other run)\n")
    assert clock.slept == [1]


def test_without_fail_fast_the_others_are_followed_to_their_end(clock):
    FakeProvider.reset({
        "a": [run_doc("a", "running")] * 3 + [run_doc("a", "completed")],
        "b": [run_doc("b", "running"), run_doc("b", "failed")],
    })
    result = fake("watch", "a", "b", "--interval", "1")
    assert result.exit_code == 1
    assert len([c for c in ops("get") if c[1] == "a"]) == 4


def test_fail_fast_with_a_run_already_failed_exits_at_once(clock, tty):
    FakeProvider.reset({"a": [run_doc("a", "running")], "b": [run_doc("b", "cancelled")]})
    result = fake("watch", "a", "b", "--fail-fast", "--color", "never")
    assert result.exit_code == 1
    assert clock.slept == []
    assert "error: run b ended cancelled (--fail-fast: stopped following 1 other run)" in result.stderr


# -- watch through an outage ----------------------------------------------------------


def test_watch_keeps_polling_through_an_outage_with_backoff(clock):
    FakeProvider.reset({"r1": [RUNNING, fakes.outage(), fakes.outage(), fakes.outage(), WAITING, COMPLETED]})
    result = fake("watch", "r1", "--interval", "2")
    assert result.exit_code == 0, result.stderr
    # 2 s, then doubled per failed poll (4, 8, 16), back to 2 once it answers.
    assert clock.slept == [2, 4, 8, 16, 2]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        "warning: polling failed: could not reach api.example.test: [Errno 111] Connection refused; "
        "still following, trying again with backoff",
        "warning: the API answers again, after 28s and 3 failed polls",
    ]
    assert result.stdout.splitlines()[-1].endswith("r1 - completed")


def test_the_backoff_of_a_long_outage_is_capped_at_a_minute(clock):
    FakeProvider.reset({"r1": [RUNNING] + [fakes.outage()] * 8 + [COMPLETED]})
    assert fake("watch", "r1", "--interval", "5").exit_code == 0
    assert clock.slept == [5, 10, 20, 40, 60, 60, 60, 60, 60]


def test_an_outage_that_outlasts_the_timeout_exits_6_and_says_so(clock):
    FakeProvider.reset({"r1": [RUNNING, fakes.outage("the service failed (after 3 retries): Service Unavailable")]})
    result = fake("watch", "r1", "--interval", "1", "--timeout", "20", "-o", "json")
    assert result.exit_code == 6
    assert json.loads(result.stdout)["status"] == "running"  # as last seen
    assert ("error: --timeout 20s elapsed and r1 is still running (as last seen: polling has failed for "
            in result.stderr)
    assert "Service Unavailable)" in result.stderr
    assert sum(clock.slept) == 20


def test_an_error_that_is_not_an_outage_still_ends_the_watch(clock):
    FakeProvider.reset({"r1": [RUNNING, fakes.outage(), fakes.GONE]})
    result = fake("watch", "r1", "--interval", "1")
    assert result.exit_code == 3
    assert "error: no fake run 'r1'" in result.stderr
    assert clock.slept == [1, 2]


def test_timeout_after_a_run_already_failed_says_both_and_exits_1(clock):
    FakeProvider.reset({"a": [run_doc("a", "running"), run_doc("a", "failed", error={"message": "boom"})],
                        "b": [run_doc("b", "running")]})
    result = fake("watch", "a", "b", "--interval", "1", "--timeout", "3")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: run a ended failed: boom; and --timeout 3s elapsed and b is still running",
        "hint: see what happened with `autorun show a`; keep following the others with `autorun watch b`",
    ]


def test_the_live_view_names_an_outage_in_its_footer(clock, tty):
    FakeProvider.reset({"r1": [RUNNING, fakes.outage(), COMPLETED]})
    result = fake("watch", "r1", "--interval", "1", "--color", "always")
    assert result.exit_code == 0
    assert "polling has failed 1 time in a row: could not reach" in result.stdout
    assert "next try in 2s" in result.stdout
    final = result.stdout.rsplit("Status", 1)[1]
    assert "polling has failed" not in final  # the last frame is the final state
    assert "warning:" not in result.stderr  # the footer says it, not stderr


# -- retry of many runs, then --wait --------------------------------------------------


def test_bulk_retry_wait_follows_every_retried_run_and_adds_their_end_to_the_array(clock):
    FakeProvider.reset({
        "a": [run_doc("a", "failed"), run_doc("a", "running"), run_doc("a", "completed")],
        "b": [run_doc("b", "failed"), run_doc("b", "running"), run_doc("b", "failed")],
        "c": [run_doc("c", "completed")],
    })
    result = fake("retry", "a", "b", "c", "--yes", "--wait", "--interval", "1", "-o", "json")
    # c could not be retried (exit 4), which comes before b failing again (1).
    assert result.exit_code == 4
    doc = json.loads(result.stdout)
    assert [(e["id"], e["status"], e["error"] and e["error"]["code"]) for e in doc] == [
        ("a", "completed", None), ("b", "failed", None), ("c", None, "not_retryable")]
    assert ops("retry") == [("retry", "a"), ("retry", "b")]


def test_bulk_retry_wait_exits_1_when_a_retried_run_fails_again(clock):
    FakeProvider.reset({
        "a": [run_doc("a", "failed"), run_doc("a", "running"), run_doc("a", "completed")],
        "b": [run_doc("b", "failed"), run_doc("b", "running"), run_doc("b", "failed")],
    })
    result = fake("retry", "a", "b", "--yes", "--wait", "--interval", "1")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[:2] == ["✓ a  retried (running)", "✓ b  retried (running)"]
    assert lines[-1].endswith("b - failed") or lines[-1].endswith("a - completed")
    assert "error: run b ended failed" in result.stderr
