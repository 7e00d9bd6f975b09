"""Every hint names a command that can succeed in the situation it is given in: each
test takes the hint autorun printed, runs it, and checks it worked."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autorun_cli.cli.app import app

runner = CliRunner()
TESTS = Path(__file__).resolve().parent
REPLAY_SHORT = TESTS / "fixtures" / "replay" / "order_receipt_short_wait.toml"
SEED_RUN = TESTS / "fixtures" / "seeds" / "sendrealm_run.json"
DEMO = Path(__file__).resolve().parent.parent / "autorun_cli" / "demo"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))
    for var in ("AUTORUN_PROVIDER", "AUTORUN_BASE_URL", "AUTORUN_TOKEN", "AUTORUN_PROFILE", "AUTORUN_OUTPUT",
                "AUTORUN_AUTOMATION_ID", "AUTORUN_TENANT_ID", "AUTORUN_ACCOUNT_UUID", "NO_COLOR", "AUTORUN_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env={"COLUMNS": "100", **(env or {})})


def ok(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result.stdout


def hint_in(text: str) -> str:
    """The command of the ``hint:`` line in ``text`` (one line, never wrapped)."""
    [line] = [ln for ln in text.splitlines() if "hint: " in ln]
    hint = line.split("hint: ", 1)[1].strip().rstrip("│").strip()
    return hint[hint.index("autorun "):]


def run_hint(hint: str):
    """Run an `autorun …` hint as the shell would (quotes and all)."""
    words = shlex.split(hint)
    assert words[0] == "autorun", hint
    return invoke(*words[1:])


def _order_receipt() -> None:
    ok("automations", "load", str(DEMO / "order_receipt.toml"))


def test_a_run_whose_payload_lacks_the_identity_hints_a_trigger_that_works_not_retry():
    _order_receipt()
    [run_id] = ok("trigger", "order.completed", "--payload", '{"order_id": "o1"}', "-o", "id").split()
    shown = invoke("show", run_id)
    hint = hint_in(shown.stdout)
    assert hint == """autorun trigger order.completed --payload '{"order_id": "o1", "customer": {"email": "EMAIL"}}'"""
    started = run_hint(hint + " -o json")
    assert started.exit_code == 0, started.stderr
    [new_id] = json.loads(started.stdout)["runs"]
    new = json.loads(ok("show", new_id, "-o", "json"))
    assert new["status"] == "waiting" and new["identity"]["value"] == "EMAIL"
    # What the old hint said fails the same way again.
    retried = invoke("retry", run_id, "-o", "json")
    assert json.loads(ok("show", run_id, "-o", "json"))["status"] == "failed", retried.stdout


def test_a_step_that_fails_for_its_definition_hints_the_definition_not_retry():
    _order_receipt()
    [run_id] = ok("trigger", "order.completed", "--payload", '{"order_id": "o2"}', "-o", "id").split()
    invoke("retry", run_id)  # resumes at send_receipt, which has no recipient
    run = json.loads(ok("show", run_id, "-o", "json"))
    assert run["steps"][-1]["type"] == "send_email_template" and run["status"] == "failed"
    hint = hint_in(invoke("show", run_id).stdout)
    assert hint == "autorun automations show order_receipt"
    assert "from = \"customer.email\"" in run_hint(hint).stdout


def test_a_fail_step_hints_the_definition():
    ok("automations", "load", str(TESTS / "fixtures" / "local" / "always_fails.toml"))
    [run_id] = ok("trigger", "doomed.started", "--payload", '{"email": "a@example.com"}', "-o", "id").split()
    hint = hint_in(invoke("show", run_id).stdout)
    assert hint == "autorun automations show always_fails"
    assert run_hint(hint).exit_code == 0


def test_demo_webhook_failure_hints_retry_and_a_completed_run_hints_its_own_trigger():
    ok("demo")
    runs = json.loads(ok("list", "-o", "json"))
    failed = [r for r in runs if r["status"] == "failed"][0]
    # A webhook that was down may be up now: retry is the command that can succeed.
    assert hint_in(invoke("show", failed["id"]).stdout) == f"autorun retry {failed['id']}"
    completed = [r for r in runs if r["status"] == "completed"][0]
    refused = invoke("retry", completed["id"])
    assert refused.exit_code == 4
    hint = refused.stderr.splitlines()[1]
    assert "autorun trigger EVENT" not in hint
    started = run_hint(hint[hint.index("autorun "):] + " -o json")
    assert started.exit_code == 0, started.stderr
    assert json.loads(started.stdout)["event"] == completed["trigger"]["event"]


def test_a_replay_from_a_file_hints_a_command_that_shows_the_divergence(isolated):
    local = isolated / "run.json"
    shutil.copy(SEED_RUN, local)
    result = invoke("replay", str(local), "-d", str(REPLAY_SHORT))
    assert result.exit_code == 1
    hint = result.stderr.splitlines()[1]
    assert "autorun show run_123" not in hint  # run_123 exists on no provider here
    command = hint[hint.index("autorun "):].split(" | jq ")[0]
    assert shlex.split(hint.split(" | jq ")[1]) == ['.steps[] | select(.key == "wait_for_open")']
    report = run_hint(command)
    steps = {s["key"]: s for s in json.loads(report.stdout)["steps"]}
    assert steps["wait_for_open"]["recorded"]["wait"] == "received"
    assert steps["wait_for_open"]["replayed"]["wait"] == "timed_out"


def test_replaying_a_run_the_user_cancelled_matches_up_to_the_cancel():
    _order_receipt()
    [run_id] = ok("trigger", "order.completed", "--payload", '{"order_id": "o3", "customer": {"email": "c@example.com"}}', "-o", "id").split()
    ok("cancel", run_id)
    result = invoke("replay", run_id)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "✓ match: the replay took the same path and ended cancelled" in result.stdout
    report = json.loads(ok("replay", run_id, "-o", "json"))
    assert report["match"] is True and report["replayed_status"] == "cancelled"
