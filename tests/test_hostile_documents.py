"""Documents that used to crash the mapping or the renderer (issue 12, item 24).

A run document from an API is data: whatever its shape, autorun either shows it or
refuses it as a bad response (exit 5); it never ends in an internal error (exit 1).
Three kinds are pinned here end to end over real sockets — JSON nested 200,000 deep,
timestamps at the calendar's edge, a ``duration_ms`` of ``1e400`` — and a hypothesis
test feeds every provider's mapping and the human and JSON renderers with generated
documents built from each vendor's own field names.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from apiserver import GENERIC_SEED_AUTOMATION, TENANT_RULES, TENANT_SEED_ID, ApiServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

import autorun_cli.http as http_mod
from autorun_cli import jsondoc
from autorun_cli.cli.app import app
from autorun_cli.errors import AutorunError
from autorun_cli.providers import generic, plannr, sendrealm, tenant
from autorun_cli.render import run_view, runs_table
from autorun_cli.timeutil import human_duration

runner = CliRunner()

EDGE_TIMES = ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00")
# One run each provider serves, and the path it is fetched from.
SHOW = {
    "plannr": ("82f16694-dbe3-4787-bd57-ab9eec12b43f", None, "/api/v1/automation-executions/"),
    "sendrealm": ("run_123", None, "/automation-runs/"),
    "tenant": (TENANT_SEED_ID, None, "/api/v1/automation/executions/"),
    "generic": ("3c90c3cc-0d44-4b50-8888-8dd25736052a", GENERIC_SEED_AUTOMATION, "/sessions/"),
}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AUTORUN_PROVIDER", "AUTORUN_BASE_URL", "AUTORUN_TOKEN", "AUTORUN_PROFILE", "AUTORUN_OUTPUT",
                "AUTORUN_AUTOMATION_ID", "AUTORUN_TENANT_ID", "AUTORUN_DEBUG", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(http_mod, "sleep", lambda _s: None)


def cli(server: ApiServer, provider: str, *args: str, automation: str | None = None) -> Any:
    return runner.invoke(app, list(args), env=server.env(provider, automation=automation, COLUMNS="120"))


# -- decoding -------------------------------------------------------------------------


@pytest.mark.parametrize("opener, closer", [("[", "]"), ('{"a":', "}")])
def test_200k_deep_json_is_refused_not_a_recursion_error(opener, closer):
    text = opener * 200_000 + "1" + closer * 200_000
    with pytest.raises(jsondoc.DocumentError, match="nested more than 128 levels"):
        jsondoc.loads(text.encode())


def test_depth_limit_is_exact():
    def nested(depth: int) -> str:
        return "[" * depth + "]" * depth

    assert jsondoc.loads(nested(jsondoc.MAX_DEPTH)) is not None
    with pytest.raises(jsondoc.DocumentError):
        jsondoc.loads(nested(jsondoc.MAX_DEPTH + 1))
    # Wide is fine: many brackets, little depth.
    wide = json.dumps({"data": [{"logs": [{"m": {"k": [1]}}] * 50}] * 100})
    assert len(jsondoc.loads(wide)["data"]) == 100


def test_non_finite_numbers_are_kept_as_the_text_sent():
    doc = jsondoc.loads(b'{"a": 1e400, "b": -1e400, "c": NaN, "d": Infinity, "e": 1.5, "f": 2}')
    assert doc == {"a": "1e400", "b": "-1e400", "c": "NaN", "d": "Infinity", "e": 1.5, "f": 2}
    json.dumps(doc, allow_nan=False)  # what autorun prints stays valid JSON


@pytest.mark.parametrize("provider", list(SHOW))
def test_deep_json_answer_is_exit_5_on_every_provider(api_server: ApiServer, provider: str):
    run_id, automation, path = SHOW[provider]
    api_server.faults.body(b"[" * 200_000 + b"]" * 200_000, path=path)
    result = cli(api_server, provider, "show", run_id, automation=automation)
    assert result.exit_code == 5, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    (error,) = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert "nested more than 128 levels deep" in error
    assert any(ln.startswith("hint: ") for ln in result.stderr.splitlines())


def test_deep_json_error_body_is_still_a_clean_error(api_server: ApiServer):
    api_server.faults.body(b'{"error":' * 5000 + b"1" + b"}" * 5000, status=404, path="/executions/")
    result = cli(api_server, "tenant", "show", TENANT_SEED_ID)
    assert result.exit_code == 3, result.stderr
    assert "Traceback" not in result.stderr


# -- calendar edge and huge durations ------------------------------------------------


def _edge_execution(**changes: Any) -> dict:
    return {
        "execution_id": "ed9e0000-0000-4000-8000-000000000001",
        "automation_rule_id": TENANT_RULES[0],
        "status": "failed",
        "started_at": EDGE_TIMES[1],
        "completed_at": EDGE_TIMES[0],
        "duration_ms": None,
        "actions_total": 2,
        "actions_successful": 1,
        "actions_failed": 1,
        "error_message": "boom",
        "error_stack": None,
        "failed_action_index": 1,
        "logs": [{"timestamp": EDGE_TIMES[0], "level": "error", "message": "boom", "action_index": 1}],
        "tenant": "7e000000-0000-4000-8000-000000000001",
        **changes,
    }


@pytest.mark.parametrize("time_format", ["iso", "relative"])
def test_calendar_edge_timestamps_are_shown_as_given(api_server: ApiServer, time_format: str):
    rid = api_server.state.add("tenant", _edge_execution())
    result = cli(api_server, "tenant", "show", rid, "--time-format", time_format)
    assert result.exit_code == 0, result.stderr
    if time_format == "iso":
        # Year 10000 / year 0 in UTC: no UTC form exists, so the API's text stays.
        assert EDGE_TIMES[0] in result.stdout and EDGE_TIMES[1] in result.stdout
    listed = cli(api_server, "tenant", "list", "--time-format", time_format)
    assert listed.exit_code == 0, listed.stderr
    doc = json.loads(cli(api_server, "tenant", "show", rid, "-o", "json").stdout)
    assert (doc["started_at"], doc["finished_at"]) == (EDGE_TIMES[1], EDGE_TIMES[0])


def test_duration_1e400_falls_back_to_the_timestamps(api_server: ApiServer):
    doc = _edge_execution(started_at="2026-06-08T14:15:00.000Z", completed_at="2026-06-08T14:15:02.500Z",
                          logs=[], duration_ms=0)
    text = json.dumps({"data": doc}).replace('"duration_ms": 0', '"duration_ms": 1e400')
    api_server.faults.body(text.encode(), path=doc["execution_id"])
    shown = cli(api_server, "tenant", "show", doc["execution_id"], "-o", "json", "--raw")
    assert shown.exit_code == 0, shown.stderr
    run = json.loads(shown.stdout)
    assert run["duration_ms"] == 2500
    assert run["raw"]["data"]["duration_ms"] == "1e400"  # the value as given
    table = cli(api_server, "tenant", "show", doc["execution_id"])
    assert table.exit_code == 0 and "2.5s" in table.stdout


def test_tenant_mapping_survives_python_infinities():
    for value in (math.inf, -math.inf, math.nan, 1e308, -5, True, "1e400"):
        run = tenant.map_execution(_edge_execution(duration_ms=value, started_at="2026-01-01T00:00:00Z",
                                                   completed_at="2026-01-01T00:00:01Z"))
        assert run.duration_ms == (round(1e308) if value == 1e308 else 1000)


def test_human_duration_of_huge_values():
    assert human_duration(10**400).endswith("h")
    assert human_duration(round(1e308)).endswith("h")
    assert human_duration(90_000) == "1m30s"


# -- hypothesis: every provider's mapping and the renderer ----------------------------

TIMES = st.one_of(
    st.sampled_from([*EDGE_TIMES, "2026-06-08T14:15:00.000Z", "2026-06-08 14:15:00", "2026-06-08", "<string>", ""]),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),  # inf and nan too: a mapper may be handed Python floats directly
    st.sampled_from(["1e400", "NaN", "-3", "3", "²", "٣", "9" * 5000]),
)
TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["[bold red]x[/]", "\x1b[2J\x1b]0;T\x07", "<string>", "pending", "FAILED", "timeout", "received"]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT, TIMES)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)


def shaped(keys: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict over a vendor's field names: any subset, each value its own kind or anything."""
    return st.fixed_dictionaries({}, optional={k: st.one_of(v, JSON) for k, v in keys.items()})


def objects(keys: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.one_of(shaped(keys), JSON), max_size=4)


TENANT_LOG = {"timestamp": TIMES, "level": st.sampled_from(["debug", "info", "warn", "error"]), "message": TEXT,
              "action_index": NUMBERS, "metadata": JSON}
TENANT = {
    "execution_id": st.uuids().map(str), "automation_rule_id": st.uuids().map(str), "trigger_data": JSON,
    "status": st.sampled_from(list(tenant.STATUS_TABLE) + ["timed_out", "weird"]), "started_at": TIMES,
    "completed_at": TIMES, "duration_ms": NUMBERS, "actions_total": st.integers(-3, 40) | st.sampled_from(["3", 3.0, 2.5, "-1", "²", "1e400", True]),
    "actions_successful": NUMBERS, "actions_failed": NUMBERS, "error_message": TEXT, "error_stack": TEXT,
    # (A huge actions_total is capped at 10,000 steps, tested in test_provider_tenant: too slow to render here.)
    "failed_action_index": NUMBERS, "execution_context": st.fixed_dictionaries({}, optional={"dry_run": JSON}) | JSON,
    "logs": objects(TENANT_LOG), "tenant": TEXT,
    "_links": st.dictionaries(st.sampled_from(["self", "retry", "rule", "edit"]),
                              st.one_of(TEXT, shaped({"href": TEXT, "method": TEXT})), max_size=3),
}
PLANNR_STEP = {"uuid": TEXT, "created_at": TIMES, "updated_at": TIMES, "executed_at": TIMES,
               "status": st.sampled_from(["completed", "in_progress", "failed"]) | TEXT, "info": TEXT, "name": TEXT}
PLANNR = {"uuid": st.uuids().map(str), "created_at": TIMES, "updated_at": TIMES, "status": TEXT, "triggered_by": TEXT,
          "steps": objects(PLANNR_STEP), "name": TEXT, "next_step": shaped(PLANNR_STEP),
          "previous_step": shaped(PLANNR_STEP), "account": shaped({"uuid": TEXT, "email": TEXT, "name": TEXT})}
SR_WAIT = {"id": TEXT, "step_key": TEXT, "waiting_for_event_name": TEXT, "status": TEXT, "timeout_at": TIMES,
           "resumed_at": TIMES, "timed_out_at": TIMES, "outcome_branch": TEXT, "resumed_by_event": JSON}
SR_MESSAGE = {"id": TEXT, "subject": TEXT, "title": TEXT, "status": TEXT, "created_at": TIMES,
              "automation_step_key": TEXT}
SR_STEP = {"id": TEXT, "step_key": TEXT, "step_type": TEXT, "status": TEXT, "started_at": TIMES, "finished_at": TIMES,
           "attempt": NUMBERS, "info": JSON, "error": JSON, "branch_taken": TEXT, "waits": objects(SR_WAIT),
           "linked_emails": objects(SR_MESSAGE), "linked_push_notifications": objects(SR_MESSAGE)}
SENDREALM = {"id": st.text(min_size=1, max_size=8).filter(str.strip), "automation_id": TEXT, "status": TEXT,
             "trigger_event_name": TEXT, "trigger_event": shaped({"event_name": TEXT, "payload": JSON, "occurred_at": TIMES}),
             "resolved_identity_type": TEXT, "resolved_identity_value": TEXT, "created_at": TIMES, "updated_at": TIMES,
             "finished_at": TIMES, "steps": objects(SR_STEP), "waits": objects(SR_WAIT),
             "sent_emails": objects(SR_MESSAGE), "sent_push_notifications": objects(SR_MESSAGE), "last_error": JSON}
GENERIC_STEP = {"id": TEXT, "status": TEXT, "prompt": JSON, "result": JSON, "error": JSON, "created_at": TIMES,
                "updated_at": TIMES, "step": shaped({"id": TEXT, "name": TEXT, "step_type": TEXT})}
GENERIC = {"id": st.uuids().map(str), "automation_id": TEXT, "inputs": JSON, "error": JSON,
           "status": st.sampled_from(["NEW", "RUNNING", "FINISHED", "FAILED"]) | TEXT, "created_at": TIMES,
           "updated_at": TIMES, "steps": objects(GENERIC_STEP), "steps_count": NUMBERS,
           "current_step": shaped(GENERIC_STEP) | TEXT}

MAPPERS = {
    "tenant": (tenant.map_execution, shaped(TENANT).map(lambda d: {"data": d})),
    "plannr": (plannr.map_execution, shaped(PLANNR)),
    "sendrealm": (sendrealm.map_run, shaped(SENDREALM)),
    "generic": (generic.map_session, shaped(GENERIC)),
}


def render_everything(run: Any) -> None:
    for time_format in ("iso", "relative"):
        console = Console(file=io.StringIO(), width=80, color_system="truecolor", force_terminal=True)
        console.print(run_view(run, time_format, details=True))
        console.print(runs_table([run], time_format))
    # What -o json prints; the document as decoded never holds inf/nan, so only the
    # normalized part is checked for strict JSON (raw may hold what the test handed in).
    json.dumps(run.to_json(), allow_nan=True)
    json.dumps(run.to_json(raw=True), default=str)


@pytest.mark.parametrize("provider", list(MAPPERS))
def test_any_document_maps_and_renders_or_is_a_bad_response(provider: str):
    mapper, documents = MAPPERS[provider]

    @settings(max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(documents)
    def check(doc: dict[str, Any]) -> None:
        try:
            run = mapper(doc)
        except AutorunError as exc:
            assert exc.exit_code == 5  # a document that is not a run: a bad response
            return
        render_everything(run)

    check()
