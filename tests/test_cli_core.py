"""The CLI's own behaviour: options, config profiles, errors, output safety, completions."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autorun_cli.cli.app import app
from autorun_cli.cli.commands.completion import FILES, script
from autorun_cli.model import Run, Step
from autorun_cli.providers import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))
    for var in ("AUTORUN_PROVIDER", "AUTORUN_BASE_URL", "AUTORUN_TOKEN", "AUTORUN_PROFILE", "AUTORUN_OUTPUT",
                "AUTORUN_AUTOMATION_ID", "AUTORUN_TENANT_ID", "AUTORUN_ACCOUNT_UUID", "NO_COLOR", "AUTORUN_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    return runner.invoke(app, list(args), env=env, input=input)


# -- version, help -----------------------------------------------------------

def test_version_prints_package_version():
    from autorun_cli import __version__

    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"autorun {__version__}"


def test_unknown_flag_is_usage_error_exit_2():
    result = invoke("list", "--no-such-flag")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


# -- local default, empty store ----------------------------------------------

def test_list_with_no_configuration_uses_local_and_prints_json_array():
    result = invoke("list", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [] or isinstance(json.loads(result.stdout), list)
    assert result.stderr == ""


# -- errors --------------------------------------------------------------------

def test_json_mode_error_document_on_stdout_and_lines_on_stderr():
    result = invoke("list", "--status", "bogus", "-o", "json")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["error"]["code"] == "usage"
    assert "bogus" in doc["error"]["message"]
    assert doc["error"]["hint"].startswith("use one or more of")
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: ")


def test_options_before_the_command_apply_and_after_wins():
    before = invoke("-o", "json", "list", "--status", "nope")
    assert before.exit_code == 2
    assert json.loads(before.stdout)["error"]["code"] == "usage"
    after = invoke("-o", "json", "list", "-o", "table", "--status", "nope")
    assert after.exit_code == 2
    assert after.stdout == ""  # table mode: the error goes to stderr only


def test_unknown_provider_exit_2():
    result = invoke("list", "--provider", "nosuch")
    assert result.exit_code == 2
    assert "unknown provider 'nosuch'" in result.stderr
    assert "hint: use one of: plannr, sendrealm, tenant, generic, local" in result.stderr


def test_http_provider_without_base_url_names_the_fix():
    result = invoke("list", "--provider", "plannr")
    assert result.exit_code == 2
    assert "AUTORUN_BASE_URL" in result.stderr


def test_bad_since_value():
    result = invoke("list", "--since", "yesterdayish")
    assert result.exit_code == 2
    assert "not a time" in result.stderr


def test_malformed_id_exit_2():
    result = invoke("show", "../etc/passwd")
    assert result.exit_code == 2
    assert "malformed run ID" in result.stderr


def test_internal_error_has_no_traceback_unless_debug(monkeypatch):
    from autorun_cli.providers import local

    def boom(self, query):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(local.LocalProvider, "iter_runs", boom)
    result = invoke("list")
    assert result.exit_code == 1
    assert "internal error: RuntimeError: kaboom" in result.stderr
    assert "AUTORUN_DEBUG=1" in result.stderr
    assert "Traceback" not in result.output
    debug = invoke("list", env={"AUTORUN_DEBUG": "1"})
    assert isinstance(debug.exception, RuntimeError)


# -- config ---------------------------------------------------------------------

def test_config_add_use_show_remove(isolated, monkeypatch):
    cfg = isolated / "config.toml"
    r = invoke("config", "add", "crm", "--provider", "plannr", "--base-url", "https://api.plannrcrm.com", "--token-env", "PLANNR_TOKEN")
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    r = invoke("config", "add", "mail", "--provider", "sendrealm", "--base-url", "https://api.sendrealm.com", "--token-stdin", input="s3cr3t-token\n")
    assert r.exit_code == 0, r.output
    listed = json.loads(invoke("config", "list", "-o", "json").stdout)
    assert [(p["name"], p["default"]) for p in listed] == [("crm", True), ("mail", False)]
    assert invoke("config", "use", "mail").exit_code == 0
    shown = invoke("config", "show", "-o", "json")
    assert shown.exit_code == 0
    doc = json.loads(shown.stdout)
    assert doc["name"] == "mail" and doc["token"] == "***"
    assert "s3cr3t-token" not in shown.output
    table = invoke("config", "show", "mail")
    assert "s3cr3t-token" not in table.output
    assert invoke("config", "remove", "mail").exit_code == 0
    assert json.loads(invoke("config", "show", "-o", "json").stdout)["name"] == "crm"


def test_profile_precedence_flag_over_env_over_profile(isolated, monkeypatch):
    from autorun_cli import config
    from autorun_cli.cli.options import Opts

    invoke("config", "add", "crm", "--provider", "plannr", "--base-url", "https://profile.example", "--token-env", "PLANNR_TOKEN")
    monkeypatch.setenv("PLANNR_TOKEN", "tok-from-profile-env")
    s = config.resolve(Opts())
    assert (s.provider, s.base_url, s.token) == ("plannr", "https://profile.example", "tok-from-profile-env")
    monkeypatch.setenv("AUTORUN_TOKEN", "tok-env")
    s = config.resolve(Opts(base_url="https://flag.example"))
    assert (s.base_url, s.token) == ("https://flag.example", "tok-env")


def test_missing_token_env_is_reported(isolated):
    invoke("config", "add", "crm", "--provider", "plannr", "--base-url", "https://x.example", "--token-env", "NOPE_TOKEN")
    r = invoke("list")
    assert r.exit_code == 2
    assert "$NOPE_TOKEN" in r.stderr and "export NOPE_TOKEN" in r.stderr


def test_invalid_toml_names_file_and_fix(isolated):
    (isolated / "config.toml").write_text("[profiles.crm\nprovider = 'plannr'\n")
    r = invoke("list")
    assert r.exit_code == 2
    assert str(isolated / "config.toml") in r.stderr
    assert "not valid TOML" in r.stderr and r.stderr.count("\n") == 2


def test_unknown_profile_key_and_profile(isolated):
    (isolated / "config.toml").write_text('[profiles.crm]\nprovider = "plannr"\nbase_ulr = "x"\n')
    r = invoke("list", "-p", "crm")
    assert r.exit_code == 2
    assert r.stderr == (
        f"error: config file {isolated / 'config.toml'}, line 3: unknown key profiles.crm.base_ulr\n"
        "hint: known keys: provider, base_url, token, token_env, tenant, account, automation, "
        "list_path, get_path, retry_path, cancel_path, events_path, engine_url\n"
    )
    (isolated / "config.toml").write_text('[profiles.crm]\nprovider = "plannr"\n')
    r = invoke("list", "-p", "other")
    assert r.exit_code == 2 and "unknown profile 'other'" in r.stderr


def test_config_add_validates_input():
    assert invoke("config", "add", "x", "--provider", "plannr").exit_code == 2
    assert invoke("config", "add", "x", "--provider", "zz", "--base-url", "https://a").exit_code == 2
    assert invoke("config", "add", "x y", "--provider", "local").exit_code == 2
    assert invoke("config", "add", "x", "--provider", "plannr", "--base-url", "ftp://a").exit_code == 2


# -- output safety ------------------------------------------------------------------

class _EvilProvider:
    """A provider whose API text is full of markup and escape sequences."""


@pytest.fixture
def evil(monkeypatch):
    from autorun_cli.providers.base import Provider

    evil_name = "[bold red]pwned[/] \x1b[31mred\x1b[0m \x07"

    class Evil(Provider):
        name = "evil"
        uses_http = False

        def iter_runs(self, query):
            yield Run(id="run_1", provider="evil", name=evil_name, status="failed", created_at="2026-01-01T00:00:00Z")

        def get_run(self, run_id):
            return Run(
                id=run_id, provider="evil", name=evil_name, status="failed",
                steps=[Step(key="s1", name="[link=http://x]click[/link]", status="failed", info="\x1b]0;title\x07info")],
                error={"message": "[red]boom[/red] \x1b[2J", "step": "s1", "detail": None},
            )

    import sys
    import types

    mod = types.ModuleType("autorun_test_evil")
    mod.Evil = Evil
    monkeypatch.setitem(sys.modules, "autorun_test_evil", mod)
    monkeypatch.setitem(REGISTRY, "evil", "autorun_test_evil:Evil")
    monkeypatch.setattr("autorun_cli.providers.NAMES", tuple(REGISTRY))
    monkeypatch.setattr("autorun_cli.config.resolve", _resolve_evil)
    return evil_name


def _resolve_evil(opts):
    from autorun_cli.providers.base import Settings

    return Settings(provider="evil")


def test_markup_and_escapes_in_api_text_are_shown_literally(evil):
    for args in (("list",), ("show", "run_1"), ("list", "--color", "always"), ("show", "run_1", "--color", "always")):
        r = invoke(*args, env={"COLUMNS": "250"})
        out = r.stdout
        assert "[bold red]pwned[/]" in out, args
        assert "\\x1b[31mred" in out, args
        if "--color" not in args:
            assert "\x1b" not in out, args  # not a terminal: no escape codes at all
        else:
            # only Rich's own styling escapes, never the API's ones
            assert "\x1b[31mred" not in out and "\x1b[2J" not in out and "\x1b]0;" not in out
    shown = invoke("show", "run_1", env={"COLUMNS": "250"})
    assert "[red]boom[/red]" in shown.stdout
    assert "[link=http://x]click[/link]" in shown.stdout


def test_json_output_keeps_text_exact(evil):
    r = invoke("list", "-o", "json")
    assert json.loads(r.stdout)[0]["name"] == evil


def test_no_color_env_means_no_escape_codes_even_when_forced_auto(evil):
    r = invoke("list", env={"NO_COLOR": "1"})
    assert "\x1b[" not in r.stdout


# -- completions --------------------------------------------------------------------

@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_files_are_current(shell):
    r = invoke("completion", shell)
    assert r.exit_code == 0
    assert r.stdout == script(shell)
    checked_in = (ROOT / "completions" / FILES[shell]).read_text()
    assert checked_in == r.stdout, f"completions/{FILES[shell]} is stale: regenerate with `autorun completion {shell} > completions/{FILES[shell]}`"


def test_completion_callback_answers_for_commands():
    # The scripts call autorun back with _AUTORUN_COMPLETE; Typer answers with commands.
    import subprocess
    import sys

    env = {**os.environ, "_AUTORUN_COMPLETE": "complete_bash", "COMP_WORDS": "autorun sh", "COMP_CWORD": "1"}
    proc = subprocess.run([sys.executable, "-m", "autorun_cli"], env=env, capture_output=True, text=True, timeout=30)
    assert "show" in proc.stdout.split()


# -- building only the command that runs ----------------------------------------

def test_commands_table_lists_every_command():
    import typer

    from autorun_cli.cli.app import COMMANDS, build_app

    full = typer.main.get_command(build_app())
    assert set(full.commands) == set(COMMANDS)
    for name in COMMANDS:
        # Each entry's module registers that command (and nothing that breaks it).
        assert name in typer.main.get_command(build_app(name)).commands


def test_root_value_options_are_exactly_the_roots_options_that_take_a_value():
    import typer

    from autorun_cli.cli.app import ROOT_VALUE_OPTIONS, build_app

    root = typer.main.get_command(build_app("list"))
    taking = {opt for p in root.params if not getattr(p, "is_flag", False) for opt in p.opts}
    assert taking == set(ROOT_VALUE_OPTIONS)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["show", "run_1"], "show"),
        (["-p", "show", "list"], "list"),  # a profile named "show"
        (["--provider", "local", "-o", "json", "show", "x"], "show"),
        (["--output=json", "--json", "-v", "events", "send"], "events"),
        (["-ojson", "list"], "list"),
        (["--help"], None),
        ([], None),
        (["shw", "x"], None),  # not a command: the full app answers (with its suggestions)
        (["--", "show"], None),
    ],
)
def test_invoked_command_reads_past_root_options(args, expected):
    from autorun_cli.cli.app import invoked_command

    assert invoked_command(args) == expected


def _real(*args: str, env: dict[str, str] | None = None):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "autorun_cli", *args], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=60)


def test_a_real_start_builds_the_named_command_and_still_parses_root_options(isolated):
    ok = _real("--provider", "local", "-o", "json", "list")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == []
    flags = _real("--json", "list", "--provider", "local")  # a flag before, options after
    assert flags.returncode == 0 and json.loads(flags.stdout) == []
    typo = _real("shw")
    assert typo.returncode == 2
    assert "No such command" in typo.stderr and "Traceback" not in typo.stderr
    helped = _real("show", "--help")
    assert helped.returncode == 0 and "--raw" in helped.stdout


def test_gc_paused_for_start_up_is_back_on_before_the_command_runs():
    import functools
    import gc

    from autorun_cli.cli import app as appmod

    appmod._pause_gc()
    try:
        assert not gc.isenabled()
        seen: list[bool] = []
        cli = appmod.build_app("completion")
        original = cli.registered_commands[0].callback

        @functools.wraps(original)
        def spy(shell):
            seen.append(gc.isenabled())
            return original(shell)

        cli.registered_commands[0].callback = spy
        r = runner.invoke(cli, ["completion", "bash"])
        assert r.exit_code == 0, r.output
        assert seen == [True]  # the root callback turned it back on
    finally:
        gc.enable()
        gc.unfreeze()


@pytest.mark.parametrize("mode", ["table", "json", "ndjson"])
def test_a_reader_that_leaves_early_ends_the_command_quietly(isolated, mode):
    # `autorun show … | head -1`: a real pipe whose reader closes after a few bytes.
    import subprocess
    import sys

    assert _real("demo").returncode == 0
    run_id = _real("list", "-o", "id", "-n", "1").stdout.split()[0]
    env = {**os.environ, "COLUMNS": "100"}
    proc = subprocess.Popen([sys.executable, "-m", "autorun_cli", "show", *[run_id] * 120, "-o", mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(20)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert head
    assert "Traceback" not in err and "Exception ignored" not in err and "error:" not in err
