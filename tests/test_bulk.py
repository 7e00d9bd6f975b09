"""``retry`` and ``cancel`` on many runs, against the test API server and the local engine.

The server's request log is the witness: which requests reached the API (count,
method, path, body), and that a dry run, a refusal or a missing confirmation sent
nothing that changes a run. The JSON array is checked key by key against the contract.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from apiserver import GENERIC_AUTOMATION, TENANT_SEED_ID, ApiServer, _status, gen_id
from typer.testing import CliRunner

import autorun_cli.http as http_mod
from autorun_cli.cli import acting
from autorun_cli.cli.app import app

runner = CliRunner()
N = 60
ENTRY_KEYS = ["id", "action", "new_id", "from_step", "error"]
TENANT = "/api/v1/automation/executions"
LOCAL = Path(__file__).parent / "fixtures" / "local"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("AUTORUN_PROVIDER", "AUTORUN_BASE_URL", "AUTORUN_TOKEN", "AUTORUN_PROFILE", "AUTORUN_OUTPUT",
                "AUTORUN_AUTOMATION_ID", "AUTORUN_TENANT_ID", "AUTORUN_ACCOUNT_UUID", "AUTORUN_DEBUG",
                "AUTORUN_CONCURRENCY", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(http_mod, "sleep", slept.append)
    return slept


@pytest.fixture
def server(api_server: ApiServer) -> ApiServer:
    for provider in ("tenant", "generic", "sendrealm", "plannr"):
        api_server.state.generate(provider, N)
    return api_server


def cli(server: ApiServer | None, provider: str, *args: str, input: str | None = None, **env: str) -> Any:
    full = server.env(provider, COLUMNS="250", **env) if server is not None else {"COLUMNS": "250", **env}
    result = runner.invoke(app, list(args), env=full, input=input)
    assert "Traceback" not in result.stdout + result.stderr
    if server is not None:
        assert server.token not in result.stdout + result.stderr
    return result


def ids_with(provider: str, status: str, count: int) -> list[str]:
    """Generated runs whose vendor status is ``status`` (generic: upper case)."""
    want = status.upper().replace("COMPLETED", "FINISHED") if provider == "generic" else status
    found = [gen_id(provider, i) for i in range(N) if _status(provider, i) == want][:count]
    assert len(found) == count
    return found


def writes(server: ApiServer) -> list[tuple[str, str, Any]]:
    """Every request that could change a run, as (method, path, body)."""
    return [(r["method"], r["path"], r["body"]) for r in server.requests if r["method"] != "GET"]


def entries(result: Any) -> list[dict]:
    doc = json.loads(result.stdout)
    assert isinstance(doc, list)
    for entry in doc:
        assert list(entry)[:5] == ENTRY_KEYS
    return doc


# -- tenant: retried in place, through the retry endpoint ------------------------------


def test_tenant_retry_of_several_ids_posts_once_per_run_and_prints_the_array(server):
    failed = ids_with("tenant", "failed", 3)
    result = cli(server, "tenant", "retry", *failed, "--yes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert entries(result) == [
        {"id": rid, "action": "retry", "new_id": rid, "from_step": None, "error": None} for rid in failed
    ]
    assert sorted(writes(server)) == sorted(("POST", f"{TENANT}/{rid}/retry", None) for rid in failed)
    for rid in failed:  # the server holds the retried execution pending again
        assert server.state.get("tenant", rid)["status"] == "pending"


def test_tenant_retry_by_selection_lists_then_retries_only_failed_runs(server):
    result = cli(server, "tenant", "retry", "--status", "failed", "--limit", "4", "--yes")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and all(line.startswith("✓ ") and line.endswith("retried (pending)") for line in lines)
    retried = [line.split()[1] for line in lines]
    assert [m for m, _, _ in writes(server)] == ["POST"] * 4
    assert {p for _, p, _ in writes(server)} == {f"{TENANT}/{rid}/retry" for rid in retried}
    listed = [r for r in server.requests if r["path"] == TENANT]
    assert listed and listed[0]["query"]["status"] == ["failed"]
    assert result.stderr == "retried 4 of 4 runs\n"


def test_tenant_dry_run_names_the_exact_request_and_sends_none(server):
    failed = ids_with("tenant", "failed", 2)
    table = cli(server, "tenant", "retry", *failed, "--dry-run")
    assert table.exit_code == 0, table.stderr
    assert table.stdout.splitlines() == [f"· {rid}  would send POST {TENANT}/{rid}/retry" for rid in failed]
    assert "nothing was changed" in table.stderr
    doc = entries(cli(server, "tenant", "retry", *failed, "--dry-run", "-o", "json"))
    assert doc[0]["new_id"] is None and doc[0]["error"] is None
    assert doc[0]["plan"] == {"request": {"method": "POST", "path": f"{TENANT}/{failed[0]}/retry", "body": None}}
    assert writes(server) == []
    assert all(server.state.get("tenant", rid)["status"] == "failed" for rid in failed)


def test_exit_code_is_the_first_failures_and_the_rest_are_still_retried(server):
    failed = ids_with("tenant", "failed", 2)
    done = ids_with("tenant", "completed", 1)[0]
    missing = "0badc0de-0000-4000-8000-00000000dead"
    result = cli(server, "tenant", "retry", failed[0], missing, done, failed[1], "--yes", "-o", "json")
    assert result.exit_code == 3  # not found (3) came before not retryable (4)
    doc = entries(result)
    assert [(e["id"], e["error"] and e["error"]["code"]) for e in doc] == [
        (failed[0], None), (missing, "not_found"), (done, "not_retryable"), (failed[1], None)]
    assert sorted(p for _, p, _ in writes(server)) == sorted(f"{TENANT}/{rid}/retry" for rid in failed)
    assert result.stderr.startswith("error: 2 of 4 runs could not be retried; the first: ")


def test_stdin_ids_blank_lines_and_malformed_ids_are_each_reported_and_the_rest_retried(server):
    failed = ids_with("tenant", "failed", 2)
    stdin = f"{failed[0]}\n\n12345\n   \n{failed[1]}\n"
    result = cli(server, "tenant", "retry", "-", "--yes", input=stdin)
    assert result.exit_code == 2  # the malformed ID is the first failure
    assert "warning: stdin line 2 is blank: skipped" in result.stderr
    assert "warning: stdin line 4 is blank: skipped" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"✓ {failed[0]}")
    assert lines[1].startswith("✗ 12345") and "stdin line 3: malformed execution ID '12345'" in lines[1]
    assert lines[2].startswith(f"✓ {failed[1]}")
    assert len(writes(server)) == 2


def test_a_stdin_id_that_does_not_exist_is_reported_with_its_line(server):
    [failed] = ids_with("tenant", "failed", 1)
    missing = "e0000000-0000-4000-8000-0000000fffff"
    result = cli(server, "tenant", "retry", "-", "--yes", input=f"{missing}\n{failed}\n")
    assert result.exit_code == 3
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"✗ {missing}") and "stdin line 1: " in lines[0]
    assert lines[1].startswith(f"✓ {failed}")
    assert result.stderr.splitlines()[-2].startswith("error: 1 of 2 runs could not be retried; the first: stdin line 1: ")
    assert len(writes(server)) == 1


def test_a_piped_list_feeds_retry(server):
    listed = cli(server, "tenant", "list", "--status", "failed", "--limit", "3", "-o", "id")
    result = cli(server, "tenant", "retry", "-", "--yes", "-o", "id", input=listed.stdout)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == listed.stdout


def test_a_rate_limit_storm_slows_the_batch_down_and_fails_no_run(server, sleeps):
    failed = ids_with("tenant", "failed", 6)
    server.faults.rate_limit(times=None, retry_after=2, every=4)
    result = cli(server, "tenant", "retry", *failed, "--yes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [e["error"] for e in entries(result)] == [None] * 6
    limited = [r for r in server.requests if r["status"] == 429]
    assert limited and 2.0 in sleeps  # the server's Retry-After was honoured
    posts = [r for r in server.requests if r["method"] == "POST" and r["status"] == 200]
    assert sorted(r["path"] for r in posts) == sorted(f"{TENANT}/{rid}/retry" for rid in failed)


def test_concurrency_comes_from_autorun_concurrency(server):
    result = cli(server, "tenant", "retry", *ids_with("tenant", "failed", 2), "--yes", AUTORUN_CONCURRENCY="many")
    assert result.exit_code == 2
    assert "AUTORUN_CONCURRENCY='many' is not a number" in result.stderr
    assert writes(server) == []


# -- confirmation --------------------------------------------------------------------


def test_many_runs_without_yes_and_without_a_terminal_is_exit_2_and_sends_nothing(server):
    result = cli(server, "tenant", "retry", *ids_with("tenant", "failed", 2))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: retry of 2 runs needs a confirmation, and there is no terminal to ask on",
        "hint: add --yes to act on them all (see them first with --dry-run)",
    ]
    assert writes(server) == []


@pytest.mark.parametrize("answer,code,sent", [("y\n", 0, 2), ("yes\n", 0, 2), ("n\n", 1, 0), ("\n", 1, 0)])
def test_the_terminal_prompt_names_the_count_and_the_automation(server, monkeypatch, answer, code, sent):
    monkeypatch.setattr(acting, "stdin_is_tty", lambda: True)
    generic = ids_with("generic", "failed", 2)
    result = cli(server, "generic", "retry", *generic, input=answer, AUTORUN_AUTOMATION_ID=GENERIC_AUTOMATION)
    assert result.exit_code == code, result.stderr
    assert result.stderr.startswith(f"Retry 2 runs of {GENERIC_AUTOMATION}? [y/N] ")
    assert len(writes(server)) == sent
    if not sent:
        assert "nothing was retried" in result.stderr


def test_ids_typed_on_stdin_at_a_terminal_cannot_also_answer_the_prompt(server, monkeypatch):
    # `autorun retry -` at a terminal: the IDs are typed, then Ctrl-D; stdin is at its
    # end, so a prompt would read "no" from it. Say so and ask for --yes instead.
    monkeypatch.setattr(acting, "stdin_is_tty", lambda: True)
    failed = ids_with("tenant", "failed", 2)
    result = cli(server, "tenant", "retry", "-", input="\n".join(failed) + "\n")
    assert result.exit_code == 2, result.stderr
    assert result.stderr.splitlines() == [
        "error: retry of 2 runs needs a confirmation, and stdin held the run IDs, so it cannot answer",
        "hint: add --yes to act on them all (see them first with --dry-run)",
    ]
    assert writes(server) == []


def test_one_run_needs_no_confirmation(server):
    [rid] = ids_with("tenant", "failed", 1)
    result = cli(server, "tenant", "retry", rid)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == rid + "\n"


# -- generic: a new session per retry, PATCH …/cancel --------------------------------


def test_generic_retry_posts_the_recorded_inputs_and_reports_the_new_ids(server):
    failed = ids_with("generic", "failed", 2)
    result = cli(server, "generic", "retry", *failed, "--yes", "-o", "json", AUTORUN_AUTOMATION_ID=GENERIC_AUTOMATION)
    assert result.exit_code == 0, result.stderr
    doc = entries(result)
    assert [e["id"] for e in doc] == failed
    assert all(e["new_id"] not in (None, e["id"]) for e in doc)
    inputs = [server.state.get("generic", rid)["inputs"] for rid in failed]
    assert sorted(writes(server), key=str) == sorted(
        [("POST", f"/automations/{GENERIC_AUTOMATION}/sessions/", {"inputs": i}) for i in inputs], key=str)
    assert all(server.state.get("generic", e["new_id"])["status"] == "NEW" for e in doc)


def test_generic_cancel_by_selection_patches_each_open_session(server):
    running = ids_with("generic", "running", 3)
    result = cli(server, "generic", "cancel", "--status", "running", "--limit", "3", "--yes", "-o", "json",
                 AUTORUN_AUTOMATION_ID=GENERIC_AUTOMATION)
    assert result.exit_code == 0, result.stderr
    assert entries(result) == [{"id": rid, "action": "cancel", "new_id": None, "from_step": None, "error": None}
                               for rid in running]
    assert sorted(writes(server)) == sorted(
        ("PATCH", f"/automations/{GENERIC_AUTOMATION}/sessions/{rid}/cancel", None) for rid in running)


def test_generic_cancel_without_status_chooses_only_runs_that_have_not_ended(server):
    result = cli(server, "generic", "cancel", "--automation", GENERIC_AUTOMATION, "--limit", "5", "--dry-run", "-o", "json")
    assert result.exit_code == 0, result.stderr
    chosen = [e["id"] for e in entries(result)]
    assert chosen and all(server.state.get("generic", rid)["status"] in ("NEW", "RUNNING") for rid in chosen)
    assert writes(server) == []


def test_cancel_of_ended_runs_reports_each_and_exits_4(server):
    done = ids_with("generic", "completed", 2)
    result = cli(server, "generic", "cancel", *done, "--yes", AUTORUN_AUTOMATION_ID=GENERIC_AUTOMATION)
    assert result.exit_code == 4
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [["✗", rid] for rid in done]
    assert "already ended completed" in result.stdout
    assert writes(server) == []


# -- bad usage and refusals, before any request ----------------------------------------


@pytest.mark.parametrize("command", ["retry", "cancel"])
def test_neither_ids_nor_a_selection_is_exit_2(server, command):
    result = cli(server, "tenant", command)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {command} needs run IDs or a selection of runs\nhint: e.g.")
    assert server.requests == []


def test_ids_and_selection_flags_together_is_exit_2(server):
    result = cli(server, "tenant", "retry", TENANT_SEED_ID, "--status", "failed")
    assert result.exit_code == 2
    assert "give run IDs or selection flags, not both (got IDs and --status)" in result.stderr
    assert server.requests == []


def test_automation_from_the_environment_is_not_a_selection(server):
    result = cli(server, "generic", "retry", AUTORUN_AUTOMATION_ID=GENERIC_AUTOMATION)
    assert result.exit_code == 2
    assert server.requests == []


@pytest.mark.parametrize("mode", ["table", "json"])
def test_a_selection_that_matches_nothing_is_exit_0(server, mode):
    result = cli(server, "tenant", "retry", "--status", "failed", "--since", "2000-01-01", "--until", "2000-01-02", "-o", mode)
    assert result.exit_code == 0, result.stderr
    assert "no runs match" in result.stderr
    assert result.stdout == ("[]\n" if mode == "json" else "")
    assert writes(server) == []


@pytest.mark.parametrize("provider,automation,command", [
    ("plannr", None, "retry"), ("sendrealm", "aut_load", "retry"),
    ("plannr", None, "cancel"), ("sendrealm", "aut_load", "cancel"), ("tenant", None, "cancel"),
])
def test_providers_without_the_operation_refuse_many_runs_before_any_request(server, provider, automation, command):
    extra = {"AUTORUN_AUTOMATION_ID": automation} if automation else {}
    result = cli(server, provider, command, "--status", "failed", "--yes", **extra)
    assert result.exit_code == 4
    assert result.stderr.startswith(f"error: the {provider} API offers no")
    assert server.requests == []


@pytest.mark.parametrize("provider", ["tenant", "generic"])
def test_from_step_on_an_api_that_cannot_is_exit_4_naming_what_it_can_do(server, provider):
    [rid] = ids_with(provider, "failed", 1)
    result = cli(server, provider, "retry", rid, "--from-step", "step_1", AUTORUN_AUTOMATION_ID=GENERIC_AUTOMATION)
    assert result.exit_code == 4
    assert result.stderr.startswith(f"error: the {provider} API cannot start a run again from a chosen step\n")
    assert f"hint: retry the whole run without --from-step (`autorun retry {rid}`)" in result.stderr
    assert "autorun automations draft" in result.stderr
    assert server.requests == []


# -- the local engine ----------------------------------------------------------------


def local(*args: str, input: str | None = None) -> Any:
    return cli(None, "local", *args, input=input)


def trigger(event: str, payload: dict, event_id: str) -> list[str]:
    result = local("trigger", event, "--payload", json.dumps(payload), "--id", event_id, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["runs"]


def show(run_id: str) -> dict:
    return json.loads(local("show", run_id, "-o", "json").stdout)


def test_local_bulk_retry_dry_run_names_the_step_and_changes_nothing():
    assert local("automations", "load", str(LOCAL / "always_fails.toml")).exit_code == 0
    runs = [trigger("doomed.started", {"email": f"u{i}@example.com"}, f"d{i}")[0] for i in range(2)]
    result = local("retry", *runs, "--dry-run", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [e["plan"] for e in entries(result)] == [{"step": "give_up"}] * 2
    assert all(len(show(r)["steps"]) == 2 for r in runs)


def test_local_bulk_retry_from_step_reruns_from_there_without_sending_twice():
    assert local("automations", "load", str(LOCAL / "always_fails.toml")).exit_code == 0
    runs = [trigger("doomed.started", {"email": f"v{i}@example.com"}, f"e{i}")[0] for i in range(2)]
    result = local("retry", *runs, "--from-step", "send_hello", "--yes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [(e["id"], e["new_id"], e["from_step"]) for e in entries(result)] == [(r, r, "send_hello") for r in runs]
    for run_id in runs:
        run = show(run_id)
        assert [s["key"] for s in run["steps"]] == ["send_hello", "give_up", "send_hello", "give_up"]
        assert len([m for m in run["messages"] if m["step_key"] == "send_hello"]) == 1
        assert any(e["message"].startswith("restarted from step send_hello by ") for e in run["logs"])


def test_local_from_step_unknown_key_is_exit_2_listing_the_step_keys():
    assert local("automations", "load", str(LOCAL / "always_fails.toml")).exit_code == 0
    [run_id] = trigger("doomed.started", {"email": "w@example.com"}, "f1")
    result = local("retry", run_id, "--from-step", "nope")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"error: run {run_id} has no step 'nope'", "hint: its steps are: send_hello, give_up"]
    assert len(show(run_id)["steps"]) == 2


def test_local_from_step_over_runs_of_different_automations_is_exit_2():
    for name in ("always_fails.toml", "pack/shipping.toml"):
        assert local("automations", "load", str(LOCAL / name)).exit_code == 0
    [a] = trigger("doomed.started", {"email": "x@example.com"}, "g1")
    [b] = trigger("order.shipped", {"order_id": "o", "customer": {"email": "x@example.com"}}, "g2")
    result = local("retry", a, b, "--from-step", "send_hello", "--force", "--yes")
    assert result.exit_code == 2
    assert "belong to 2: always_fails, shipping_notice" in result.stderr
    assert len(show(a)["steps"]) == 2


def test_local_bulk_cancel_by_selection_stops_waiting_runs_only():
    for name in ("always_fails.toml", "pack/shipping.toml"):
        assert local("automations", "load", str(LOCAL / name)).exit_code == 0
    [failed] = trigger("doomed.started", {"email": "y@example.com"}, "h1")
    waiting = [trigger("order.shipped", {"order_id": f"o{i}", "customer": {"email": f"y{i}@example.com"}}, f"h{i + 2}")[0]
               for i in range(2)]
    result = local("cancel", "--all", "--yes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert sorted(e["id"] for e in entries(result)) == sorted(waiting)
    assert [show(r)["status"] for r in waiting] == ["cancelled", "cancelled"]
    assert [w["status"] for w in show(waiting[0])["waits"]] == ["cancelled"]
    assert show(failed)["status"] == "failed"
    # Cancelled runs can be retried, all at once.
    again = local("retry", "--status", "cancelled", "--yes")
    assert again.exit_code == 0, again.stderr
    assert [show(r)["status"] for r in waiting] == ["waiting", "waiting"]
