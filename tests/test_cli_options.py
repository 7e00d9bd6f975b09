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
