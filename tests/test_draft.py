"""``autorun automations draft SOURCE``: a definition shaped like a recorded run.

The promise: ``replay`` of a run against its own draft matches. It is checked for
the seed example of every provider and for every fixture run the test server holds
(its seeds and hand-made runs, and generated runs of every status), in-process; and
through the CLI against the server, where the request log shows the draft only read.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from apiserver import _GEN, GENERIC_AUTOMATION, PROVIDERS, SENDREALM_WAITING_ID, TENANT_SEED_ID, ApiServer, State, gen_id
from typer.testing import CliRunner

from autorun_cli.cli.app import app
from autorun_cli.engine import parse_toml
from autorun_cli.errors import UsageError
from autorun_cli.model import Run
from autorun_cli.providers import provider_class
from autorun_cli.replay.draft import draft
from autorun_cli.replay.runner import replay_runs

FIX = Path(__file__).parent / "fixtures"
runner = CliRunner()
GENERATED = 24  # every status of every provider's generator occurs in the first 24


def fixture_runs() -> list[tuple[str, str, dict]]:
    """(provider, run id, vendor document) of every run the test server holds."""
    state = State()
    out = [(p, rid, state.docs[p][rid]) for p in PROVIDERS for rid in state.order[p]]
    out += [(p, gen_id(p, i), _GEN[p](i, True)) for p in PROVIDERS for i in range(GENERATED)]
    for name in ("tenant_execution_failed.json", "tenant_execution_completed.json",
                 "tenant_execution_failed_string_links.json", "generic_session_failed.json",
                 "sendrealm_run_failed.json"):
        out.append((name.split("_")[0], name, json.loads((FIX / name).read_text())))
    return out


def mapped(provider: str, doc: dict) -> Run:
    return provider_class(provider).map_document(doc)


def has_steps(provider: str, doc: dict) -> bool:
    return bool(mapped(provider, doc).steps)


RUNS = fixture_runs()


@pytest.mark.parametrize("provider,run_id,doc", [r for r in RUNS if has_steps(r[0], r[2])],
                         ids=[f"{r[0]}-{r[1]}" for r in RUNS if has_steps(r[0], r[2])])
def test_every_fixture_run_replays_against_its_own_draft_and_matches(provider, run_id, doc):
    run = mapped(provider, doc)
    text = draft(run, run_id)
    definition = parse_toml(text)
    [report] = replay_runs([run], definition)
    assert report.match, (report.first_divergence and report.first_divergence.describe(), text)
    assert report.recorded_status == run.status


def test_the_fixture_set_covers_every_status_of_every_provider():
    seen = {(p, mapped(p, d).status) for p, _, d in RUNS}
    for status in ("completed", "failed", "cancelled", "running", "pending"):
        assert {p for p, st in seen if st == status} >= {"plannr", "tenant"}, status
    assert ("sendrealm", "waiting") in seen and ("sendrealm", "timed_out") in seen and ("tenant", "timed_out") in seen


def test_a_draft_says_what_was_recorded_and_what_was_guessed():
    run = mapped("sendrealm", json.loads((FIX / "seeds" / "sendrealm_run.json").read_text()))
    text = draft(run, "run_123")
    doc = tomllib.loads(text)
    assert [s["key"] for s in doc["steps"]] == ["send_receipt", "wait_for_open", "send_push_follow_up"]
    assert [s["type"] for s in doc["steps"]] == ["send_email_template", "wait_for_event", "send_push_template"]
    wait = doc["steps"][1]
    assert (wait["event"], wait["timeout"], wait["on_received"]) == ("sendrealm.mail.open", "30m", "send_push_follow_up")
    lines = text.splitlines()
    assert 'timeout = "30m"                      # recorded: the deadline 2026-06-08T14:45:00.000Z' in lines
    assert any(line.startswith('template = "send_receipt"') and "# guessed: " in line for line in lines)
    assert any(line.startswith('trigger = "order.completed"') and "# recorded: " in line for line in lines)


def test_a_vendor_step_kind_the_engine_lacks_becomes_an_http_request_that_replays_the_recorded_failure():
    run = mapped("generic", json.loads((FIX / "generic_session_failed.json").read_text()))
    failed = next(s for s in run.steps if s.status == "failed")
    text = draft(run, "x")
    step = next(s for s in tomllib.loads(text)["steps"] if s.get("name") == failed.name or s["key"] == failed.key)
    assert step["type"] == "http_request" and step["url"].startswith("https://example.invalid/")
    [report] = replay_runs([run], parse_toml(text))
    assert report.match and report.replayed_status == "failed"


def test_an_edited_draft_diverges_where_it_was_edited():
    run = mapped("sendrealm", json.loads((FIX / "seeds" / "sendrealm_run.json").read_text()))
    text = draft(run, "run_123").replace('timeout = "30m"', 'timeout = "1m"')
    [report] = replay_runs([run], parse_toml(text))
    assert not report.match
    assert (report.first_divergence.step, report.first_divergence.field) == ("wait_for_open", "wait")


def test_a_run_with_no_steps_cannot_be_drafted():
    empty = Run(id="r0", provider="generic", status="pending")
    with pytest.raises(UsageError) as info:
        draft(empty, "r0")
    assert info.value.message.startswith("run r0 recorded no steps: a definition needs at least one")


def test_a_run_that_ended_without_running_a_step_cannot_be_drafted():
    run = Run.model_validate({"id": "r1", "provider": "tenant", "status": "completed",
                              "steps": [{"key": "action_0", "status": "skipped"}]})
    with pytest.raises(UsageError, match="without running any of its 1 steps"):
        draft(run, "r1")


def test_markup_and_escapes_in_keys_stay_data():
    state = State()
    run = mapped("sendrealm", state.docs["sendrealm"]["run_markup"])
    text = draft(run, "run_markup")
    assert "\x1b" not in text
    [step] = tomllib.loads(text)["steps"]
    assert step["key"] == "bold_red_pwned_31mred_0m" and step["name"] == "[bold red]pwned[/] \x1b[31mred\x1b[0m"


# -- through the CLI, against the test server ------------------------------------------


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("AUTORUN_PROVIDER", "AUTORUN_BASE_URL", "AUTORUN_TOKEN", "AUTORUN_PROFILE", "AUTORUN_OUTPUT",
                "AUTORUN_AUTOMATION_ID", "AUTORUN_TENANT_ID", "AUTORUN_DEBUG", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))
    return tmp_path


def cli(server: ApiServer | None, provider: str, *args: str, **env: str) -> Any:
    full = server.env(provider, **env) if server is not None else env
    result = runner.invoke(app, list(args), env=full)
    assert "Traceback" not in result.stdout + result.stderr
    return result


@pytest.mark.parametrize("provider,run_id,automation", [
    ("plannr", "82f16694-dbe3-4787-bd57-ab9eec12b43f", None),
    ("sendrealm", SENDREALM_WAITING_ID, None),
    ("tenant", TENANT_SEED_ID, None),
    ("generic", "5ca1ab1e-0000-4000-8000-000000000004", "3c90c3cc-0d44-4b50-8888-8dd25736052a"),
])
def test_draft_then_replay_a_run_of_every_provider_from_the_server(api_server, isolated, provider, run_id, automation):
    extra = {"AUTORUN_AUTOMATION_ID": automation} if automation else {}
    path = isolated / f"{provider}.toml"
    wrote = cli(api_server, provider, "automations", "draft", run_id, "--file", str(path), **extra)
    assert wrote.exit_code == 0, wrote.stderr
    assert wrote.stdout == "" and f"wrote {path}" in wrote.stderr.replace("\n", "")
    # The draft only read the run: one GET, nothing that changes anything.
    assert [(r["method"], r["path"].rsplit("/", 1)[-1]) for r in api_server.requests] == [("GET", run_id)]
    assert cli(None, "local", "automations", "validate", str(path)).exit_code == 0
    replayed = cli(api_server, provider, "replay", run_id, "-d", str(path), "-o", "json", **extra)
    assert replayed.exit_code == 0, replayed.stdout
    assert json.loads(replayed.stdout)["match"] is True


def test_draft_on_stdout_of_a_saved_document(isolated):
    result = cli(None, "local", "automations", "draft", str(FIX / "seeds" / "plannr_get.json"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("# Drafted by `autorun automations draft ")
    assert parse_toml(result.stdout).steps


def test_draft_as_json_carries_the_toml_for_scripts(isolated):
    # -o json / --jq used to be accepted and ignored (TOML came out regardless).
    src = str(FIX / "seeds" / "plannr_get.json")
    path = isolated / "d.toml"
    result = cli(None, "local", "automations", "draft", src, "-o", "json", "--file", str(path))
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["toml"] == path.read_text()
    assert doc["file"] == str(path)
    assert doc["steps"] == len(parse_toml(doc["toml"]).steps) > 0
    assert doc["id"] == tomllib.loads(doc["toml"])["id"]
    jq = cli(None, "local", "automations", "draft", src, "--jq", ".toml")
    assert jq.exit_code == 0, jq.stderr
    assert jq.stdout.rstrip("\n") == doc["toml"].rstrip("\n")
    ids = cli(None, "local", "automations", "draft", src, "-o", "id")
    assert ids.stdout == doc["id"] + "\n"


def test_draft_of_a_run_with_no_steps_is_exit_2_saying_why(api_server):
    api_server.state.generate("generic", 4)
    new = gen_id("generic", 3)  # NEW: the session has not run a step yet
    result = cli(api_server, "generic", "automations", "draft", new, AUTORUN_AUTOMATION_ID=GENERIC_AUTOMATION)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: run {new} recorded no steps: a definition needs at least one")
    assert result.stdout == ""


def test_draft_of_a_file_with_several_runs_is_exit_2(isolated):
    two = isolated / "two.ndjson"
    seed = (FIX / "seeds" / "sendrealm_run.json").read_text()
    two.write_text(json.dumps(json.loads(seed)) + "\n" + json.dumps(json.loads(seed)) + "\n")
    result = cli(None, "local", "automations", "draft", str(two))
    assert result.exit_code == 2
    assert "holds 2 runs; a draft is made from one" in result.stderr


def test_draft_of_a_malformed_id_is_exit_2_before_any_request(api_server):
    result = cli(api_server, "tenant", "automations", "draft", "12345")
    assert result.exit_code == 2
    assert api_server.requests == []


# -- replay of history in CI: draft once, replay every run of the automation ------------


def test_history_of_an_automation_replays_against_a_draft_one_line_per_run(api_server, isolated):
    from apiserver import SENDREALM_AUTOMATION, _status

    api_server.state.generate("sendrealm", 14)
    env = {"AUTORUN_AUTOMATION_ID": SENDREALM_AUTOMATION, "COLUMNS": "200"}
    path = isolated / "receipt.toml"
    assert cli(api_server, "sendrealm", "automations", "draft", gen_id("sendrealm", 0), "--file", str(path), **env).exit_code == 0
    history = cli(api_server, "sendrealm", "list", "--all", "-o", "ndjson", **env)
    assert len(history.stdout.splitlines()) == 14
    before = len(api_server.requests)
    failed = [gen_id("sendrealm", i) for i in range(14) if _status("sendrealm", i) == "failed"]
    assert len(failed) == 2

    env = api_server.env("sendrealm", **env)
    table = runner.invoke(app, ["replay", "-", "-d", str(path)], input=history.stdout, env=env)
    assert table.exit_code == 1
    # Sendrealm lists hold summaries: each run was read in full, once, before replaying.
    reads = [(r["method"], r["path"]) for r in api_server.requests[before:]]
    assert sorted(reads) == sorted(("GET", f"/automation-runs/{gen_id('sendrealm', i)}") for i in range(14))
    assert "read 14 of 14 runs in full: the list held summaries without steps" in table.stderr
    lines = table.stdout.splitlines()
    assert lines[-1] == "14 replayed: 12 match, 2 diverge"
    assert len(lines) == 15
    diverged = [line.split()[1] for line in lines[:-1] if line.startswith("✗ ")]
    assert sorted(diverged) == sorted(failed)  # the draft's receipt is sent; theirs failed
    assert all("diverged at step 'send_receipt': status was 'failed' when recorded" in line
               for line in lines if line.startswith("✗ "))
    assert table.stderr.splitlines()[1].startswith("error: 2 of 14 replayed runs diverged; first: ")

    doc = runner.invoke(app, ["replay", "-", "-d", str(path), "-o", "json"], input=history.stdout, env=env)
    assert doc.exit_code == 1
    parsed = json.loads(doc.stdout)
    assert parsed["summary"] == {"replayed": 14, "match": 12, "diverge": 2}
    assert [r["run_id"] for r in parsed["results"]] == [json.loads(line)["id"] for line in history.stdout.splitlines()]
    assert {r["run_id"] for r in parsed["results"] if not r["match"]} == set(failed)
    # Nothing but reads reached the API.
    assert {r["method"] for r in api_server.requests} == {"GET"}


def test_full_runs_on_stdin_are_replayed_without_reading_them_again(api_server, isolated):
    from apiserver import SENDREALM_AUTOMATION

    api_server.state.generate("sendrealm", 3)
    env = api_server.env("sendrealm", AUTORUN_AUTOMATION_ID=SENDREALM_AUTOMATION)
    full = runner.invoke(app, ["show", *(gen_id("sendrealm", i) for i in range(3)), "-o", "ndjson"], env=env)
    path = isolated / "receipt.toml"
    assert runner.invoke(app, ["automations", "draft", gen_id("sendrealm", 0), "--file", str(path)], env=env).exit_code == 0
    before = len(api_server.requests)
    result = runner.invoke(app, ["replay", "-", "-d", str(path)], input=full.stdout, env=env)
    assert result.exit_code == 0, result.stdout
    assert len(api_server.requests) == before
    assert result.stdout.splitlines()[-1] == "3 replayed: 3 match, 0 diverge"


def test_history_that_all_matches_exits_0():
    seed = (FIX / "seeds" / "sendrealm_run.json").read_text()
    one = json.dumps(json.loads(seed))
    definition = FIX / "replay" / "order_receipt.toml"
    result = runner.invoke(app, ["replay", "-", "-d", str(definition)], input=one + "\n" + one + "\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "2 replayed: 2 match, 0 diverge"
