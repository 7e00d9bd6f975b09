"""``autorun diff A [B]``: the matching rules (unit), then the CLI on the local engine,
on JSON files, and on the four providers over real HTTP (tests/apiserver.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from apiserver import GENERIC_AUTOMATION, PLANNR_BLUEPRINT, SENDREALM_AUTOMATION, TENANT_RULES, ApiServer, _status, gen_id
from typer.testing import CliRunner

import autorun_cli.http as http_mod
from autorun_cli.cli.app import app
from autorun_cli.diff import diff_runs
from autorun_cli.model import Identity, Run, RunError, Step, Trigger

TESTS = Path(__file__).resolve().parent
SHIPPING = TESTS / "fixtures" / "local" / "pack" / "shipping.toml"
runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))
    for var in ("AUTORUN_PROVIDER", "AUTORUN_BASE_URL", "AUTORUN_TOKEN", "AUTORUN_PROFILE", "AUTORUN_OUTPUT",
                "AUTORUN_AUTOMATION_ID", "AUTORUN_TENANT_ID", "AUTORUN_ACCOUNT_UUID", "NO_COLOR", "AUTORUN_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(http_mod, "sleep", lambda s: None)
    return tmp_path


# -- the rules, on models ------------------------------------------------------------


def run(rid: str, status: str, steps: list[Step], **kw) -> Run:
    return Run(id=rid, provider="local", automation_id="auto", status=status, steps=steps, **kw)


def step(key: str | None, status: str = "completed", ms: int | None = 10, **kw) -> Step:
    return Step(key=key, status=status, duration_ms=ms, **kw)


def test_same_runs_differ_only_in_durations_times_trigger_and_identity():
    a = run("a", "completed", [step("x", ms=10), step("y", ms=900)], duration_ms=1000, identity=Identity(value="ann"),
            trigger=Trigger(event="e1"), created_at="2026-06-02T00:00:00Z")
    b = run("b", "completed", [step("x", ms=12), step("y", ms=100)], duration_ms=91000, identity=Identity(value="bob"),
            trigger=Trigger(event="e2"), created_at="2026-06-01T00:00:00Z")
    doc = diff_runs(a, b)
    assert doc["same"] is True
    assert doc["first_difference"] is None
    # Trigger and identity are reported, but do not make the runs different.
    assert doc["fields"] == [{"field": "trigger.event", "a": "e1", "b": "e2"}, {"field": "identity.value", "a": "ann", "b": "bob"}]
    assert [r["duration_delta_ms"] for r in doc["steps"]] == [-2, 800]
    assert all(r["changed"] == [] for r in doc["steps"])
    assert doc["a"] == {"id": "a", "status": "completed", "automation_id": "auto", "created_at": "2026-06-02T00:00:00Z", "duration_ms": 1000}
    assert doc["b"]["duration_ms"] == 91000


def test_contract_example_shape_status_error_and_retries_judged_by_last_attempt():
    a = run("a", "failed", [
        step("send", ms=5),
        step("hook", "failed", ms=4, error="502", attempt=1),
        step("hook", "failed", ms=10, error="boom", attempt=3),
    ], error=RunError(message="step hook failed"))
    b = run("b", "completed", [step("send", ms=5), step("hook", ms=12, attempt=1)])
    doc = diff_runs(a, b)
    assert doc["same"] is False
    assert doc["fields"] == [{"field": "status", "a": "failed", "b": "completed"}, {"field": "error", "a": "step hook failed", "b": None}]
    hook = doc["steps"][1]
    assert hook == {
        "key": "hook", "name": None,
        "a": {"status": "failed", "branch": None, "error": "boom", "duration_ms": 10, "attempt": 3},
        "b": {"status": "completed", "branch": None, "error": None, "duration_ms": 12, "attempt": 1},
        "changed": ["status", "error"], "duration_delta_ms": -2,
    }
    assert len(doc["steps"]) == 2  # the two attempts are one step
    assert doc["first_difference"] == {"step": "hook", "field": "status", "a": "failed", "b": "completed"}


def test_step_only_in_one_run_and_run_level_difference_only():
    a = run("a", "completed", [step("x"), step("extra")])
    b = run("b", "completed", [step("x")])
    doc = diff_runs(a, b)
    assert doc["steps"][1] == {"key": "extra", "name": None, "a": doc["steps"][1]["a"], "b": None, "changed": ["present"], "duration_delta_ms": None}
    assert doc["first_difference"] == {"step": "extra", "field": "present", "a": True, "b": False}
    # Steps equal, error message differs: the run-level field is the first difference.
    c = run("c", "failed", [step("x")], error=RunError(message="one"))
    d = run("d", "failed", [step("x")], error=RunError(message="two"))
    doc = diff_runs(c, d)
    assert doc["same"] is False and doc["steps"][0]["changed"] == []
    assert doc["first_difference"] == {"step": None, "field": "error", "a": "one", "b": "two"}


def test_matched_by_key_else_name_else_position_and_order_counts():
    # No key: names match (out of order); neither key nor name: position.
    a = run("a", "completed", [Step(name="Send SMS", status="completed"), Step(name="Send email", status="completed"), Step(status="failed")])
    b = run("b", "completed", [Step(name="Send email", status="completed"), Step(name="Send SMS", status="completed"), Step(status="completed")])
    doc = diff_runs(a, b)
    rows = {(r["name"] or "pos3"): r for r in doc["steps"]}
    assert set(rows) == {"Send SMS", "Send email", "pos3"}
    assert rows["pos3"]["changed"] == ["status"]
    moved = [r["name"] for r in doc["steps"] if "order" in r["changed"]]
    assert len(moved) == 1 and moved[0] in ("Send SMS", "Send email")
    assert doc["same"] is False
    assert doc["first_difference"]["field"] in ("order", "status")
    # The same steps in another order alone make the runs different.
    e = run("e", "completed", [step("x"), step("y")])
    f = run("f", "completed", [step("y"), step("x")])
    doc = diff_runs(e, f)
    assert doc["same"] is False
    assert doc["first_difference"] == {"step": "x", "field": "order", "a": 1, "b": 2} or doc["first_difference"] == {"step": "y", "field": "order", "a": 2, "b": 1}


def test_branch_difference_and_b_only_step_placed_after_its_predecessor():
    a = run("a", "completed", [step("w", branch="received"), step("z")])
    b = run("b", "completed", [step("w", branch="timed_out"), step("nudge"), step("z")])
    doc = diff_runs(a, b)
    assert [r["key"] for r in doc["steps"]] == ["w", "nudge", "z"]
    assert doc["steps"][0]["changed"] == ["branch"]
    assert doc["first_difference"] == {"step": "w", "field": "branch", "a": "received", "b": "timed_out"}


# -- the CLI on the local engine -------------------------------------------------------


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def ok_json(*args: str) -> dict:
    result = invoke(*args, "-o", "json")
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


def trigger(email: str, n: int) -> str:
    time.sleep(0.005)  # created_at has millisecond precision: keep the runs in order
    return ok_json("trigger", "order.shipped", "--payload", json.dumps({"customer": {"email": email}, "order_id": n}), "--id", f"ev{n}")["runs"][0]


def ack(email: str, n: int) -> None:
    assert invoke("events", "send", "shipment.acked", "--email", email, "--id", f"ack{n}").exit_code == 0


@pytest.fixture
def local_runs() -> dict[str, str]:
    """old: completed; mid: still waiting; new: completed (created after mid)."""
    ok_json("automations", "load", str(SHIPPING))
    old = trigger("ann@example.com", 1)
    ack("ann@example.com", 1)
    mid = trigger("bob@example.com", 2)
    new = trigger("cy@example.com", 3)
    ack("cy@example.com", 3)
    return {"old": old, "mid": mid, "new": new}


def test_local_default_b_is_the_last_good_run_before_a(local_runs):
    result = invoke("diff", local_runs["mid"], "-o", "json")
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    assert result.stderr == ""
    # Not `new`: it completed too, but was created after A.
    assert (doc["a"]["id"], doc["b"]["id"]) == (local_runs["mid"], local_runs["old"])
    assert (doc["a"]["status"], doc["b"]["status"]) == ("waiting", "completed")
    assert doc["a"]["automation_id"] == doc["b"]["automation_id"] == "shipping_notice"
    assert doc["same"] is False
    assert {"field": "status", "a": "waiting", "b": "completed"} in doc["fields"]
    keys = [r["key"] for r in doc["steps"]]
    assert keys == ["send_notice", "wait_for_ack", "send_thanks"]
    notice, wait, thanks = doc["steps"]
    assert notice["changed"] == [] and notice["a"]["status"] == notice["b"]["status"] == "completed"
    assert wait["changed"][0] == "status" and wait["a"]["status"] == "waiting" and wait["b"]["status"] == "completed"
    assert thanks["a"] is None and thanks["changed"] == ["present"] and thanks["duration_delta_ms"] is None
    assert doc["first_difference"] == {"step": "wait_for_ack", "field": "status", "a": "waiting", "b": "completed"}


def test_local_same_runs_exit_0_and_the_human_view(local_runs):
    doc = ok_json("diff", local_runs["new"])
    assert doc["b"]["id"] == local_runs["old"]
    assert doc["same"] is True and doc["first_difference"] is None
    assert doc["fields"] == [{"field": "identity.value", "a": "cy@example.com", "b": "ann@example.com"}]
    view = invoke("diff", local_runs["new"], env={"COLUMNS": "80"})
    assert view.exit_code == 0
    assert view.stdout.startswith("✓ same")
    different = invoke("diff", local_runs["mid"], local_runs["new"], env={"COLUMNS": "80"})
    assert different.exit_code == 1
    lines = different.stdout.splitlines()
    assert lines[0] == "✗ different: first at step wait_for_ack, status waiting (A) vs completed (B)"
    assert lines[1] == f"hint: autorun show {local_runs['mid']}  (step wait_for_ack)"
    assert all(len(line) <= 80 for line in lines)
    row = next(line for line in lines if "send_thanks" in line)
    assert row.startswith("≠") and "did not run" in row
    assert different.stderr == ""


def test_files_from_show_json_diff_against_a_live_run(local_runs, isolated):
    saved = isolated / "good.json"
    saved.write_text(invoke("show", local_runs["old"], "-o", "json").stdout)
    raw = isolated / "raw.json"
    raw.write_text(invoke("show", local_runs["mid"], "-o", "json", "--raw").stdout)
    doc = json.loads(invoke("diff", str(raw), str(saved), "-o", "json").stdout)
    assert (doc["a"]["id"], doc["b"]["id"], doc["same"]) == (local_runs["mid"], local_runs["old"], False)
    # A file as A, its B found on the provider.
    assert ok_json("diff", str(saved.parent / "good.json"), local_runs["new"])["same"] is True
    piped = runner.invoke(app, ["diff", "-", local_runs["new"], "--jq", ".same"], input=saved.read_text())
    assert piped.stdout == "true\n"


def test_bad_input(local_runs, isolated):
    missing = invoke("diff", "run_doesnotexist")
    assert missing.exit_code == 3 and missing.stderr.startswith("error: ") and "Traceback" not in missing.stderr
    not_a_run = isolated / "list.json"
    not_a_run.write_text('{"hello": "world"}')
    bad = invoke("diff", str(not_a_run), local_runs["old"])
    assert bad.exit_code == 2
    assert bad.stderr.startswith(f"error: {not_a_run}: not a run document")
    assert "hint: " in bad.stderr
    broken = isolated / "broken.json"
    broken.write_text("{not json")
    assert invoke("diff", str(broken), local_runs["old"]).exit_code == 2
    several = isolated / "several.json"
    several.write_text(invoke("show", local_runs["old"], local_runs["new"], "-o", "json").stdout)
    many = invoke("diff", str(several), local_runs["old"])
    assert many.exit_code == 2 and "holds 2 runs" in many.stderr
    # No good run before the oldest one: not found, with a hint to give B.
    none = invoke("diff", local_runs["old"], "-o", "json")
    assert none.exit_code == 3
    assert "no completed run created before" in none.stderr
    assert json.loads(none.stdout)["error"]["hint"].startswith(f"give the run to compare with: autorun diff {local_runs['old']} B")


def test_a_without_automation_needs_b_and_different_automations_are_said(local_runs, isolated):
    doc = json.loads(invoke("show", local_runs["old"], "-o", "json").stdout)
    doc["automation_id"] = None
    orphan = isolated / "orphan.json"
    orphan.write_text(json.dumps(doc))
    result = invoke("diff", str(orphan))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: run {local_runs['old']} names no automation, so there is no last good run to compare it with",
        f"hint: give the run to compare with: autorun diff {orphan} B",
    ]
    other = invoke("diff", str(orphan), local_runs["new"], "-o", "json")
    assert other.exit_code == 0  # the same steps and outcomes
    assert "warning: " in other.stderr and "different automations (none and shipping_notice)" in other.stderr.replace("\n", " ")
    assert json.loads(other.stdout)["same"] is True


# -- every provider over HTTP ------------------------------------------------------------

AUTOMATION = {"plannr": PLANNR_BLUEPRINT, "sendrealm": SENDREALM_AUTOMATION, "generic": GENERIC_AUTOMATION}
COMPLETED = {"plannr": "completed", "sendrealm": "completed", "tenant": "completed", "generic": "FINISHED"}
FAILED = {"plannr": "failed", "sendrealm": "failed", "tenant": "failed", "generic": "FAILED"}


def _same_automation(provider: str, i: int, j: int) -> bool:
    return provider != "tenant" or i % len(TENANT_RULES) == j % len(TENANT_RULES)


@pytest.mark.parametrize("provider", ["plannr", "sendrealm", "tenant", "generic"])
def test_every_provider_failed_run_against_its_last_good_run(api_server: ApiServer, provider):
    api_server.state.generate(provider, 40)
    i = next(k for k in range(40) if _status(provider, k) == FAILED[provider])
    j = next(k for k in range(i + 1, 40) if _status(provider, k) == COMPLETED[provider] and _same_automation(provider, i, k))
    env = api_server.env(provider, automation=AUTOMATION.get(provider))
    result = runner.invoke(app, ["diff", gen_id(provider, i), "-o", "json"], env=env)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    doc = json.loads(result.stdout)
    assert (doc["a"]["id"], doc["b"]["id"]) == (gen_id(provider, i), gen_id(provider, j))
    assert (doc["a"]["status"], doc["b"]["status"], doc["same"]) == ("failed", "completed", False)
    assert doc["fields"][0] == {"field": "status", "a": "failed", "b": "completed"}
    first = doc["first_difference"]
    assert first["field"] in ("status", "present")
    failed_row = next(r for r in doc["steps"] if r["changed"])
    assert (first["step"] == (failed_row["key"] or failed_row["name"]))
    if first["field"] == "status":
        assert (first["a"], first["b"]) == ("failed", "completed")
    # Explicit B: the same document.
    again = runner.invoke(app, ["diff", gen_id(provider, i), gen_id(provider, j), "--jq", ".first_difference"], env=env)
    assert json.loads(again.stdout) == first


def test_plannr_run_without_blueprint_needs_b(api_server: ApiServer):
    api_server.state.generate("plannr", 10)
    env = api_server.env("plannr")
    result = runner.invoke(app, ["diff", gen_id("plannr", 2)], env=env)
    assert result.exit_code == 2
    assert "names no automation" in result.stderr and "hint: give the run to compare with" in result.stderr
    both = runner.invoke(app, ["diff", gen_id("plannr", 2), gen_id("plannr", 0), "-o", "json"], env=env)
    doc = json.loads(both.stdout)
    # plannr steps have no key: matched by name.
    assert [r["name"] for r in doc["steps"]] == ["Send SMS", "Send email"]
    assert [r["key"] for r in doc["steps"]] == [None, None]
