"""The local provider and the local engine's commands, driven through the CLI.

Everything runs in-process with CliRunner on a temporary ``$AUTORUN_HOME``, once with
the engine's default SQLite store and once on PostgreSQL (``AUTORUN_ENGINE_URL``, a
fresh schema per test). The SQLite demo home is built once per module and copied for
the tests that read it (the demo's failing webhook waits for its retries, about a
second); on PostgreSQL those tests run the demo in their own schema.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autorun_cli.cli.app import app

TESTS = Path(__file__).resolve().parent
LOCAL = TESTS / "fixtures" / "local"
PACK = LOCAL / "pack"
SHIPPING = PACK / "shipping.toml"
QUICK = PACK / "quick_timeout.toml"
ALWAYS_FAILS = LOCAL / "always_fails.toml"
SEED_RUN = TESTS / "fixtures" / "seeds" / "sendrealm_run.json"
REPLAY_DEF = TESTS / "fixtures" / "replay" / "order_receipt.toml"
REPLAY_SHORT = TESTS / "fixtures" / "replay" / "order_receipt_short_wait.toml"

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def _clean_env(monkeypatch, config: Path, home: Path) -> None:
    monkeypatch.setenv("AUTORUN_CONFIG", str(config))
    monkeypatch.setenv("AUTORUN_HOME", str(home))
    for var in ("AUTORUN_PROVIDER", "AUTORUN_BASE_URL", "AUTORUN_TOKEN", "AUTORUN_PROFILE", "AUTORUN_OUTPUT",
                "AUTORUN_AUTOMATION_ID", "AUTORUN_TENANT_ID", "AUTORUN_ACCOUNT_UUID", "NO_COLOR", "AUTORUN_DEBUG",
                "AUTORUN_ENGINE_URL"):
        monkeypatch.delenv(var, raising=False)


# Tests that never open the engine's store run once.
STORE_FREE = {"test_automations_validate_refuses_bad_files_with_field_path", "test_automations_validate_good_files",
              "test_replay_sendrealm_seed_against_definitions", "test_replay_refusals"}


def pytest_generate_tests(metafunc) -> None:
    kinds = ["sqlite"] if metafunc.function.__name__ in STORE_FREE else ["sqlite", "postgres"]
    metafunc.parametrize("store_kind", kinds, indirect=True)


@pytest.fixture(autouse=True)
def store_kind(request, monkeypatch) -> str:
    """Every test runs on both stores: PostgreSQL through AUTORUN_ENGINE_URL."""
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
        request.getfixturevalue("isolated")  # its env first, then the store's URL
        monkeypatch.setenv("AUTORUN_ENGINE_URL", url)
    return request.param


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    _clean_env(monkeypatch, tmp_path / "config.toml", tmp_path / "home")
    return tmp_path


def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input, env=env)


def ok(*args: str, input: str | None = None, env: dict[str, str] | None = None):
    result = invoke(*args, input=input, env=env)
    assert result.exit_code == 0, (args, result.exit_code, result.stdout, result.stderr)
    return result


def as_json(*args: str, input: str | None = None):
    return json.loads(ok(*args, "-o", "json", input=input).stdout)


def fails(code: int, *args: str, input: str | None = None):
    result = invoke(*args, input=input)
    assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    return result


def run_json(run_id: str) -> dict:
    return as_json("show", run_id)


def trigger(event: str, payload: dict, event_id: str) -> list[str]:
    return as_json("trigger", event, "--payload", json.dumps(payload), "--id", event_id)["runs"]


def messages(run: dict, step_key: str) -> list[dict]:
    return [m for m in run["messages"] if m["step_key"] == step_key]


# -- the demo home, built once -------------------------------------------------------

@pytest.fixture(scope="module")
def demo_master(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    mp = pytest.MonkeyPatch()
    try:
        _clean_env(mp, base / "config.toml", base / "home")
        result = runner.invoke(app, ["demo", "-o", "json"])
        assert result.exit_code == 0, (result.stdout, result.stderr)
        summary = json.loads(result.stdout)
    finally:
        mp.undo()
    return base / "home", summary


@pytest.fixture
def demo_home(store_kind, isolated, request):
    """A private copy of the demo's home, so a test may change its runs (on
    PostgreSQL: the demo, run in the test's own schema)."""
    if store_kind == "postgres":
        return as_json("demo")
    master, summary = request.getfixturevalue("demo_master")
    shutil.copytree(master, isolated / "home")
    return summary


def by_status(runs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for run in runs:
        out.setdefault(run["status"], []).append(run)
    return out


# -- demo -----------------------------------------------------------------------------

def test_demo_on_empty_home_ends_every_way_and_twice_adds_nothing(isolated):
    first = invoke("demo", env=WIDE)
    assert first.exit_code == 0, first.stderr
    assert "started 5 runs" in first.stderr
    runs = as_json("list")
    statuses = by_status(runs)
    for status in ("completed", "waiting", "timed_out", "failed"):
        assert statuses.get(status), f"demo left no {status} run: {[r['status'] for r in runs]}"
    # The table names every run and every ending.
    for run in runs:
        assert run["id"] in first.stdout
    for word in ("completed", "waiting", "timed_out", "failed", "Welcome pack", "Order receipt", "Invoice webhook"):
        assert word in first.stdout
    assert "autorun show " in first.stdout and "next:" in first.stdout

    again = invoke("demo", env=WIDE)
    assert again.exit_code == 0, again.stderr
    assert "nothing new started" in again.stderr
    rerun = as_json("list")
    assert sorted(r["id"] for r in rerun) == sorted(r["id"] for r in runs)
    assert len(rerun) == len(runs) == 5
    # Nothing was sent twice: each run still has the messages it had.
    assert {r["id"]: len(r["messages"]) for r in rerun} == {r["id"]: len(r["messages"]) for r in runs}


def test_demo_json_is_one_document(demo_master):
    _, summary = demo_master
    assert summary["started"] == 5
    assert {d["id"] for d in summary["definitions"]} == {"welcome_pack", "order_receipt", "invoice_webhook"}
    assert [r["status"] for r in summary["runs"]] == [r["expected"] for r in summary["runs"]]
    for entry in summary["runs"]:
        assert entry["run"]["id"] == entry["run_id"]
        assert entry["run"]["provider"] == "local"


def test_demo_json_again_reports_the_same_runs_as_not_new(demo_home):
    result = ok("demo", "-o", "json")
    doc = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert doc["started"] == 0
    assert [r["run_id"] for r in doc["runs"]] == [r["run_id"] for r in demo_home["runs"]]
    assert not any(r["new"] for r in doc["runs"])


# -- list / show on local ------------------------------------------------------------

def test_list_status_filter_sort_and_limit(demo_home):
    failed = as_json("list", "--status", "failed,timed_out")
    assert sorted(r["status"] for r in failed) == ["failed", "timed_out"]
    assert as_json("list", "--status", "waiting")[0]["name"] == "Order receipt"
    names = [r["name"] for r in as_json("list", "--sort", "name")]
    assert names == sorted(names) and len(names) == 5
    desc = [r["name"] for r in as_json("list", "--sort", "-name")]
    assert desc == sorted(names, reverse=True)
    limited = as_json("list", "--limit", "2")
    assert len(limited) == 2
    newest_first = as_json("list")
    assert [r["id"] for r in limited] == [r["id"] for r in newest_first[:2]]
    created = [r["created_at"] for r in newest_first]
    assert created == sorted(created, reverse=True)


def test_list_ndjson_one_full_run_per_line_and_ids(demo_home):
    result = ok("list", "-o", "ndjson")
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    docs = [json.loads(line) for line in lines]
    assert all(doc["steps"] for doc in docs)
    assert {doc["status"] for doc in docs} >= {"completed", "waiting", "timed_out", "failed"}
    ids = ok("list", "-o", "id").stdout.split("\n")
    assert ids[-1] == "" and ids[:-1] == [doc["id"] for doc in docs]


def test_show_json_has_timeline_waits_messages_logs(demo_home):
    opened = next(r for r in demo_home["runs"] if r["label"] == "receipt, opened")
    run = run_json(opened["run_id"])
    assert [s["key"] for s in run["steps"]] == ["send_receipt", "wait_for_open", "send_push_follow_up"]
    assert [s["status"] for s in run["steps"]] == ["completed"] * 3
    [wait] = run["waits"]
    assert (wait["status"], wait["branch"], wait["event"]) == ("received", "received", "email.opened")
    assert wait["resumed_by_event"]["id"] == "demo-open-1001"
    assert sorted(m["channel"] for m in run["messages"]) == ["email", "push"]
    assert run["logs"] and run["logs"][-1]["message"] == "run completed"
    assert run["duration_ms"] == 90_000
    failed = run_json(next(r["run_id"] for r in demo_home["runs"] if r["status"] == "failed"))
    assert failed["error"]["step"] == "notify_accounting"
    assert [s["attempt"] for s in failed["steps"]] == [1, 2, 3]


def test_show_latest_and_table(demo_home):
    newest = as_json("list", "--limit", "1")[0]
    assert run_json("@latest")["id"] == newest["id"]
    table = ok("show", newest["id"], env=WIDE)
    assert newest["id"] in table.stdout and "Steps" in table.stdout


def test_show_unknown_and_malformed_ids(demo_home):
    missing = fails(3, "show", "run_does_not_exist")
    assert "no local run 'run_does_not_exist'" in missing.stderr
    assert "hint: " in missing.stderr
    bad = fails(2, "show", "run id with spaces")
    assert "malformed run ID" in bad.stderr


def test_show_several_ids_and_list_filters_by_automation_and_time(demo_home):
    ids = [r["run_id"] for r in demo_home["runs"]]
    shown = as_json("show", ids[0], ids[-1])
    assert [r["id"] for r in shown] == [ids[0], ids[-1]]
    receipts = as_json("list", "--automation", "order_receipt")
    assert len(receipts) == 3 and {r["automation_id"] for r in receipts} == {"order_receipt"}
    # The never-opened receipt started 31 minutes ago (the demo's virtual clock).
    recent = as_json("list", "--since", "10m")
    timed_out = next(r["run_id"] for r in demo_home["runs"] if r["status"] == "timed_out")
    assert len(recent) == 4 and timed_out not in {r["id"] for r in recent}
    run = run_json(timed_out)
    [wait] = run["waits"]
    assert (wait["status"], wait["timed_out_at"] is not None, wait["resumed_at"]) == ("timed_out", True, None)
    assert run["duration_ms"] == 30 * 60 * 1000


# -- automations --------------------------------------------------------------------

def test_automations_load_versions_and_unchanged(isolated):
    copy = isolated / "shipping.toml"
    copy.write_text(SHIPPING.read_text())
    first = ok("automations", "load", copy)
    assert "shipping_notice: loaded as version 1" in first.stderr
    again = ok("automations", "load", copy)
    assert "shipping_notice: unchanged (version 1)" in again.stderr
    copy.write_text(SHIPPING.read_text().replace('timeout = "30m"', 'timeout = "45m"'))
    changed = as_json("automations", "load", copy)
    assert [(r["id"], r["version"], r["created"]) for r in changed] == [("shipping_notice", 2, True)]
    listed = as_json("automations", "list")
    assert [(d["id"], d["version"]) for d in listed] == [("shipping_notice", 2)]
    every = as_json("automations", "list", "--all-versions")
    assert sorted(d["version"] for d in every) == [1, 2]
    # A comment-only change is not a new version (the digest is of the parsed spec).
    copy.write_text("# just a comment\n" + copy.read_text())
    assert as_json("automations", "load", copy)[0]["created"] is False


def test_automations_load_dir_list_show(isolated):
    loaded = as_json("automations", "load", PACK)
    assert sorted((r["id"], r["version"], r["created"]) for r in loaded) == [
        ("quick_reminder", 1, True), ("shipping_notice", 1, True)]
    listed = as_json("automations", "list")
    assert {d["id"]: d["trigger"] for d in listed} == {"quick_reminder": "ping.sent", "shipping_notice": "order.shipped"}
    shown = as_json("automations", "show", "shipping_notice")
    assert [s["key"] for s in shown["steps"]] == ["send_notice", "wait_for_ack", "send_thanks"]
    assert shown["source"] == SHIPPING.read_text()
    table = ok("automations", "show", "shipping_notice", env=WIDE)
    assert "wait_for_event" in table.stdout and "Shipping notice" in table.stdout
    missing = fails(3, "automations", "show", "no_such_automation")
    assert "no_such_automation" in missing.stderr


def test_automations_load_is_all_or_nothing(isolated):
    mixed = isolated / "mixed"
    mixed.mkdir()
    shutil.copy(SHIPPING, mixed)
    shutil.copy(LOCAL / "bad" / "bad_duration.toml", mixed)
    result = fails(2, "automations", "load", mixed)
    assert "bad_duration.toml: steps[1].timeout" in result.stderr
    assert as_json("automations", "list") == []
    # The same with the files named one by one: the good one is not stored either.
    result = fails(2, "automations", "load", SHIPPING, LOCAL / "bad" / "bad_duration.toml")
    assert "steps[1].timeout" in result.stderr
    assert as_json("automations", "list") == []


def test_automations_list_empty_home_says_how_to_load(isolated):
    result = ok("automations", "list")
    assert result.stdout == ""
    assert "automations load" in result.stderr
    assert as_json("automations", "list") == []


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("duplicate_key.toml", "steps[1].key: duplicate key 'greet'"),
        ("dangling_next.toml", "steps[0].next: no step has the key 'nowhere'"),
        ("bad_duration.toml", "steps[1].timeout: not a duration"),
    ],
)
def test_automations_validate_refuses_bad_files_with_field_path(name, field):
    result = fails(2, "automations", "validate", LOCAL / "bad" / name)
    first_line = result.stderr.splitlines()[0]
    assert field in first_line
    assert name in first_line
    assert result.stderr.splitlines()[1].startswith("hint: ")
    assert len(result.stderr.splitlines()) == 2
    # A bad file is not loaded either.
    fails(2, "automations", "load", LOCAL / "bad" / name)
    assert as_json("automations", "list") == []


def test_automations_validate_good_files(isolated):
    result = ok("automations", "validate", PACK, ALWAYS_FAILS)
    assert "valid: " in result.stderr and result.stderr.count("valid: ") == 3
    checked = as_json("automations", "validate", SHIPPING)
    assert checked == [{"id": "shipping_notice", "name": "Shipping notice", "trigger": "order.shipped", "steps": 3, "path": str(SHIPPING),
                        "warnings": ["steps[0].subject: {{ payload.order_id }}: step send_notice fails when the order.shipped"
                                     " payload has no order_id"]}]
    # validate loads nothing
    assert as_json("automations", "list") == []
    fails(2, "automations", "validate", LOCAL / "no_such_file.toml")


# -- trigger ----------------------------------------------------------------------------

def test_trigger_starts_a_run_once_per_event_id(isolated):
    ok("automations", "load", SHIPPING)
    payload = json.dumps({"order_id": "o-1", "customer": {"email": "ann@example.com"}})
    first = ok("trigger", "order.shipped", "--payload", payload, "--id", "evt-1")
    [line] = first.stdout.splitlines()
    run_id, status = line.split()
    assert run_id.startswith("run_") and status == "waiting"
    assert "started 1 run" in first.stderr
    run = run_json(run_id)
    assert run["trigger"]["id"] == "evt-1" and run["identity"]["value"] == "ann@example.com"
    assert [m["title"] for m in run["messages"]] == ["Order o-1 has shipped"]

    again = ok("trigger", "order.shipped", "--payload", payload, "--id", "evt-1")
    assert again.stdout == ""
    assert "duplicate event evt-1" in again.stderr
    doc = as_json("trigger", "order.shipped", "--payload", payload, "--id", "evt-1")
    assert (doc["duplicate"], doc["runs"]) == (True, [])
    assert [r["id"] for r in as_json("list")] == [run_id]

    # -o id prints just the new run's id; a new event id starts a second run.
    other = ok("trigger", "order.shipped", "--payload", payload, "--id", "evt-2", "-o", "id")
    assert other.stdout.strip() in {r["id"] for r in as_json("list")}
    assert len(as_json("list")) == 2


def test_trigger_starts_every_automation_on_the_event_and_events_resume_each(isolated):
    second = isolated / "audit.toml"
    second.write_text(SHIPPING.read_text().replace('id = "shipping_notice"', 'id = "shipping_audit"')
                      .replace('name = "Shipping notice"', 'name = "Shipping audit"'))
    ok("automations", "load", SHIPPING, second)
    doc = as_json("trigger", "order.shipped", "--payload", json.dumps({"order_id": "o-m", "customer": {"email": "mo@example.com"}}), "--id", "evt-m")
    assert len(doc["runs"]) == 2
    assert sorted(run_json(r)["automation_id"] for r in doc["runs"]) == ["shipping_audit", "shipping_notice"]
    sent = as_json("events", "send", "shipment.acked", "--payload", '{"email": "mo@example.com"}', "--id", "ack-m")
    assert sorted(sent["resumed"]) == sorted(doc["runs"]) and sent["deduplicated"] is False
    assert {run_json(r)["status"] for r in doc["runs"]} == {"completed"}


def test_trigger_payload_from_file(isolated):
    ok("automations", "load", SHIPPING)
    payload = isolated / "payload.json"
    payload.write_text(json.dumps({"order_id": "o-9", "customer": {"email": "bo@example.com"}}))
    [run_id] = as_json("trigger", "order.shipped", "--payload", f"@{payload}", "--id", "evt-f")["runs"]
    assert run_json(run_id)["identity"]["value"] == "bo@example.com"
    # @- reads the payload from stdin.
    piped = ok("trigger", "order.shipped", "--payload", "@-", "--id", "evt-stdin", "-o", "id",
               input=json.dumps({"order_id": "o-10", "customer": {"email": "cat@example.com"}}))
    assert run_json(piped.stdout.strip())["identity"]["value"] == "cat@example.com"


def test_trigger_unknown_event_and_bad_payload(isolated):
    ok("automations", "load", SHIPPING)
    nobody = fails(3, "trigger", "nobody.listens", "--payload", "{}", "--id", "evt-x")
    assert "no automation is triggered by 'nobody.listens'" in nobody.stderr
    assert "hint: " in nobody.stderr and "automations" in nobody.stderr
    bad = fails(2, "trigger", "order.shipped", "--payload", "{not json", "--id", "evt-y")
    assert "--payload is not valid JSON" in bad.stderr
    fails(2, "trigger", "order.shipped", "--payload", "[1, 2]")
    fails(2, "trigger", "order.shipped", "--payload", "@/no/such/payload.json")
    assert as_json("list") == []
    # The refused event IDs were not recorded: they can start runs now.
    assert len(trigger("order.shipped", {"order_id": "o", "customer": {"email": "c@example.com"}}, "evt-y")) == 1


def test_trigger_with_nothing_loaded_and_missing_identity(isolated):
    nothing = fails(3, "trigger", "order.shipped", "--payload", "{}")
    assert "automations load" in nothing.stderr
    ok("automations", "load", SHIPPING)
    [run_id] = trigger("order.shipped", {"order_id": "o-7"}, "evt-noid")
    run = run_json(run_id)
    assert run["status"] == "failed"
    assert "the payload has no customer.email" in run["error"]["message"]
    assert run["messages"] == []
    table = ok("show", run_id, env=WIDE)
    assert "customer.email" in table.stdout


# -- events send ----------------------------------------------------------------------

def test_events_send_resumes_a_waiting_run_once(isolated):
    ok("automations", "load", SHIPPING)
    [run_id] = trigger("order.shipped", {"order_id": "o-2", "customer": {"email": "cy@example.com"}}, "evt-s")
    assert run_json(run_id)["status"] == "waiting"
    # An event for someone else resumes nothing.
    other = ok("events", "send", "shipment.acked", "--payload", '{"email": "zed@example.com"}', "--id", "ack-0")
    assert other.stdout == "" and "no waiting run matched" in other.stderr
    sent = ok("events", "send", "shipment.acked", "--payload", '{"email": "cy@example.com"}', "--id", "ack-1")
    assert sent.stdout.splitlines() == [run_id]
    assert "resumed 1 run" in sent.stderr
    run = run_json(run_id)
    assert run["status"] == "completed"
    assert [s["key"] for s in run["steps"]] == ["send_notice", "wait_for_ack", "send_thanks"]
    [wait] = run["waits"]
    assert (wait["status"], wait["resumed_by_event"]["id"]) == ("received", "ack-1")
    assert len(messages(run, "send_thanks")) == 1

    dup = ok("events", "send", "shipment.acked", "--payload", '{"email": "cy@example.com"}', "--id", "ack-1")
    assert dup.stdout == ""
    assert "duplicate event" in dup.stderr
    doc = as_json("events", "send", "shipment.acked", "--payload", '{"email": "cy@example.com"}', "--id", "ack-1")
    assert (doc["deduplicated"], doc["resumed"]) == (True, [])
    assert len(messages(run_json(run_id), "send_thanks")) == 1


def test_events_send_resumes_the_demo_waiting_receipt(demo_home):
    waiting = next(r for r in demo_home["runs"] if r["status"] == "waiting")
    identity = run_json(waiting["run_id"])["identity"]["value"]
    sent = ok("events", "send", "email.opened", "--payload", json.dumps({"email": identity}), "--id", "open-1002")
    assert sent.stdout.split() == [waiting["run_id"]]
    assert run_json(waiting["run_id"])["status"] == "completed"


def test_events_send_by_email_with_a_generated_key(isolated):
    ok("automations", "load", SHIPPING)
    [run_id] = trigger("order.shipped", {"order_id": "o-8", "customer": {"email": "lee@example.com"}}, "evt-e")
    sent = ok("events", "send", "shipment.acked", "--email", "lee@example.com")
    assert sent.stdout.split() == [run_id]
    assert "idempotency key: autorun-" in sent.stderr
    run = run_json(run_id)
    assert run["status"] == "completed"
    key = sent.stderr.split("idempotency key: ")[1].split()[0]
    assert run["waits"][0]["resumed_by_event"]["id"] == key


# -- engine work and real timers -------------------------------------------------------

def test_engine_work_fires_due_timeouts(isolated):
    ok("automations", "load", QUICK)
    [run_id] = trigger("ping.sent", {"email": "dee@example.com"}, "ping-1")
    idle = as_json("engine", "work")
    assert idle["timers_fired"] == 0 and idle["next_due"] is not None
    time.sleep(1.2)  # the wait's 1 s timeout is due on the engine's real clock
    fired = ok("engine", "work")
    assert fired.stderr.startswith("fired 1 timer, recovered 0 runs, sent 0 HTTP requests; no timers pending"), fired.stderr
    assert fired.stdout == ""
    doc = as_json("engine", "work")
    assert doc["timers_fired"] == 0 and doc["next_due"] is None
    run = run_json(run_id)
    assert run["status"] == "timed_out"
    assert run["waits"][0]["status"] == "timed_out"
    # A matching event after the timeout does not reopen the wait.
    late = ok("events", "send", "pong.received", "--payload", '{"email": "dee@example.com"}', "--id", "pong-1")
    assert late.stdout == ""
    assert run_json(run_id)["status"] == "timed_out"
    table = ok("engine", "work")
    assert "fired 0 timers" in table.stderr and "no timers pending" in table.stderr


def test_watch_drives_local_timers_to_timeout(isolated, monkeypatch):
    from autorun_cli.cli import following as follow

    monkeypatch.setattr(follow, "sleep", time.sleep)
    # A 2 s wait (the pack's is 1 s): on a loaded machine the first poll must still
    # find it waiting.
    slower = isolated / "quick_2s.toml"
    slower.write_text(QUICK.read_text().replace('timeout = "1s"', 'timeout = "2s"'))
    ok("automations", "load", slower)
    [run_id] = trigger("ping.sent", {"email": "eve@example.com"}, "ping-w")
    result = invoke("watch", run_id, "--interval", "0.2", "--timeout", "10")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stdout.splitlines()
    assert lines[0].split()[1:] == [run_id, "-", "waiting"]
    assert lines[-1].split()[1:] == [run_id, "-", "timed_out"]
    assert f"run {run_id} ended timed_out" in result.stderr
    assert run_json(run_id)["status"] == "timed_out"


# -- retry / cancel ---------------------------------------------------------------------

def test_retry_failed_run_does_not_resend_completed_steps(isolated):
    ok("automations", "load", ALWAYS_FAILS)
    [run_id] = trigger("doomed.started", {"email": "fay@example.com"}, "doom-1")
    run = run_json(run_id)
    assert run["status"] == "failed" and run["error"]["step"] == "give_up"
    assert len(messages(run, "send_hello")) == 1
    result = ok("retry", run_id)
    assert result.stdout.strip() == run_id
    assert f"retried {run_id}" in result.stderr
    after = run_json(run_id)
    assert after["status"] == "failed"  # the fail step fails again
    assert len(messages(after, "send_hello")) == 1
    assert [s["key"] for s in after["steps"]].count("send_hello") == 1
    assert [s["key"] for s in after["steps"]].count("give_up") == 2
    assert any("retried from step give_up" in entry["message"] for entry in after["logs"])


def test_retry_wait_follows_the_retried_run(isolated, monkeypatch):
    from autorun_cli.cli import following as follow

    monkeypatch.setattr(follow, "sleep", time.sleep)
    ok("automations", "load", ALWAYS_FAILS)
    [run_id] = trigger("doomed.started", {"email": "max@example.com"}, "doom-w")
    result = invoke("retry", run_id, "--wait", "--interval", "0.1", "--timeout", "10")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stdout.splitlines()[0] == run_id
    assert f"run {run_id} ended failed: step give_up failed: the payload asked for a failure" in result.stderr
    doc = invoke("retry", run_id, "--wait", "-o", "json")
    assert doc.exit_code == 1
    assert json.loads(doc.stdout)["status"] == "failed"
    assert len(messages(run_json(run_id), "send_hello")) == 1


def test_watch_ended_local_runs_returns_at_once(demo_home):
    done = [r["run_id"] for r in demo_home["runs"] if r["status"] == "completed"]
    failed = next(r["run_id"] for r in demo_home["runs"] if r["status"] == "failed")
    assert ok("watch", *done).stdout.count(" - completed") == len(done)
    both = invoke("watch", done[0], failed, "-o", "json")
    assert both.exit_code == 1
    assert [r["status"] for r in json.loads(both.stdout)] == ["completed", "failed"]
    assert f"run {failed} ended failed" in both.stderr


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        _Hook.received.append({"key": self.headers.get("Idempotency-Key"), "body": json.loads(self.rfile.read(length))})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_port():
    """A port bound on 127.0.0.1 but not listening yet (connections are refused);
    ``start()`` makes it answer 200."""
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook, bind_and_activate=False)
    server.server_bind()
    thread: list[threading.Thread] = []

    def start():
        server.server_activate()
        t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        t.start()
        thread.append(t)

    try:
        yield server.server_address[1], start
    finally:
        if thread:
            server.shutdown()
        server.server_close()


def test_retry_resumes_at_the_failed_http_step_and_completes(isolated, webhook_port):
    port, start = webhook_port
    definition = isolated / "hook.toml"
    definition.write_text(f"""
id = "paid_hook"
name = "Paid hook"
trigger = "invoice.settled"
identity = {{ type = "email", from = "email" }}

[[steps]]
key = "send_receipt"
type = "send_email_template"
template = "receipt"
subject = "Paid"

[[steps]]
key = "notify"
type = "http_request"
url = "http://127.0.0.1:{port}/hook"
body = {{ invoice = "{{{{ payload.invoice }}}}" }}
timeout = "2s"

[[steps]]
key = "send_done"
type = "send_push_template"
template = "done"
title = "Done"
""")
    ok("automations", "load", definition)
    [run_id] = trigger("invoice.settled", {"email": "gus@example.com", "invoice": "inv-5"}, "paid-1")
    failed = run_json(run_id)
    assert failed["status"] == "failed" and failed["error"]["step"] == "notify"
    assert "retry it with `autorun retry" in invoke("cancel", run_id).stderr
    start()
    result = ok("retry", run_id, "-o", "id")
    assert result.stdout == run_id + "\n"
    run = run_json(run_id)
    assert run["status"] == "completed"
    assert len(messages(run, "send_receipt")) == 1
    assert len(messages(run, "send_done")) == 1
    assert [(s["key"], s["status"]) for s in run["steps"]] == [
        ("send_receipt", "completed"), ("notify", "failed"), ("notify", "completed"), ("send_done", "completed")]
    # The retried request carries the step's idempotency key, the same on every attempt.
    assert _Hook.received == [{"key": f"{run_id}:notify", "body": {"invoice": "inv-5"}}]


def test_retry_refuses_completed_and_waiting_runs(isolated):
    ok("automations", "load", SHIPPING)
    [run_id] = trigger("order.shipped", {"order_id": "o-3", "customer": {"email": "hal@example.com"}}, "evt-r")
    waiting = fails(4, "retry", run_id)
    assert "is waiting" in waiting.stderr and "--force" in waiting.stderr
    # --force restarts the current step of a waiting run: the email is not sent again.
    ok("retry", run_id, "--force")
    forced = run_json(run_id)
    assert forced["status"] == "waiting"
    assert len(messages(forced, "send_notice")) == 1
    # The restarted wait is open again; the first one was closed: cancelled.
    assert [w["status"] for w in forced["waits"]] == ["cancelled", "waiting"]
    ok("events", "send", "shipment.acked", "--payload", '{"email": "hal@example.com"}', "--id", "ack-r")
    assert run_json(run_id)["status"] == "completed"
    done = fails(4, "retry", run_id)
    assert f"run {run_id} is completed" in done.stderr
    # The hint does not send the user to --force, which the engine refuses too.
    assert "--force" not in done.stderr and "autorun trigger" in done.stderr
    # A completed local run has nothing left to resume, even with --force.
    forced_done = fails(4, "retry", run_id, "--force")
    assert "completed" in forced_done.stderr
    assert len(messages(run_json(run_id), "send_notice")) == 1


def test_cancel_waiting_run_then_refuse_ended_runs(isolated):
    ok("automations", "load", SHIPPING)
    [run_id] = trigger("order.shipped", {"order_id": "o-4", "customer": {"email": "ida@example.com"}}, "evt-c")
    result = ok("cancel", run_id)
    assert f"cancelled {run_id}" in result.stderr
    run = run_json(run_id)
    assert run["status"] == "cancelled"
    assert run["current_step"] is None
    assert [(s["key"], s["status"]) for s in run["steps"]] == [("send_notice", "completed"), ("wait_for_ack", "cancelled")]
    assert run["waits"][0]["status"] == "cancelled" and run["waits"][0]["resumed_at"] is None
    # The human view says so too, not "waiting".
    view = ok("show", run_id, "--color", "never", env=WIDE).stdout
    wait_row = next(line for line in view.splitlines() if "shipment.acked" in line)
    assert "cancelled" in wait_row and "waiting" not in wait_row
    # The cancelled wait no longer resumes on its event.
    late = ok("events", "send", "shipment.acked", "--payload", '{"email": "ida@example.com"}', "--id", "ack-c")
    assert late.stdout == ""
    assert run_json(run_id)["status"] == "cancelled"
    again = fails(4, "cancel", run_id)
    assert "already ended cancelled" in again.stderr


def test_cancel_completed_demo_run_is_refused(demo_home):
    completed = next(r["run_id"] for r in demo_home["runs"] if r["status"] == "completed")
    result = fails(4, "cancel", completed, "-o", "json")
    assert json.loads(result.stdout)["error"]["code"] == "already_ended"
    assert run_json(completed)["status"] == "completed"


# -- replay -------------------------------------------------------------------------------

def test_replay_local_runs_use_their_stored_version(isolated):
    ok("automations", "load", SHIPPING)
    [run_id] = trigger("order.shipped", {"order_id": "o-5", "customer": {"email": "jo@example.com"}}, "evt-p")
    ok("events", "send", "shipment.acked", "--payload", '{"email": "jo@example.com"}', "--id", "ack-p")
    assert run_json(run_id)["status"] == "completed"
    # A newer version would make the same events take another path...
    newer = isolated / "shipping.toml"
    newer.write_text(SHIPPING.read_text().replace('event = "shipment.acked"', 'event = "shipment.confirmed"'))
    ok("automations", "load", newer)
    # ...but without --definition the run replays against the version it ran on.
    report = as_json("replay", run_id)
    assert report["match"] is True and report["run_id"] == run_id
    assert report["replayed_status"] == report["recorded_status"] == "completed"
    assert [s["key"] for s in report["steps"]] == ["send_notice", "wait_for_ack", "send_thanks"]
    table = ok("replay", run_id)
    assert "match" in table.stdout
    diverged = invoke("replay", run_id, "--definition", newer, "-o", "json")
    assert diverged.exit_code == 1, diverged.stderr
    assert json.loads(diverged.stdout)["match"] is False
    assert "diverged" in diverged.stderr


def test_replay_local_run_whose_event_occurred_earlier(isolated):
    """A backfilled trigger (--occurred-at a month ago) starts its run now: the replay
    must start the clock when the run started, not when the event says it happened,
    or the 30-minute wait would already be over when the recorded ack arrives."""
    ok("automations", "load", SHIPPING)
    payload = json.dumps({"order_id": "o-6", "customer": {"email": "kim@example.com"}})
    [run_id] = as_json("trigger", "order.shipped", "--payload", payload, "--id", "evt-old",
                       "--occurred-at", "2026-01-01T00:00:00Z")["runs"]
    ok("events", "send", "shipment.acked", "--payload", '{"email": "kim@example.com"}', "--id", "ack-old")
    run = run_json(run_id)
    assert run["status"] == "completed" and run["trigger"]["occurred_at"] == "2026-01-01T00:00:00Z"
    report = as_json("replay", run_id)
    assert report["match"] is True, report["first_divergence"]


def test_replay_sendrealm_seed_against_definitions():
    match = invoke("replay", SEED_RUN, "--definition", REPLAY_DEF)
    assert match.exit_code == 0, (match.stdout, match.stderr)
    assert "match" in match.stdout
    short = invoke("replay", SEED_RUN, "--definition", REPLAY_SHORT, "-o", "json")
    assert short.exit_code == 1, (short.stdout, short.stderr)
    report = json.loads(short.stdout)
    assert report["match"] is False
    assert report["first_divergence"] == {"step": "wait_for_open", "field": "wait", "recorded": "received", "replayed": "timed_out"}
    assert short.stderr.startswith("error: ") and "wait_for_open" in short.stderr
    table = invoke("replay", SEED_RUN, "--definition", REPLAY_SHORT, env=WIDE)
    assert table.exit_code == 1 and "diverged" in table.stdout


def test_replay_show_json_file_round_trip(demo_home, isolated):
    for label in ("receipt, opened", "receipt, never opened", "welcome pack"):
        run_id = next(r["run_id"] for r in demo_home["runs"] if r["label"] == label)
        for raw in ((), ("--raw",)):
            saved = isolated / f"{run_id}{'-raw' if raw else ''}.json"
            saved.write_text(ok("show", run_id, "-o", "json", *raw).stdout)
            report = as_json("replay", saved)
            assert report["match"] is True, (label, raw, report["first_divergence"])
            assert report["run_id"] == run_id


def test_replay_ndjson_on_stdin(demo_home):
    ndjson = ok("list", "--status", "completed,timed_out,waiting", "-o", "ndjson").stdout
    assert len(ndjson.splitlines()) == 4
    doc = as_json("replay", "-", input=ndjson)
    reports = doc["results"]
    assert isinstance(reports, list) and len(reports) == 4
    assert all(r["match"] for r in reports), [r["first_divergence"] for r in reports]
    assert doc["summary"] == {"replayed": 4, "match": 4, "diverge": 0}
    table = ok("replay", "-", input=ndjson, env=WIDE)
    assert table.stdout.splitlines()[-1] == "4 replayed: 4 match, 0 diverge"


def test_replay_by_id_latest_unknown_and_malformed(demo_home):
    latest = as_json("list", "--status", "completed", "--limit", "1")[0]["id"]
    assert as_json("replay", latest)["match"] is True
    newest = as_json("list", "--limit", "1")[0]["id"]
    assert json.loads(invoke("replay", "@latest", "-o", "json").stdout)["run_id"] == newest
    fails(3, "replay", "run_not_here")
    fails(2, "replay", "run id!")


def test_replay_refusals():
    no_def = fails(2, "replay", SEED_RUN)
    assert "--definition" in no_def.stderr
    not_run = TESTS / "fixtures" / "local" / "not_a_run.json"
    assert not_run.exists()
    refused = fails(2, "replay", not_run, "--definition", REPLAY_DEF)
    assert "not a run document autorun knows" in refused.stderr
    missing = fails(2, "replay", "no/such/run.json", "--definition", REPLAY_DEF)
    assert "cannot read no/such/run.json" in missing.stderr
    fails(2, "replay", "-", "--definition", REPLAY_DEF, input="{broken\n")


# -- the store: engine status / migrate, --engine-url ------------------------------------

def test_engine_status_counts_runs_timers_and_live_workers(isolated, store_kind):
    ok("automations", "load", QUICK)
    [run_id] = trigger("ping.sent", {"email": "a@example.com"}, "evt_status")
    status = as_json("engine", "status")
    assert set(status) == {"store", "workers", "runs", "due_timers", "pending_deliveries"}
    assert status["store"].startswith("postgresql://" if store_kind == "postgres" else "sqlite:///")
    assert status["runs"] == {"waiting": 1} and status["workers"] == [] and status["pending_deliveries"] == 0
    assert status["due_timers"] == 0  # its timeout is a second away
    time.sleep(1.2)
    assert as_json("engine", "status")["due_timers"] == 1  # status reads only: it fires nothing
    assert run_json(run_id)["status"] == "timed_out"  # show fires due timers as any command does

    # a worker with --forever appears with its heartbeat, and leaves the list when stopped
    stop = threading.Event()
    from autorun_cli import config
    from autorun_cli.engine import Engine

    worker = Engine.connect(config.engine_url(None), home=isolated / "home")
    thread = threading.Thread(target=lambda: worker.work(forever=True, poll=0.05, stop=stop.is_set))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not (seen := as_json("engine", "status")["workers"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [w["id"] for w in seen] == [worker.owner] and seen[0]["pid"] > 0 and seen[0]["last_seen"]
    finally:
        stop.set()
        thread.join(10)
        worker.close()
    assert as_json("engine", "status")["workers"] == []
    table = ok("engine", "status", env=WIDE).stdout
    assert "Due timers" in table and "no live workers" in table


def test_engine_migrate_is_idempotent(isolated, store_kind):
    first = as_json("engine", "migrate")  # the store's first use: every migration applied
    assert first["applied"] == list(range(1, first["schema_version"] + 1))
    again = as_json("engine", "migrate")
    assert again["applied"] == [] and again["schema_version"] == first["schema_version"]
    assert "already up to date" in ok("engine", "migrate", env=WIDE).stderr


def test_engine_url_flag_beats_env_and_profile(isolated, store_kind, monkeypatch):
    flag_db, env_db, profile_db = (isolated / f"{n}.db" for n in ("flag", "env", "profile"))
    (isolated / "config.toml").write_text(f'default_profile = "p"\n[profiles.p]\nprovider = "local"\nengine_url = "sqlite:///{profile_db}"\n')
    monkeypatch.delenv("AUTORUN_ENGINE_URL", raising=False)
    assert as_json("engine", "status")["store"] == f"sqlite:///{profile_db}"
    monkeypatch.setenv("AUTORUN_ENGINE_URL", f"sqlite:///{env_db}")
    assert as_json("engine", "status")["store"] == f"sqlite:///{env_db}"
    assert as_json("engine", "status", "--engine-url", f"sqlite:///{flag_db}")["store"] == f"sqlite:///{flag_db}"
    assert as_json("--engine-url", f"sqlite:///{flag_db}", "engine", "status")["store"] == f"sqlite:///{flag_db}"
    # the local provider's commands read the same store
    ok("--engine-url", f"sqlite:///{flag_db}", "demo", "-o", "id")
    assert len(as_json("list", "--engine-url", f"sqlite:///{flag_db}")) == 5
    assert as_json("list") == []  # the environment's store is untouched


def test_engine_url_errors_never_show_the_password(isolated):
    result = fails(5, "engine", "status", "--engine-url", "postgresql://app:hunter2@127.0.0.1:1/autorun")
    assert "hunter2" not in result.stdout + result.stderr
    assert "postgresql://app@127.0.0.1:1/autorun" in result.stderr and "hint:" in result.stderr
    result = fails(2, "list", "--engine-url", "mysql://app:hunter2@db/x")
    assert "unsupported engine URL scheme 'mysql'" in result.stderr and "hunter2" not in result.stderr
