"""Issue 12 items 19 and 20 against hostile servers (``tests/hostile.py``) and hostile
files: every byte of outside text that reaches stdout/stderr outside JSON passes the
one sanitiser (control characters escaped), and the configured token is masked from
every output — tables, JSON, ndjson, IDs, --raw, --jq, -v, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hostile import Answer, HostileServer, Seen
from typer.testing import CliRunner

import autorun_cli.http as http_mod
from autorun_cli import textsafe
from autorun_cli.cli.app import app

runner = CliRunner()
TOKEN = "sk-live-echo-5b1f0c3d9e"
AID = "aut_1"
# Clear the screen, set the window title, open an OSC 8 link, ring the bell.
EVIL = "\x1b[2J\x1b]0;T\x07"
LINK = "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07"
RAW_CONTROLS = ("\x1b", "\x07", "\x9b")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AUTORUN_PROFILE", "AUTORUN_OUTPUT", "AUTORUN_DEBUG", "AUTORUN_CONCURRENCY", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(http_mod, "sleep", lambda s: None)


def cli(server: HostileServer, provider: str, *args: str, **env: str) -> Any:
    base = {"AUTORUN_PROVIDER": provider, "AUTORUN_BASE_URL": server.url, "AUTORUN_TOKEN": TOKEN,
            "COLUMNS": "200", **env}
    if provider in ("generic", "sendrealm"):
        base.setdefault("AUTORUN_AUTOMATION_ID", AID)
    return runner.invoke(app, list(args), env=base)


def assert_safe(result: Any) -> None:
    """Nothing a terminal would act on, and never the token, on either stream."""
    for name, stream in (("stdout", result.stdout), ("stderr", result.stderr)):
        for ctrl in RAW_CONTROLS:
            assert ctrl not in stream, f"raw {ctrl!r} on {name}: {stream!r}"
        assert TOKEN not in stream, f"token on {name}: {stream!r}"
    assert "Traceback" not in result.stderr


def session(sid: str, status: str = "FAILED", **extra: Any) -> dict[str, Any]:
    return {"id": sid, "automation_id": AID, "status": status, "inputs": {"n": 1}, "error": None,
            "created_at": "2026-06-01T10:00:00Z", "updated_at": "2026-06-01T10:00:05Z", "steps": [], **extra}


# -- item 19: outside text reaches the terminal only sanitised --------------------------


def test_list_o_id_escapes_an_id_and_keeps_one_per_line() -> None:
    ids = [f"run{EVIL}", "run_b\nforged_line"]

    def route(req: Seen) -> Answer:
        return Answer(200, {"data": [{"id": i, "status": "completed"} for i in ids], "has_more": False})

    with HostileServer(route) as server:
        result = cli(server, "sendrealm", "list", "-o", "id")
    assert result.exit_code == 0, result.stderr
    assert_safe(result)
    assert result.stdout.splitlines() == ["run\\x1b[2J\\x1b]0;T\\x07", "run_b\\x0aforged_line"]


def events_answer(req: Seen) -> Answer:
    return Answer(202, {"data": {"id": f"evt{EVIL}", "status": f"accepted{LINK}",
                                 "resumed_runs": [f"run_1{LINK}", {"id": f"run_2{EVIL}"}]}})


@pytest.mark.parametrize("mode", ["table", "id"])
def test_events_send_output_is_sanitised(mode: str) -> None:
    with HostileServer(events_answer) as server:
        result = cli(server, "sendrealm", "events", "send", "order.completed", "--email", "a@example.com",
                     "--idempotency-key", "k1", "-o", mode)
    assert result.exit_code == 0, result.stderr
    assert_safe(result)
    assert result.stdout.splitlines() == ["run_1\\x1b]8;;https://evil.example\\x07click\\x1b]8;;\\x07",
                                          "run_2\\x1b[2J\\x1b]0;T\\x07"]
    if mode == "table":
        assert "sent order.completed (event evt\\x1b[2J\\x1b]0;T\\x07); resumed 2 runs" in result.stderr


def test_events_send_ndjson_is_json_with_the_text_as_data() -> None:
    with HostileServer(events_answer) as server:
        result = cli(server, "sendrealm", "events", "send", "order.completed", "--email", "a@example.com",
                     "--idempotency-key", "k1", "-o", "ndjson")
    assert result.exit_code == 0, result.stderr
    assert_safe(result)
    assert json.loads(result.stdout)["data"]["id"] == f"evt{EVIL}"  # JSON escapes it; the value is kept


def test_retry_on_generic_prints_the_new_session_id_sanitised() -> None:
    new_id = f"sess_new{LINK}"

    def route(req: Seen) -> Answer:
        if req.method == "POST":
            return Answer(201, session(new_id, "NEW"))
        return Answer(200, session("sess_failed"))

    with HostileServer(route) as server:
        result = cli(server, "generic", "retry", "sess_failed")
    assert result.exit_code == 0, result.stderr
    assert_safe(result)
    shown = "sess_new\\x1b]8;;https://evil.example\\x07click\\x1b]8;;\\x07"
    assert result.stdout == shown + "\n"
    assert f"retried sess_failed → {shown} (pending)" in result.stderr


def test_the_verbose_request_log_escapes_reason_phrases_and_links() -> None:
    item = {"uuid": "00000000-0000-4000-8000-000000000001", "name": "n", "status": "completed", "steps": [],
            "created_at": "2026-06-01T10:00:00+00:00"}

    def route(req: Seen) -> Answer:
        if req.arg("page") == "2":
            return Answer(200, {"data": [], "links": {"next": None}}, reason=f"OK{EVIL}")
        return Answer(200, {"data": [item], "links": {"next": f"/api/v1/automation-executions?page=2&x={EVIL}"}},
                      reason=f"OK{LINK}")

    with HostileServer(route) as server:
        result = cli(server, "plannr", "list", "--all", "-o", "id", "-v")
    assert result.exit_code == 0, result.stderr
    assert_safe(result)
    log = result.stderr.splitlines()
    assert "< 200 OK\\x1b]8;;https://evil.example\\x07click\\x1b]8;;\\x07 (" in result.stderr
    assert any(line.startswith("> GET ") and "x=\\x1b[2J\\x1b]0;T\\x07" in line for line in log), log


def test_an_error_answer_with_escapes_in_its_reason_and_body_is_sanitised() -> None:
    with HostileServer(lambda req: Answer(500, f"boom{EVIL}".encode(), {"Content-Type": "text/plain"},
                                          reason=f"Oops{LINK}")) as server:
        result = cli(server, "generic", "show", "sess_1")
    assert result.exit_code == 5
    assert_safe(result)
    assert "HTTP 500 Oops\\x1b]8;;" in result.stderr and "boom\\x1b[2J" in result.stderr


def test_automations_validate_messages_are_sanitised(tmp_path: Path) -> None:
    good = tmp_path / f"evil{EVIL}.toml"
    good.write_text('id = "ship"\nname = "n\\u001b[2J"\ntrigger = "order.\\u001b]0;T\\u0007shipped"\n'
                    'identity = { type = "email", from = "email" }\n'
                    '[[steps]]\nkey = "a"\ntype = "send_push_template"\ntemplate = "t"\ntitle = "t"\n')
    result = runner.invoke(app, ["automations", "validate", str(good)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.stderr
    assert_safe(result)
    assert "order.\\x1b]0;T\\x07shipped" in result.stderr
    assert "evil\\x1b[2J\\x1b]0;T\\x07.toml" in result.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "x"\ntrigger = "t"\n[[steps]]\nkey = "a\\u001b[2J"\ntype = "no\\u001b]0;T\\u0007such"\n')
    result = runner.invoke(app, ["automations", "validate", str(bad)])
    assert result.exit_code == 2
    assert_safe(result)


def test_a_rich_renderable_that_forgets_to_clean_is_caught_by_the_console() -> None:
    # The net under every table and view: whatever a command hands the console.
    import io

    from rich.text import Text

    from autorun_cli.cli.options import Opts
    from autorun_cli.cli.output import Output

    out = Output(Opts(color=None))
    buf = io.StringIO()
    out._out = type(out.out)(file=buf, force_terminal=True, color_system="truecolor", markup=False)
    out.out.print(Text(f"name {EVIL}", style="bold red"))
    assert "\x07" not in buf.getvalue() and "\\x1b[2J" in buf.getvalue()
    assert "\x1b[1;31m" in buf.getvalue()  # Rich's own styling still reaches the terminal


# -- item 20: a token the server echoes back is masked everywhere -----------------------


def echoing(req: Seen) -> Answer:
    """A server that puts the caller's token into run data, a step error and a log."""
    token = req.headers.get("authorization", "").removeprefix("Bearer ")
    doc = session(f"sess_{token[:2]}", "FAILED", error=f"auth {token} rejected",
                  inputs={"api_key": token, token: "as a key"},
                  steps=[{"id": "st1", "status": "FAILED", "error": f"POST with {token} failed",
                          "result": f"echo {token}", "step": {"name": f"Call {token}", "step_type": "HTTP"},
                          "created_at": "2026-06-01T10:00:00Z", "updated_at": "2026-06-01T10:00:01Z"}])
    if req.path.endswith("/sessions/"):
        return Answer(200, {"items": [doc], "total": 1})
    return Answer(200, doc)


@pytest.mark.parametrize("args", [
    ("show", "sess_sk"),
    ("show", "sess_sk", "-o", "json"),
    ("show", "sess_sk", "-o", "json", "--raw"),
    ("show", "sess_sk", "-o", "ndjson", "--raw"),
    ("show", "sess_sk", "sess_sk", "-o", "json"),
    ("show", "sess_sk", "--jq", ".error.message"),
    ("show", "sess_sk", "--jq", ".raw", "--raw"),
    ("list", "-o", "json", "--raw"),
    ("list", "-o", "ndjson"),
    ("list",),
    ("show", "sess_sk", "-v"),
], ids=lambda a: " ".join(a))
def test_an_echoed_token_is_masked_in_every_mode(args: tuple[str, ...]) -> None:
    with HostileServer(echoing) as server:
        result = cli(server, "generic", *args)
    assert result.exit_code == 0, result.stderr
    assert_safe(result)
    assert "***" in result.stdout or args == ("list",)  # the list table shows no echoed field


def test_masked_json_keeps_its_shape() -> None:
    with HostileServer(echoing) as server:
        result = cli(server, "generic", "show", "sess_sk", "-o", "json", "--raw")
    doc = json.loads(result.stdout)
    assert doc["error"]["message"] == "auth *** rejected"
    assert doc["raw"]["inputs"] == {"api_key": "***", "***": "as a key"}
    assert doc["steps"][0]["error"] == "POST with *** failed"


def test_an_echoed_token_in_an_error_document_is_masked() -> None:
    def route(req: Seen) -> Answer:
        token = req.headers.get("authorization", "").removeprefix("Bearer ")
        return Answer(200, {"not_a_session": token})  # mapped into an error message

    with HostileServer(route) as server:
        result = cli(server, "generic", "show", "sess_1", "-o", "json")
    assert result.exit_code == 5
    assert_safe(result)
    assert json.loads(result.stdout)["error"]["code"] == "bad_response"


def test_an_echoed_token_in_events_send_output_is_masked() -> None:
    def route(req: Seen) -> Answer:
        token = req.headers.get("authorization", "").removeprefix("Bearer ")
        return Answer(202, {"data": {"id": f"evt_{token}", "resumed_runs": [f"run_{token}"]}})

    with HostileServer(route) as server:
        for mode in ("table", "json", "ndjson", "id"):
            result = cli(server, "sendrealm", "events", "send", "x", "--email", "a@example.com",
                         "--idempotency-key", "k", "-o", mode)
            assert result.exit_code == 0, result.stderr
            assert_safe(result)
            assert "run_***" in result.stdout


def test_secrets_set_for_one_command_do_not_outlive_the_next() -> None:
    textsafe.set_secrets(["older-token-xyz"])
    result = runner.invoke(app, ["--provider", "local", "list", "-o", "json"])
    assert result.exit_code == 0, result.stderr
    assert textsafe.clean("older-token-xyz") == "older-token-xyz"


@pytest.mark.parametrize("mode", ["id", "ndjson", "table"])
def test_bulk_retry_lines_are_sanitised_and_masked(mode: str) -> None:
    def route(req: Seen) -> Answer:
        token = req.headers.get("authorization", "").removeprefix("Bearer ")
        if req.method == "POST":
            return Answer(201, session(f"new{EVIL}{token}", "NEW"))
        return Answer(200, session(req.path.rstrip("/").rsplit("/", 1)[-1]))

    with HostileServer(route) as server:
        result = cli(server, "generic", "retry", "sess_a", "sess_b", "--yes", "-o", mode)
    assert result.exit_code == 0, result.stderr
    assert_safe(result)
    if mode == "id":
        assert result.stdout.splitlines() == ["new\\x1b[2J\\x1b]0;T\\x07***"] * 2
    elif mode == "ndjson":
        assert [json.loads(line)["new_id"] for line in result.stdout.splitlines()] == [f"new{EVIL}***"] * 2


# -- secrets in errors raised before the settings are resolved, URL passwords, debug ------

TENANT_UUID = "7e000000-0000-4000-8000-000000000001"


@pytest.mark.parametrize("where", ["flag", "env", "profile"])
def test_a_token_given_as_the_tenant_id_is_masked_in_the_usage_error(where: str, tmp_path: Path) -> None:
    """The API key pasted where the tenant UUID belongs: refused before any request
    (exit 2), and the error never shows it."""
    env = {"AUTORUN_PROVIDER": "tenant", "AUTORUN_BASE_URL": "http://127.0.0.1:9"}
    args = ["list"]
    if where == "flag":
        args += ["--tenant", TOKEN]
        env["AUTORUN_TOKEN"] = TOKEN
    elif where == "env":
        env.update(AUTORUN_TENANT_ID=TOKEN, AUTORUN_TOKEN=TOKEN)
    else:
        (tmp_path / "config.toml").write_text(
            f'default_profile = "t"\n[profiles.t]\nprovider = "tenant"\nbase_url = "http://127.0.0.1:9"\n'
            f'token = "{TOKEN}"\ntenant = "{TOKEN}"\n')
        env = {}
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 2, result.stderr
    assert_safe(result)
    assert "not a UUID" in result.stderr and "'***'" in result.stderr


def test_a_token_quoted_by_any_usage_error_is_masked() -> None:
    result = runner.invoke(app, ["list", "--since", TOKEN, "-o", "json"],
                           env={"AUTORUN_PROVIDER": "local", "AUTORUN_TOKEN": TOKEN})
    assert result.exit_code == 2
    assert_safe(result)
    assert json.loads(result.stdout)["error"]["message"].startswith("--since '***' is not a time")


def test_a_token_of_a_profile_given_in_token_env_is_masked_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_TENANT_KEY", TOKEN)
    (tmp_path / "config.toml").write_text(
        'default_profile = "t"\n[profiles.t]\nprovider = "tenant"\nbase_url = "http://127.0.0.1:9"\n'
        'token_env = "MY_TENANT_KEY"\n')
    result = runner.invoke(app, ["list", "--tenant", TOKEN])
    assert result.exit_code == 2
    assert_safe(result)


def test_a_password_in_the_base_url_is_masked_in_the_request_log_and_errors() -> None:
    password = "url-pass-7d2e91"
    with HostileServer(lambda req: Answer(200, [])) as server:
        url = server.url.replace("http://", f"http://alice:{password}@")
        result = runner.invoke(app, ["list", "-v"], env={"AUTORUN_PROVIDER": "generic", "AUTORUN_BASE_URL": url,
                                                         "AUTORUN_TOKEN": TOKEN, "AUTORUN_AUTOMATION_ID": AID})
    assert result.exit_code == 0, result.stderr
    assert password not in result.stderr + result.stdout
    assert "> GET http://alice:***@127.0.0.1:" in result.stderr
    # Nothing listens there any more: the connection error names the host, not the password.
    refused = runner.invoke(app, ["list"], env={"AUTORUN_PROVIDER": "generic", "AUTORUN_BASE_URL": url,
                                                "AUTORUN_TOKEN": TOKEN, "AUTORUN_AUTOMATION_ID": AID})
    assert refused.exit_code == 5
    assert "could not reach" in refused.stderr and password not in refused.stderr


def test_a_hint_quoting_api_text_is_sanitised() -> None:
    """Hints name commands built from what the API answered (here the execution ID the
    server put in its document): the hint line passes the sanitiser too."""
    asked = "5ca1ab1e-0000-4000-8000-000000000003"

    def route(req: Seen) -> Answer:
        return Answer(200, {"data": {"execution_id": f"{asked}{EVIL}", "automation_rule_id": "r", "status": "cancelled",
                                     "actions_total": 1, "actions_successful": 0, "actions_failed": 0,
                                     "started_at": "2026-06-01T10:00:00Z", "tenant": TENANT_UUID,
                                     "_links": {"self": {"href": f"/api/v1/automation/executions/{asked}"}}}})

    with HostileServer(route) as server:
        result = cli(server, "tenant", "retry", asked)
    assert result.exit_code == 4, result.stderr
    assert_safe(result)
    hint = result.stderr.splitlines()[-1]
    assert hint.startswith("hint: ") and "\\x1b[2J\\x1b]0;T\\x07" in hint


def test_the_debug_traceback_is_sanitised_and_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    from autorun_cli.providers import local

    def boom(self: Any, query: Any) -> Any:
        raise RuntimeError(f"kaboom {TOKEN} {EVIL}")

    monkeypatch.setattr(local.LocalProvider, "iter_runs", boom)
    env = {"AUTORUN_PROVIDER": "local", "AUTORUN_TOKEN": TOKEN, "AUTORUN_DEBUG": "1"}
    result = runner.invoke(app, ["list"], env=env)
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "RuntimeError: kaboom *** \\x1b[2J" in result.stderr
    for ctrl in RAW_CONTROLS:
        assert ctrl not in result.stderr
    assert TOKEN not in result.stderr
    # An AutorunError's traceback too (a usage error that quotes the token).
    usage = runner.invoke(app, ["list", "--since", TOKEN], env=env)
    assert usage.exit_code == 2
    assert "Traceback" in usage.stderr and TOKEN not in usage.stderr


def test_config_show_and_list_mask_a_base_url_password(tmp_path: Path) -> None:
    password = "url-pass-7d2e91"
    (tmp_path / "config.toml").write_text(
        f'default_profile = "t"\n[profiles.t]\nprovider = "generic"\nbase_url = "https://bob:{password}@api.example"\n')
    for args in (["config", "show"], ["config", "show", "-o", "json"], ["config", "list"], ["config", "list", "--json"]):
        result = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.stderr
        assert password not in result.stdout + result.stderr
        assert "https://bob:***@api.example" in result.stdout
