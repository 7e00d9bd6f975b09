"""``autorun stats``: the aggregates (unit), the CLI on the local engine, and the four
providers over real HTTP with the bounded concurrent fetch."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path

import pytest
from apiserver import GENERIC_AUTOMATION, PLANNR_BLUEPRINT, SENDREALM_AUTOMATION, ApiServer, gen_id
from typer.testing import CliRunner

import autorun_cli.http as http_mod
from autorun_cli.cli.app import app
from autorun_cli.model import Run, RunError, Step, Wait
from autorun_cli.stats import MAX_ERROR_GROUPS, Stats, nearest_rank

TESTS = Path(__file__).resolve().parent
SHIPPING = TESTS / "fixtures" / "local" / "pack" / "shipping.toml"
ALWAYS_FAILS = TESTS / "fixtures" / "local" / "always_fails.toml"
runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))
    for var in ("AUTORUN_PROVIDER", "AUTORUN_BASE_URL", "AUTORUN_TOKEN", "AUTORUN_PROFILE", "AUTORUN_OUTPUT", "AUTORUN_CONCURRENCY",
                "AUTORUN_AUTOMATION_ID", "AUTORUN_TENANT_ID", "AUTORUN_ACCOUNT_UUID", "NO_COLOR", "AUTORUN_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(http_mod, "sleep", lambda s: None)
    return tmp_path


# -- the aggregates ------------------------------------------------------------------------


def test_nearest_rank():
    values = list(range(1, 21))  # 1..20
    assert nearest_rank(values, 50) == 10
    assert nearest_rank(values, 95) == 19
    assert nearest_rank(values, 100) == 20
    assert nearest_rank([7], 95) == 7
    assert nearest_rank([], 50) is None
    assert nearest_rank([1, 2, 3, 4], 50) == 2  # rank ceil(0.5 * 4) = 2, no interpolation


def _run(i: int, status: str, steps: list[Step], **kw) -> dict:
    return Run(id=f"r{i}", provider="local", status=status, steps=steps, created_at=f"2026-06-01T00:{i:02d}:00Z", **kw).to_json()


def test_counts_percentiles_rates_and_errors():
    s = Stats()
    for i in range(20):
        failed = i % 4 == 0  # 5 of 20
        steps = [Step(key="send", status="completed", duration_ms=i + 1)]
        if failed:
            steps += [Step(key="hook", status="failed", duration_ms=100, attempt=1), Step(key="hook", status="failed", duration_ms=300, attempt=2)]
        else:
            steps += [Step(key="hook", status="completed", duration_ms=50)]
        s.add(_run(i, "failed" if failed else "completed", steps, duration_ms=(i + 1) * 1000,
                   error=RunError(message="webhook 502" if i != 8 else "timeout", step="hook") if failed else None))
    s.add(_run(20, "running", [Step(key="send", status="running")]))  # no durations: left out of percentiles
    doc = s.to_json()
    assert doc["runs"] == 21
    assert doc["by_status"] == {"completed": 15, "failed": 5, "running": 1}
    assert list(doc["by_status"]) == ["completed", "failed", "running"]
    assert doc["duration_ms"] == {"p50": 10000, "p95": 19000, "max": 20000}
    send, hook = doc["steps"]
    assert send == {"key": "send", "name": None, "runs": 21, "failed": 0, "failure_rate": 0.0, "p50_ms": 10, "p95_ms": 19}
    # A retried step counts once, by its last attempt (300 ms, not 100).
    assert hook == {"key": "hook", "name": None, "runs": 20, "failed": 5, "failure_rate": 0.25, "p50_ms": 50, "p95_ms": 300}
    assert doc["errors"] == [
        {"message": "webhook 502", "step": "hook", "count": 4, "last_run_id": "r16"},
        {"message": "timeout", "step": "hook", "count": 1, "last_run_id": "r8"},
    ]
    assert doc["waits"] == []


def test_waits_timeout_rate_and_step_order_of_the_automation():
    s = Stats()
    statuses = ["received"] * 140 + ["timed_out"] * 45 + ["waiting"] * 5
    for i, st in enumerate(statuses):
        steps = [Step(key="send"), Step(key="wait")]
        if st == "timed_out":
            steps.append(Step(key="nudge"))  # only some runs reach it: still listed after "wait"
        steps.append(Step(key="end"))
        s.add(Run(id=f"r{i}", provider="x", status="completed", steps=steps,
                  waits=[Wait(step_key="wait", event="email.opened", status=st)]).to_json())
    doc = s.to_json()
    assert [st["key"] for st in doc["steps"]] == ["send", "wait", "nudge", "end"]
    assert doc["waits"] == [{"step_key": "wait", "event": "email.opened", "waits": 190, "received": 140, "timed_out": 45,
                             "waiting": 5, "timeout_rate": 0.2432}]
    assert doc["duration_ms"] == {"p50": None, "p95": None, "max": None}


def test_zero_runs_is_zeros():
    assert Stats().to_json() == {"runs": 0, "by_status": {}, "duration_ms": {"p50": None, "p95": None, "max": None},
                                 "steps": [], "waits": [], "errors": []}


def test_error_groups_are_bounded():
    s = Stats()
    for i in range(MAX_ERROR_GROUPS + 5):
        s.add({"id": f"r{i}", "status": "failed", "error": {"message": f"boom {i}", "step": None}})
    s.add({"id": "again", "status": "failed", "error": {"message": "boom 3"}})
    assert len(s.to_json()["errors"]) == MAX_ERROR_GROUPS
    assert s.errors_ungrouped == 5
    # No creation times: the first seen is the last run (listings are newest first).
    assert s.to_json()["errors"][0] == {"message": "boom 3", "step": None, "count": 2, "last_run_id": "r3"}


# -- the CLI on the local engine -------------------------------------------------------------


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def ok_json(*args: str) -> dict:
    result = invoke(*args, "-o", "json")
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture
def local_runs() -> None:
    """Shipping: 3 runs, 2 acknowledged (completed), 1 waiting; always_fails: 2 failed."""
    ok_json("automations", "load", str(SHIPPING))
    ok_json("automations", "load", str(ALWAYS_FAILS))
    for n, email in enumerate(("a@example.com", "b@example.com", "c@example.com")):
        ok_json("trigger", "order.shipped", "--payload", json.dumps({"customer": {"email": email}, "order_id": f"o{n}"}), "--id", f"s{n}")
    for n, email in enumerate(("a@example.com", "c@example.com")):
        assert invoke("events", "send", "shipment.acked", "--email", email, "--id", f"ack{n}").exit_code == 0
    for n in range(2):
        time.sleep(0.002)
        ok_json("trigger", "doomed.started", "--payload", json.dumps({"email": f"d{n}@example.com"}), "--id", f"d{n}")


def test_local_stats_json(local_runs):
    result = invoke("stats", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    doc = json.loads(result.stdout)
    assert set(doc) == {"runs", "by_status", "duration_ms", "steps", "waits", "errors"}
    assert doc["runs"] == 5
    assert doc["by_status"] == {"completed": 2, "failed": 2, "waiting": 1}
    assert set(doc["duration_ms"]) == {"p50", "p95", "max"} and doc["duration_ms"]["max"] is not None
    by_key = {s["key"]: s for s in doc["steps"]}
    assert list(by_key) == ["send_hello", "give_up", "send_notice", "wait_for_ack", "send_thanks"] or \
        list(by_key) == ["send_notice", "wait_for_ack", "send_thanks", "send_hello", "give_up"]
    assert {k: (v["runs"], v["failed"], v["failure_rate"]) for k, v in by_key.items()} == {
        "send_notice": (3, 0, 0.0), "wait_for_ack": (3, 0, 0.0), "send_thanks": (2, 0, 0.0),
        "send_hello": (2, 0, 0.0), "give_up": (2, 2, 1.0),
    }
    for step in doc["steps"]:
        assert set(step) == {"key", "name", "runs", "failed", "failure_rate", "p50_ms", "p95_ms"}
    assert doc["waits"] == [{"step_key": "wait_for_ack", "event": "shipment.acked", "waits": 3, "received": 2,
                             "timed_out": 0, "waiting": 1, "timeout_rate": 0.0}]
    [err] = doc["errors"]
    newest_failed = invoke("list", "--status", "failed", "-n", "1", "-o", "id").stdout.strip()
    assert err == {"message": err["message"], "step": "give_up", "count": 2, "last_run_id": newest_failed}
    assert "the payload asked for a failure" in err["message"]


def test_local_selection_flags_and_zero_runs(local_runs):
    assert ok_json("stats", "--status", "failed")["runs"] == 2
    assert ok_json("stats", "--automation", "shipping_notice")["by_status"] == {"completed": 2, "waiting": 1}
    assert ok_json("stats", "--limit", "2")["runs"] == 2
    assert ok_json("stats", "--all")["runs"] == 5
    none = invoke("stats", "--status", "cancelled", "-o", "json")
    assert none.exit_code == 0
    assert json.loads(none.stdout) == {"runs": 0, "by_status": {}, "duration_ms": {"p50": None, "p95": None, "max": None},
                                       "steps": [], "waits": [], "errors": []}
    assert none.stderr.startswith("note: no runs match")
    bad = invoke("stats", "--status", "nope")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: unknown status")
    assert invoke("stats", "--since", "yesterday-ish").exit_code == 2


def test_local_pages_in_full_are_what_each_run_reads_alone(local_runs, isolated):
    """stats reads local pages whole (one statement per table per page): the same runs
    as one get_run each, messages, logs, waits and all."""
    from autorun_cli.engine import Engine

    engine = Engine.open(isolated / "home")
    try:
        page = engine.list_runs(limit=10, full=True)
        assert len(page) == 5
        assert page == [engine.get_run(r["id"]) for r in page]
        assert any(r["messages"] for r in page) and any(r["logs"] for r in page) and any(r["waits"] for r in page)
    finally:
        engine.close()


def test_local_dashboard_at_80_columns(local_runs):
    result = invoke("stats", env={"COLUMNS": "80"})
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("5 runs")
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    give_up = next(line for line in lines if line.startswith("give_up"))
    assert "100.0%" in give_up and "█" in give_up
    assert any(line.startswith("wait_for_ack") and "shipment.acked" in line for line in lines)
    assert "Top errors" in result.stdout
    assert "█" not in result.stderr and result.stderr == ""


# -- every provider over HTTP --------------------------------------------------------------

AUTOMATION = {"plannr": PLANNR_BLUEPRINT, "sendrealm": SENDREALM_AUTOMATION, "generic": GENERIC_AUTOMATION}
N = 60


def _expected(runs: list[dict]) -> dict:
    """The aggregates computed the plain way from `show -o json` of every run."""
    by_status = Counter(r["status"] for r in runs)
    steps: dict[str, dict] = {}
    for r in runs:
        last = {}
        for i, st in enumerate(r["steps"], 1):
            last[st["key"] or st["name"] or i] = st
        for ident, st in last.items():
            e = steps.setdefault(ident, {"runs": 0, "failed": 0, "d": []})
            e["runs"] += 1
            e["failed"] += st["status"] == "failed"
            if st["duration_ms"] is not None:
                e["d"].append(st["duration_ms"])
    durations = sorted(r["duration_ms"] for r in runs if r["duration_ms"] is not None)

    def pct(values, p):
        values = sorted(values)
        return values[math.ceil(p / 100 * len(values)) - 1] if values else None

    return {
        "by_status": dict(by_status),
        "p50": pct(durations, 50), "p95": pct(durations, 95),
        "steps": {k: (v["runs"], v["failed"], pct(v["d"], 50), pct(v["d"], 95)) for k, v in steps.items()},
        "errors": Counter(r["error"]["message"] for r in runs if r["error"] and r["error"]["message"]),
    }


@pytest.mark.parametrize("provider", ["plannr", "sendrealm", "tenant", "generic"])
def test_every_provider(api_server: ApiServer, provider):
    api_server.state.generate(provider, N)
    env = api_server.env(provider, automation=AUTOMATION.get(provider), COLUMNS="100")
    ids = [gen_id(provider, i) for i in range(N)]
    shown = runner.invoke(app, ["show", *ids, "-o", "json"], env=env)
    runs = json.loads(shown.stdout)
    if provider == "tenant":  # the tenant list also holds the seeds of other rules: count what stats counts
        runs = json.loads(runner.invoke(app, ["list", "--all", "-o", "json"], env=env).stdout)
        runs = json.loads(runner.invoke(app, ["show", *[r["id"] for r in runs], "-o", "json"], env=env).stdout)
    want = _expected(runs)
    api_server.clear_requests()
    result = runner.invoke(app, ["stats", "--all", "-o", "json"], env=env)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["runs"] == len(runs)
    assert doc["by_status"] == want["by_status"]
    assert (doc["duration_ms"]["p50"], doc["duration_ms"]["p95"]) == (want["p50"], want["p95"])
    got = {(s["key"] or s["name"]): (s["runs"], s["failed"], s["p50_ms"], s["p95_ms"]) for s in doc["steps"]}
    assert got == want["steps"]
    for s in doc["steps"]:
        assert s["failure_rate"] == round(s["failed"] / s["runs"], 4)
    assert {e["message"]: e["count"] for e in doc["errors"]} == dict(want["errors"])
    # Every run was read in full: one GET of each, besides the list pages.
    singles = [r for r in api_server.requests if r["method"] == "GET" and any(r["path"].endswith(i) or r["path"].endswith(i + "/") for i in (x["id"] for x in runs))]
    assert len(singles) == len(runs)


def test_sendrealm_waits_and_errors_last_run(api_server: ApiServer):
    api_server.state.generate("sendrealm", N)
    env = api_server.env("sendrealm", automation=SENDREALM_AUTOMATION)
    doc = json.loads(runner.invoke(app, ["stats", "--limit", "30", "-o", "json"], env=env).stdout)
    assert doc["runs"] == 30
    [wait] = doc["waits"]
    assert wait["step_key"] == "wait_for_open" and wait["event"] == "sendrealm.mail.open"
    # Failed sendrealm runs never reach their wait; every other run has one.
    assert wait["waits"] == 30 - doc["by_status"].get("failed", 0)
    assert wait["received"] + wait["timed_out"] + wait["waiting"] <= wait["waits"]
    assert wait["timeout_rate"] == round(wait["timed_out"] / (wait["received"] + wait["timed_out"]), 4)
    [err] = doc["errors"]
    assert err["message"] == "Template variable 'order.total' is missing" and err["step"] == "send_receipt"
    # The newest failed run among the 30 newest (gen index 0 is the newest).
    failed = runner.invoke(app, ["list", "--status", "failed", "-n", "1", "-o", "id"], env=env).stdout.strip()
    assert err["last_run_id"] == failed


def test_a_run_that_cannot_be_read_is_reported_and_the_rest_counted(api_server: ApiServer):
    api_server.state.generate("sendrealm", 20)
    env = api_server.env("sendrealm", automation=SENDREALM_AUTOMATION)
    api_server.faults.error(status=404, path="/automation-runs/" + gen_id("sendrealm", 3))
    result = runner.invoke(app, ["stats", "--all", "-o", "json"], env=env)
    assert result.exit_code == 3
    assert json.loads(result.stdout)["runs"] == 19
    lines = result.stderr.splitlines()
    assert lines[0] == "warning: 1 run(s) could not be read and are not counted"
    assert lines[1].startswith("error: ")
