"""Replay: recorded-run sources, the step comparison and the virtual-clock runner."""

from __future__ import annotations

import copy
import io
import json
import time
from pathlib import Path

import pytest

from autorun_cli.engine import load_definition, parse_toml
from autorun_cli.errors import UsageError
from autorun_cli.model import Message, Run, Step, Wait
from autorun_cli.replay.compare import compare
from autorun_cli.replay.runner import replay_runs
from autorun_cli.replay.source import load_docs, replay_input, to_run

FIX = Path(__file__).parent / "fixtures"
SEED = json.loads((FIX / "seeds" / "sendrealm_run.json").read_text())
MATCHING = load_definition(FIX / "replay" / "order_receipt.toml")
SHORT_WAIT = load_definition(FIX / "replay" / "order_receipt_short_wait.toml")


def seed_run() -> Run:
    return to_run(copy.deepcopy(SEED), "seed")


# -- sources ------------------------------------------------------------------------

def test_vendor_documents_of_every_provider_are_recognised():
    cases = {
        "seeds/sendrealm_run.json": ("sendrealm", "run_123"),
        "seeds/plannr_get.json": ("plannr", "82f16694-dbe3-4787-bd57-ab9eec12b43f"),
        "seeds/generic_session.json": ("generic", "3c90c3cc-0d44-4b50-8888-8dd25736052a"),
        "tenant_execution_failed.json": ("tenant", None),
    }
    for name, (provider, run_id) in cases.items():
        run = to_run(json.loads((FIX / name).read_text()), name)
        assert run.provider == provider, name
        if run_id:
            assert run.id == run_id


def test_show_json_with_and_without_raw_round_trips():
    run = seed_run()
    plain = to_run(run.to_json(), "plain")
    with_raw = to_run(run.to_json(raw=True), "raw")
    assert plain.to_json() == run.to_json() == with_raw.to_json()
    assert with_raw.raw == SEED and plain.raw is None


def test_unknown_document_and_bad_json_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="not a run document"):
        to_run({"hello": "world"}, "x.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": ')
    with pytest.raises(UsageError, match="not valid JSON"):
        list(load_docs(str(bad)))
    with pytest.raises(UsageError, match="cannot read"):
        list(load_docs(str(tmp_path / "missing.json")))
    with pytest.raises(UsageError, match="stdin line 2"):
        list(load_docs("-", io.StringIO(json.dumps(SEED) + "\n{oops\n")))


def test_ndjson_and_list_responses_hold_many_runs(tmp_path):
    a, b = copy.deepcopy(SEED), copy.deepcopy(SEED)
    b["data"]["id"] = "run_124"
    runs = list(load_docs("-", io.StringIO(json.dumps(a) + "\n\n" + json.dumps(b) + "\n")))
    assert [r.id for r in runs] == ["run_123", "run_124"]
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps({"data": [a["data"], b["data"]], "next_cursor": None}))
    assert [r.id for r in load_docs(str(listing))] == ["run_123", "run_124"]


def test_replay_input_takes_trigger_identity_and_event_offsets():
    inp = replay_input(seed_run())
    assert inp.trigger_event == "order.completed"
    assert inp.payload == {"order_id": "ord_123"}
    assert (inp.identity_type, inp.identity_value) == ("email", "olivia@example.com")
    assert [(e.event, e.offset_s, e.event_id, e.step_key) for e in inp.events] == [
        ("sendrealm.mail.open", 90.0, "evt_124", "wait_for_open")
    ]


# -- compare ------------------------------------------------------------------------

def _run(steps, waits=(), messages=(), status="completed"):
    return Run(id="r", provider="local", status=status, steps=list(steps), waits=list(waits), messages=list(messages))


def test_compare_matches_by_key_then_name():
    rec = _run([Step(key="a", status="completed"), Step(name="Second", status="completed")])
    rep = _run([Step(key="a", name="First", status="completed"), Step(key="b", name="Second", status="completed")])
    report = compare(rec, rep)
    assert report.match and report.first_divergence is None


def test_compare_names_the_first_divergence_in_recorded_order():
    rec = _run(
        [Step(key="mail", type="send_email_template", status="completed"), Step(key="wait", status="completed", branch="received"), Step(key="push", status="completed")],
        waits=[Wait(step_key="wait", status="received", branch="received")],
        messages=[Message(channel="email", step_key="mail"), Message(channel="push", step_key="push")],
    )
    rep = _run(
        [Step(key="mail", type="send_email_template", status="completed"), Step(key="wait", status="completed", branch="timed_out")],
        waits=[Wait(step_key="wait", status="timed_out", branch="timed_out")],
        messages=[Message(channel="email", step_key="mail")],
    )
    report = compare(rec, rep)
    d = report.first_divergence
    assert (d.step, d.field, d.recorded, d.replayed) == ("wait", "wait", "received", "timed_out")
    assert [row.diverged for row in report.steps] == [[], ["wait", "branch"], ["step"]]


def test_compare_uses_each_steps_last_attempt():
    rec = _run([Step(key="hook", status="failed", attempt=1), Step(key="hook", status="failed", attempt=2),
                Step(key="hook", status="completed", attempt=3), Step(key="done", status="completed")])
    rep = _run([Step(key="hook", status="completed", attempt=1), Step(key="done", status="completed")])
    report = compare(rec, rep)
    assert report.match, report.first_divergence
    assert [row.key for row in report.steps] == ["hook", "done"]


def test_compare_reports_extra_steps_and_final_status():
    rec = _run([Step(key="a", status="completed")], status="failed")
    rep = _run([Step(key="a", status="completed"), Step(key="b", status="completed")])
    d = compare(rec, rep).first_divergence
    assert (d.step, d.field, d.recorded, d.replayed) == ("b", "step", "did not run", "ran")
    rec2 = _run([Step(key="a", status="completed")], status="failed")
    rep2 = _run([Step(key="a", status="completed")], status="completed")
    d2 = compare(rec2, rep2).first_divergence
    assert (d2.step, d2.field, d2.recorded, d2.replayed) == (None, "status", "failed", "completed")


# -- runner -------------------------------------------------------------------------

def test_sendrealm_example_matches_its_definition_in_no_real_time():
    started = time.monotonic()
    [report] = replay_runs([seed_run()], MATCHING)
    assert time.monotonic() - started < 5  # a 30-minute wait on a virtual clock
    assert report.match, report.first_divergence
    assert report.replayed_status == "completed"
    assert [row.key for row in report.steps] == ["send_receipt", "wait_for_open", "send_push_follow_up"]
    wait_row = report.steps[1]
    assert wait_row.replayed["wait"] == "received" and wait_row.replayed["branch"] == "received"


def test_shorter_wait_timeout_diverges_at_the_wait():
    [report] = replay_runs([seed_run()], SHORT_WAIT)
    assert not report.match
    d = report.first_divergence
    assert (d.step, d.field, d.recorded, d.replayed) == ("wait_for_open", "wait", "received", "timed_out")


def test_run_still_waiting_when_recorded_is_replayed_up_to_then():
    doc = copy.deepcopy(SEED)["data"]
    doc.update(status="running", updated_at="2026-06-08T14:20:00.000Z")
    doc["steps"] = doc["steps"][:2]
    doc["steps"][1].update(status="running", branch_taken=None)
    wait = dict(doc["waits"][0], status="waiting", resumed_at=None, outcome_branch=None, resumed_by_event=None)
    doc["waits"] = [wait]
    doc["steps"][1]["waits"] = [wait]
    doc["sent_push_notifications"] = []
    [report] = replay_runs([to_run({"data": doc}, "waiting")], MATCHING)
    assert report.steps[1].replayed["wait"] == "waiting"
    assert report.replayed_status == "waiting"


def test_http_steps_are_sandboxed_nothing_leaves_the_machine():
    import socket

    # A port nobody listens on: a real request would fail the step.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    defn = parse_toml(
        f"""
id = "hook"
name = "Hook"
trigger = "order.completed"
identity = {{ type = "email", from = "customer.email" }}

[[steps]]
key = "notify"
type = "http_request"
url = "http://127.0.0.1:{port}/hook"
"""
    )
    recorded = Run(
        id="r1", provider="local", status="completed",
        trigger={"event": "order.completed", "payload": {"customer": {"email": "a@b.c"}}, "occurred_at": "2026-06-08T14:15:00Z"},
        identity={"type": "email", "value": "a@b.c"},
        steps=[Step(key="notify", type="http_request", status="completed")],
    )
    [report] = replay_runs([recorded], defn)
    assert report.match, report.first_divergence


def test_many_runs_share_one_engine_and_each_is_compared():
    runs = []
    for i in range(20):
        doc = copy.deepcopy(SEED)
        doc["data"]["id"] = f"run_{i}"
        runs.append(to_run(doc, "seed"))
    reports = replay_runs(runs, MATCHING)
    assert [r.run_id for r in reports] == [f"run_{i}" for i in range(20)]
    assert all(r.match for r in reports)
    assert len({r.replayed_run_id for r in reports}) == 20


def test_local_run_document_equals_the_models_json(tmp_path):
    """`show -o json` on local builds the document without pydantic; it must be
    exactly what the model would print, for every kind of demo run."""
    from autorun_cli.engine import Engine
    from autorun_cli.engine.demo import run_demo
    from autorun_cli.providers.local import map_run, run_document

    with Engine.open(tmp_path) as engine:
        summary = run_demo(engine, settle=5)
        docs = [engine.get_run(r["run_id"]) for r in summary["runs"]]
    assert {d["status"] for d in docs} >= {"completed", "waiting", "timed_out", "failed"}
    for doc in docs:
        assert run_document(doc) == map_run(doc).to_json()
        assert list(run_document(doc)) == list(map_run(doc).to_json())


def test_recorded_http_outcomes_are_replayed_and_retry_timers_fire(tmp_path):
    """The demo webhook failed three times against a refusing endpoint; in the
    sandbox nothing is sent, so the replay takes the endpoint's recorded answers
    (and its retries, 0.2 s and 0.4 s apart, fire on the virtual clock)."""
    from autorun_cli.engine import Engine
    from autorun_cli.engine.demo import run_demo
    from autorun_cli.providers.local import map_run

    with Engine.open(tmp_path) as engine:
        run_demo(engine, settle=5)
        [failed] = engine.list_runs(statuses=["failed"])
        recorded = map_run(engine.get_run(failed["id"]))
        defn = engine.definition_model(recorded.automation_id, recorded.extra["definition_version"])
    assert [s.attempt for s in recorded.steps if s.key == "notify_accounting"] == [1, 2, 3]
    [report] = replay_runs([recorded], defn)
    assert report.match, report.first_divergence
    assert report.replayed_status == "failed" and not report.notes
    # Had the endpoint answered the third time, the replay completes instead.
    steps = list(recorded.steps)
    steps[-1] = steps[-1].model_copy(update={"status": "completed", "error": None})
    healed = recorded.model_copy(update={"steps": steps, "status": "completed", "error": None})
    [report] = replay_runs([healed], defn)
    assert report.replayed_status == "completed"
    hook = next(row for row in report.steps if row.key == "notify_accounting")
    assert hook.replayed["status"] == "completed" and hook.diverged == []
    # ...and goes on to the steps after the webhook, which the edited record lacks.
    assert report.first_divergence.field == "step" and report.first_divergence.replayed == "ran"


def test_the_progress_of_a_history_counts_each_run_as_it_is_replayed(tmp_path, monkeypatch):
    """`replay` of many runs: the bar advances run by run, not from 0 to all at the end."""
    from typer.testing import CliRunner

    from autorun_cli.cli import progress as progress_mod
    from autorun_cli.cli.app import app
    from autorun_cli.replay import runner as runner_mod

    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    for var in ("AUTORUN_PROVIDER", "AUTORUN_PROFILE", "AUTORUN_OUTPUT", "AUTORUN_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    history = tmp_path / "runs.ndjson"
    lines = []
    for i in range(3):
        doc = copy.deepcopy(SEED)
        doc["data"]["id"] = f"run_{i}"
        lines.append(json.dumps(doc))
    history.write_text("\n".join(lines) + "\n")

    replayed: list[str] = []
    real_replay = runner_mod.Replayer.replay

    def replay(self, run):
        replayed.append(run.id)
        return real_replay(self, run)

    # What the bar shows at each count: how many runs had been replayed by then.
    counted: list[int] = []
    real_track = progress_mod.Progress.track

    def track(self, items, **kwargs):
        for item in real_track(self, items, **kwargs):
            if self.description == "replaying runs":
                counted.append(len(replayed))
            yield item

    monkeypatch.setattr(runner_mod.Replayer, "replay", replay)
    monkeypatch.setattr(progress_mod.Progress, "track", track)
    result = CliRunner().invoke(app, ["replay", str(history), "-d", str(FIX / "replay" / "order_receipt.toml")])
    assert result.exit_code == 0, result.stderr
    assert "3 replayed: 3 match, 0 diverge" in result.stdout + result.stderr
    assert counted == [1, 2, 3]
