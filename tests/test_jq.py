"""``--jq EXPR``: a real jq program over the JSON a command would print, with gh's
output rules (strings bare, the rest compact JSON, one result per line)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autorun_cli.cli.app import app

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
    return tmp_path


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def ok(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    assert result.stderr == "", result.stderr
    return result.stdout


@pytest.fixture
def two_runs() -> list[str]:
    """Two local shipping runs, both waiting (no timers, no HTTP: fast)."""
    ok("automations", "load", str(SHIPPING), "-o", "json")
    ids = []
    for n, email in enumerate(("ann@example.com", "bob@example.com")):
        out = ok("trigger", "order.shipped", "--payload", json.dumps({"customer": {"email": email}, "order_id": f"o{n}"}), "--id", f"ev{n}", "-o", "json")
        ids += json.loads(out)["runs"]
    return ids


def test_strings_bare_other_values_compact_one_per_line(two_runs):
    out = ok("list", "--jq", ".[] | .id, .status, .identity, .steps[0].attempt, null")
    lines = out.splitlines()
    newest = list(reversed(two_runs))
    assert lines == [
        newest[0], "waiting", '{"type":"email","value":"bob@example.com","id":null,"name":null}', "1", "null",
        newest[1], "waiting", '{"type":"email","value":"ann@example.com","id":null,"name":null}', "1", "null",
    ]


def test_jq_sees_the_same_document_as_json_output(two_runs):
    full = json.loads(ok("show", two_runs[0], "-o", "json"))
    assert json.loads(ok("show", two_runs[0], "--jq", ".")) == full
    # Several IDs: the array show prints; -o ndjson is overridden (--jq implies json).
    assert ok("show", *two_runs, "-o", "ndjson", "--jq", "map(.id) | join(\",\")") == ",".join(two_runs) + "\n"


def test_jq_before_the_command_and_raw(two_runs):
    assert ok("--jq", ".[].id", "list", "-n", "1").splitlines() == [two_runs[-1]]
    # --raw: the engine's own document is in the input under raw.
    raw_id = ok("show", two_runs[0], "--raw", "--jq", ".raw.id")
    assert raw_id.strip() == two_runs[0]


def test_tsv_and_strings_with_tabs_and_unicode(two_runs):
    out = ok("list", "--jq", r'.[] | [.id, .identity.value, "é\tx"] | @tsv')
    assert out.splitlines()[0] == f"{two_runs[-1]}\tbob@example.com\té\\tx"


def test_a_program_that_does_not_compile_is_usage_with_jqs_message(two_runs):
    result = invoke("list", "--jq", ".[")
    assert result.exit_code == 2
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: jq: error: syntax error, unexpected end of file")
    assert "line 1, column 2" in first
    assert result.stderr.splitlines()[1].startswith("hint: ")
    # stdout holds only the program's results: no error document, nothing else.
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_a_bad_program_fails_before_any_work(isolated):
    # Nothing loaded: `trigger` would be "not found" (3); the program is checked first.
    result = invoke("trigger", "order.shipped", "--jq", "{")
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("error: jq: error: syntax error")


def test_a_run_time_error_exits_2_after_the_results_before_it(two_runs):
    result = invoke("list", "--jq", '.[] | .id, error("stop here")')
    assert result.exit_code == 2
    assert result.stdout.splitlines() == [two_runs[-1]]
    assert result.stderr.splitlines()[0] == "error: jq: error: stop here"
    wrong_shape = invoke("show", two_runs[0], "--jq", ".[0]")
    assert wrong_shape.exit_code == 2
    assert wrong_shape.stderr.startswith('error: jq: error: Cannot index object with number')


def test_errors_of_the_command_stay_on_stderr(two_runs):
    result = invoke("show", "run_doesnotexist", "--jq", ".id")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")


def test_commands_with_their_own_output_options(two_runs, isolated):
    assert ok("automations", "list", "--jq", ".[].id") == "shipping_notice\n"
    assert ok("automations", "show", "shipping_notice", "--jq", "[.steps[].key] | join(\" \")") == "send_notice wait_for_ack send_thanks\n"
    assert ok("automations", "validate", str(SHIPPING), "--jq", ".[0].steps") == "3\n"
    assert ok("automations", "load", str(SHIPPING), "--jq", ".[0].created") == "false\n"
    work = json.loads(ok("engine", "work", "--jq", "{timers_fired, next_due}"))
    assert work["timers_fired"] == 0 and work["next_due"]
    assert invoke("config", "add", "crm", "--provider", "plannr", "--base-url", "https://api.example.com", "--token-env", "X").exit_code == 0
    assert ok("config", "list", "--jq", ".[] | .name + \" \" + .provider") == "crm plannr\n"
    assert ok("config", "show", "crm", "--jq", ".base_url") == "https://api.example.com\n"
    # Options before the command reach these commands too.
    assert ok("--jq", "length", "config", "list") == "1\n"


def test_trigger_and_events_send(two_runs):
    started = ok("trigger", "order.shipped", "--payload", '{"customer": {"email": "cy@example.com"}, "order_id": "o9"}', "--id", "ev9", "--jq", ".runs[]")
    assert started.startswith("run_") and len(started.splitlines()) == 1
    resumed = ok("events", "send", "shipment.acked", "--email", "cy@example.com", "--id", "ack1", "--jq", ".resumed | length")
    assert resumed == "1\n"


def test_jq_is_not_imported_without_the_flag(two_runs, isolated):
    env = {"AUTORUN_CONFIG": str(isolated / "config.toml"), "AUTORUN_HOME": str(isolated / "home"), "PATH": "/usr/bin:/bin"}
    code = "import sys; from autorun_cli.cli.app import main; sys.argv = ['autorun', 'show', %r, '-o', 'json']\ntry:\n    main()\nfinally:\n    sys.stderr.write('JQ' if 'jq' in sys.modules else 'NOJQ')"
    proc = subprocess.run([sys.executable, "-c", code % two_runs[0]], env=env, capture_output=True, text=True)
    assert json.loads(proc.stdout)["id"] == two_runs[0]
    assert proc.stderr.endswith("NOJQ"), proc.stderr
    proc = subprocess.run([sys.executable, "-c", (code % two_runs[0]).replace("'json'", "'json', '--jq', '.id'")], env=env, capture_output=True, text=True)
    assert proc.stdout == two_runs[0] + "\n"
    assert proc.stderr.endswith("JQ") and not proc.stderr.endswith("NOJQ")


def test_the_commands_across_runs_and_acting_on_them(two_runs):
    """--jq on the commands the tests above leave out: each runs the program over the
    very document its -o json prints."""
    first, second = two_runs
    assert json.loads(ok("stats", "--jq", ".by_status")) == {"waiting": 2}
    assert ok("stats", "--jq", "[.steps[].key] | join(\" \")") == "send_notice wait_for_ack\n"
    assert ok("engine", "status", "--jq", ".runs.waiting") == "2\n"
    assert ok("replay", first, "--jq", ".match") == "true\n"
    assert ok("cancel", first, "--jq", ".status") == "cancelled\n"
    # watch: the final document (the run ended cancelled: exit 1, the error on stderr).
    watched = invoke("watch", first, "--jq", "[.id, .status] | @tsv")
    assert watched.exit_code == 1
    assert watched.stdout == f"{first}\tcancelled\n"
    # retry/cancel of many runs: the contract's array.
    planned = ok("retry", first, "--dry-run", "--jq", ".[] | [.id, .action, .plan.step] | @tsv")
    assert planned == f"{first}\tretry\twait_for_ack\n"
    both = invoke("cancel", second, first, "--dry-run", "--jq", "map(.error.code // \"-\") | join(\",\")")
    assert both.exit_code == 4  # the first failure's: the run that had ended
    assert both.stdout == "-,already_ended\n"
