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


def error_lines(result, code: int) -> tuple[str, str]:
    """The contract's failure: exit ``code``, nothing on stdout (table mode), and on
    stderr exactly one ``error:`` line and one ``hint:`` line, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: "), result.stderr
    return lines[0][len("error: "):], lines[1][len("hint: "):]


# -- version, help -----------------------------------------------------------

def test_version_prints_package_version():
    from autorun_cli import __version__

    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout == f"autorun {__version__}\n"
    assert result.stderr == ""


def test_unknown_flag_is_usage_error_exit_2():
    error, hint = error_lines(invoke("list", "--no-such-flag"), 2)
    assert error == "No such option: --no-such-flag"
    assert hint == "see `autorun list --help`"


# -- local default, empty store ----------------------------------------------

def test_list_with_no_configuration_uses_local_and_prints_json_array():
    result = invoke("list", "-o", "json")
    assert result.exit_code == 0, result.output
    assert result.stdout == "[]\n"  # an empty store: an empty array, not nothing
    assert result.stderr == ""
    table = invoke("list")
    assert table.exit_code == 0 and table.stdout == ""
    assert table.stderr == "no runs match\n"


# -- errors --------------------------------------------------------------------

def test_json_mode_error_document_on_stdout_and_lines_on_stderr():
    result = invoke("list", "--status", "bogus", "-o", "json")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["error"]["code"] == "usage"
    assert "bogus" in doc["error"]["message"]
    assert doc["error"]["hint"].startswith("use one or more of")
    assert result.stderr == f"error: {doc['error']['message']}\nhint: {doc['error']['hint']}\n"


def test_options_before_the_command_apply_and_after_wins():
    before = invoke("-o", "json", "list", "--status", "nope")
    assert before.exit_code == 2
    assert json.loads(before.stdout)["error"]["code"] == "usage"
    after = invoke("-o", "json", "list", "-o", "table", "--status", "nope")
    error, _ = error_lines(after, 2)  # table mode: the error goes to stderr only
    assert error == json.loads(before.stdout)["error"]["message"]


def test_unknown_provider_exit_2():
    error, hint = error_lines(invoke("list", "--provider", "nosuch"), 2)
    assert error == "unknown provider 'nosuch'"
    assert hint == "use one of: plannr, sendrealm, tenant, generic, local"


def test_http_provider_without_base_url_names_the_fix():
    error, hint = error_lines(invoke("list", "--provider", "plannr"), 2)
    assert error == "no base URL for the plannr provider"
    assert hint.startswith("pass --base-url URL, set AUTORUN_BASE_URL, or add one to the profile")


def test_bad_since_value():
    error, hint = error_lines(invoke("list", "--since", "yesterdayish"), 2)
    assert error == "--since 'yesterdayish' is not a time (accepted: a duration ago up to 36500d, or an ISO 8601 time)"
    assert hint == "e.g. --since 2h, --since 2026-06-01, --since 2026-06-08T14:00:00Z"


def test_malformed_id_exit_2():
    error, hint = error_lines(invoke("show", "../etc/passwd"), 2)
    assert error.startswith("malformed run ID '../etc/passwd'")
    assert "autorun list" in hint


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
    assert debug.exit_code == 1
    assert "Traceback (most recent call last)" in debug.stderr and "RuntimeError: kaboom" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-2].startswith("error: internal error: RuntimeError: kaboom")


# -- config ---------------------------------------------------------------------

def test_config_add_use_show_remove(isolated, monkeypatch):
    cfg = isolated / "config.toml"
    r = invoke("config", "add", "crm", "--provider", "plannr", "--base-url", "https://api.plannrcrm.com", "--token-env", "PLANNR_TOKEN")
    assert r.exit_code == 0, r.output
    assert (r.stdout, r.stderr) == ("", f"saved profile 'crm' in {cfg} (default)\n")
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    r = invoke("config", "add", "mail", "--provider", "sendrealm", "--base-url", "https://api.sendrealm.com", "--token-stdin", input="s3cr3t-token\n")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", f"saved profile 'mail' in {cfg}\n")
    listed = invoke("config", "list", "-o", "json")
    assert listed.stderr == ""
    assert [(p["name"], p["default"]) for p in json.loads(listed.stdout)] == [("crm", True), ("mail", False)]
    used = invoke("config", "use", "mail")
    assert (used.exit_code, used.stdout, used.stderr) == (0, "", "default profile is now 'mail'\n")
    shown = invoke("config", "show", "-o", "json")
    assert shown.exit_code == 0 and shown.stderr == ""
    doc = json.loads(shown.stdout)
    assert doc["name"] == "mail" and doc["token"] == "***"
    assert "s3cr3t-token" not in shown.output
    table = invoke("config", "show", "mail")
    assert "s3cr3t-token" not in table.output and "***" in table.stdout
    removed = invoke("config", "remove", "mail")
    assert (removed.exit_code, removed.stdout) == (0, "")
    assert removed.stderr == "removed profile 'mail'; the default is now 'crm'\n"
    assert json.loads(invoke("config", "show", "-o", "json").stdout)["name"] == "crm"
    error, hint = error_lines(invoke("config", "remove", "mail"), 2)
    assert error == f"no profile 'mail' in {cfg}" and hint == "see `autorun config list`"


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
    error, hint = error_lines(invoke("list"), 2)
    assert error == "profile 'crm' reads its token from $NOPE_TOKEN, which is not set"
    assert hint == "export NOPE_TOKEN=… (or AUTORUN_TOKEN=…)"


def test_invalid_toml_names_file_and_fix(isolated):
    (isolated / "config.toml").write_text("[profiles.crm\nprovider = 'plannr'\n")
    error, hint = error_lines(invoke("list"), 2)
    assert error.startswith(f"config file {isolated / 'config.toml'}, line 1: not valid TOML: ")
    assert hint == "fix that line, or move the file aside and recreate it with `autorun config add`"


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
    error, hint = error_lines(invoke("list", "-p", "other"), 2)
    assert error == f"unknown profile 'other' (config file {isolated / 'config.toml'}; profiles: crm)"
    assert hint == "create it with `autorun config add other --provider … --base-url …` or pick one with -p"


def test_config_add_validates_input(isolated):
    cases = [
        (("x", "--provider", "plannr"), "the plannr provider needs --base-url",
         "e.g. autorun config add x --provider plannr --base-url https://api.example.com"),
        (("x", "--provider", "zz", "--base-url", "https://a"), "unknown provider 'zz'",
         "use one of: plannr, sendrealm, tenant, generic, local"),
        (("x y", "--provider", "local"), "profile name 'x y' is not allowed", "use letters, digits, '-', '_' or '.'"),
        (("x", "--provider", "plannr", "--base-url", "ftp://a"), "base URL 'ftp://a' is not an http(s) URL",
         "pass e.g. --base-url https://api.example.com"),
        (("x", "--provider", "local", "--token-env", "NOT-A-VAR"), "--token-env 'NOT-A-VAR' is not an environment variable name",
         "e.g. --token-env PLANNR_TOKEN"),
    ]
    for args, message, fix in cases:
        assert error_lines(invoke("config", "add", *args), 2) == (message, fix)
    assert not (isolated / "config.toml").exists()  # nothing written for bad input


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
    assert r.exit_code == 0 and r.stderr == ""
    assert json.loads(r.stdout)[0]["name"] == evil


def test_no_color_env_means_no_escape_codes_even_when_forced_auto(evil):
    r = invoke("list", env={"NO_COLOR": "1", "COLUMNS": "250"})
    assert r.exit_code == 0 and r.stderr == ""
    assert "run_1" in r.stdout  # the table is there...
    assert "\x1b[" not in r.stdout  # ...without a single escape code


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
