"""The shared options: precedence (flag > env > profile, in either position), ranges of
values, help texts and metavars."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from autorun_cli.cli.app import app

runner = CliRunner()
ENV_VARS = ("AUTORUN_PROVIDER", "AUTORUN_BASE_URL", "AUTORUN_TOKEN", "AUTORUN_PROFILE", "AUTORUN_OUTPUT",
            "AUTORUN_AUTOMATION_ID", "AUTORUN_TENANT_ID", "AUTORUN_ACCOUNT_UUID", "NO_COLOR", "AUTORUN_DEBUG")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    return runner.invoke(app, list(args), env=env, input=input)


# -- 1. flag > env > profile, in either position ----------------------------------------


def test_provider_flag_before_the_command_beats_the_environment():
    # sendrealm would need a base URL (exit 2); local answers an empty list.
    result = invoke("--provider", "local", "list", "-o", "json", env={"AUTORUN_PROVIDER": "sendrealm"})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [] and result.stderr == ""
    # And the environment still applies when no flag is given.
    env_only = invoke("list", env={"AUTORUN_PROVIDER": "sendrealm"})
    assert env_only.exit_code == 2 and "no base URL for the sendrealm provider" in env_only.stderr


def test_output_flag_before_the_command_beats_the_environment():
    result = invoke("-o", "id", "list", env={"AUTORUN_OUTPUT": "json"})
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""  # id mode of no runs: nothing; JSON would print []
    assert invoke("list", env={"AUTORUN_OUTPUT": "json"}).stdout == "[]\n"


def test_output_flag_before_a_group_command_beats_the_environment():
    invoke("config", "add", "crm", "--provider", "local")
    result = invoke("-o", "id", "config", "list", env={"AUTORUN_OUTPUT": "json"})
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "crm\n"


SELECTION = [
    # (flag, env var, Opts field)
    ("--provider", "AUTORUN_PROVIDER", "provider"),
    ("-p", "AUTORUN_PROFILE", "profile"),
    ("--base-url", "AUTORUN_BASE_URL", "base_url"),
    ("--tenant", "AUTORUN_TENANT_ID", "tenant"),
    ("--account", "AUTORUN_ACCOUNT_UUID", "account"),
    ("--automation", "AUTORUN_AUTOMATION_ID", "automation"),
]


@pytest.fixture
def seen(monkeypatch):
    """The options `list` resolved, captured before any request."""
    from autorun_cli import config
    from autorun_cli.errors import UsageError

    captured = []

    def capture(opts):
        captured.append(opts)
        raise UsageError("captured")

    monkeypatch.setattr(config, "resolve", capture)
    return captured


@pytest.mark.parametrize(("flag", "var", "field"), SELECTION)
@pytest.mark.parametrize("position", ["before", "after"])
def test_every_selection_flag_beats_its_environment_variable_in_either_position(seen, flag, var, field, position):
    value = "6f1e0c1a-0000-4000-8000-00000000000f" if field in ("tenant", "account") else "from-flag"
    args = [flag, value, "list"] if position == "before" else ["list", flag, value]
    result = invoke(*args, env={var: "from-env"})
    assert result.exit_code == 2 and "captured" in result.stderr, result.stderr
    assert getattr(seen[-1], field) == value


@pytest.mark.parametrize(("flag", "var", "field"), SELECTION)
def test_flag_after_the_command_beats_the_one_before_and_env_fills_in(seen, flag, var, field):
    first = "6f1e0c1a-0000-4000-8000-00000000000a" if field in ("tenant", "account") else "before"
    second = "6f1e0c1a-0000-4000-8000-00000000000b" if field in ("tenant", "account") else "after"
    invoke(flag, first, "list", flag, second, env={var: "from-env"})
    assert getattr(seen[-1], field) == second
    invoke("list", env={var: "from-env"})
    assert getattr(seen[-1], field) == "from-env"


# -- 2. out-of-range values are bad usage (exit 2) naming the accepted range ---------------


def usage(*args: str, env: dict[str, str] | None = None):
    result = invoke(*args, env=env)
    assert result.exit_code == 2, (args, result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    return lines[0], lines[1]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["list", "--since", "99999999d"], "--since '99999999d' is out of range (accepted: a duration ago up to 36500d, or an ISO 8601 time)"),
        (["list", "--until", "99999999999999999999w"], "--until '99999999999999999999w' is out of range (accepted: a duration ago up to 36500d"),
        (["list", "--since", "0001-01-01T00:00:00+14:00"], "--since '0001-01-01T00:00:00+14:00' is out of range: it falls outside the calendar in UTC"),
        (["list", "--since", "yesterdayish"], "--since 'yesterdayish' is not a time (accepted: a duration ago"),
        (["list", "-n", "99999999999999999999"], "Invalid value for '--limit' / '-n': must be a whole number from 1 to 1000000"),
        (["list", "-n", "0"], "Invalid value for '--limit' / '-n': must be a whole number from 1 to 1000000"),
        (["list", "-n", "many"], "Invalid value for '--limit' / '-n': must be a whole number from 1 to 1000000"),
        (["watch", "run_1", "--interval", "99999999999w"], "--interval '99999999999w' is out of range (accepted: from 10ms to 1d)"),
        (["watch", "run_1", "--interval", "1ms"], "--interval '1ms' is out of range (accepted: from 10ms to 1d)"),
        (["watch", "run_1", "--timeout", "400d"], "--timeout '400d' is out of range (accepted: more than 0, up to 365d)"),
        (["retry", "run_1", "--wait", "--timeout", "0"], "--timeout '0' is out of range (accepted: more than 0, up to 365d)"),
        (["stats", "--since", "99999999d"], "--since '99999999d' is out of range (accepted: a duration ago up to 36500d"),
        (["stats", "-n", "99999999999999999999"], "Invalid value for '--limit' / '-n': must be a whole number from 1 to 1000000"),
        (["retry", "--status", "failed", "--until", "99999999d"], "--until '99999999d' is out of range"),
        (["engine", "work", "--poll", "2h"], "--poll '2h' is out of range (accepted: from 10ms to 1h)"),
        (["engine", "work", "--poll", "soon"], "--poll 'soon' is not a duration (accepted: from 10ms to 1h)"),
        (["automations", "show", "x", "--version", "99999999999999999999"], "Invalid value for '--version': must be a whole number from 1 to 2147483647"),
        (["events", "send", "x", "--occurred-at", "9999-12-31T23:59:59-14:00"], "--occurred-at '9999-12-31T23:59:59-14:00' is out of range"),
        (["trigger", "x", "--occurred-at", "0001-01-01T00:00:00+14:00"], "--occurred-at '0001-01-01T00:00:00+14:00' is out of range"),
    ],
)
def test_out_of_range_values_exit_2_with_the_accepted_range(args, says):
    error, hint = usage(*args)
    assert error.startswith("error: " + says), error
    assert hint.startswith("hint: ")


def test_usage_errors_from_typer_are_one_error_and_one_hint_and_json_with_o_json():
    error, hint = usage("list", "--no-such-flag")
    assert error == "error: No such option: --no-such-flag" and hint == "hint: see `autorun list --help`"
    error, hint = usage("show")
    assert error == "error: Missing argument 'ID'." and hint == "hint: see `autorun show --help`"
    result = invoke("list", "-n", "0", "-o", "json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"] == {
        "code": "usage",
        "message": "Invalid value for '--limit' / '-n': must be a whole number from 1 to 1000000",
        "hint": "see `autorun list --help`",
    }
    # Pydantic's wording never reaches the user.
    for args in (["list", "-o", "bogus"], ["list", "-n", "1.5"], ["automations", "show", "x", "--version", "v1"]):
        error, _ = usage(*args)
        assert "Input should" not in error and "Value error" not in error, error
    # The environment variable is named only when it is set (it may be the culprit).
    assert "env var" not in usage("list", "-o", "bogus")[0]
    assert "(env var: 'AUTORUN_OUTPUT')" in usage("list", env={"AUTORUN_OUTPUT": "yaml"})[0]


def test_in_range_values_still_work():
    assert invoke("list", "--since", "36500d", "-n", "1000000", "-o", "json").stdout == "[]\n"
    assert invoke("list", "--since", "2026-06-01", "--until", "2026-06-08T14:00:00+02:00", "-o", "json").exit_code == 0


# -- 8. engine work: --poll takes durations, -o id prints no "None" -------------------------


def test_engine_work_poll_accepts_500ms_and_id_output_prints_nothing():
    result = invoke("engine", "work", "--poll", "500ms", "-o", "id")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    doc = json.loads(invoke("engine", "work", "--poll", "0.5", "-o", "json").stdout)
    assert doc["timers_fired"] == 0


# -- 8. help: metavars that say what goes there, shared options grouped ----------------------


def _all_command_paths():
    from autorun_cli.cli.app import COMMANDS, build_app

    groups = {"automations": ["list", "show", "validate", "load"], "engine": ["work"], "events": ["send"],
              "config": ["list", "show", "add", "use", "remove"]}
    build_app()  # every command registers
    for name in COMMANDS:
        if name in groups:
            for sub in groups[name]:
                yield [name, sub]
        else:
            yield [name]


@pytest.mark.parametrize("path", list(_all_command_paths()), ids=" ".join)
def test_help_names_values_in_words_and_groups_the_shared_options(path):
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    for typed in ("<str>", "<list[str]>", "<int range>", "<int>", "<float>", "<float range>", "<path>", "{"):
        assert typed not in text, (path, typed, text)
    if "-p/--profile" in text:  # a command with the shared options
        section = text.split("Global options (also before the command; see autorun --help):", 1)[1]
        flat = " ".join(section.split())
        for flag in ("-p/--profile NAME", "--provider NAME", "--base-url URL", "--tenant UUID", "--account UUID",
                     "--automation ID", "-o/--output table|json|ndjson|id", "--json", "--color auto|always|never",
                     "--time-format relative|iso", "-v/--verbose", "--jq EXPR"):
            assert flag in flat, (path, flag)
        # Described once, in `autorun --help`, not repeated in every command's help.
        assert "Profile of the config file to use" not in text and "[env var: AUTORUN_PROFILE]" not in text


def test_root_help_describes_the_shared_options_in_full():
    text = invoke("--help").stdout
    assert "Profile of the config file to use" in text and "AUTORUN_PROFILE" in text
    assert "-p, --profile NAME" in text and "--since" not in text


def test_validation_messages_of_definitions_and_run_documents_are_plain_words(tmp_path):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text('id = "x"\ntrigger = "a"\nidentity = { type = "email", from = "email" }\n'
                        '[[steps]]\nkey = "s"\ntype = "delay"\nduration = "1s"\nretry = { attempts = "many" }\n')
    error, _ = usage("automations", "validate", str(bad_toml))
    assert error == f"error: invalid automation {bad_toml}: name: is missing (required); steps[0].retry.attempts: must be a whole number"
    bad_run = tmp_path / "run.json"
    bad_run.write_text('{"id": "r", "provider": "local", "status": "completed", "steps": [{"status": 5}]}')
    error, _ = usage("replay", str(bad_run), "-d", str(bad_toml))
    assert error == f"error: {bad_run}: not a valid autorun run document (steps.0.status: must be text)"
