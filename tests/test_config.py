"""Profiles: `config add` on an existing profile, broken files, tenant UUIDs, safe
writes and path templates."""

from __future__ import annotations

import json
import os
import stat

import pytest
from typer.testing import CliRunner

from autorun_cli import config
from autorun_cli.cli.app import app

runner = CliRunner()
TENANT = "6f1e0c1a-0000-4000-8000-000000000001"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))
    for var in ("AUTORUN_PROVIDER", "AUTORUN_BASE_URL", "AUTORUN_TOKEN", "AUTORUN_PROFILE", "AUTORUN_OUTPUT",
                "AUTORUN_AUTOMATION_ID", "AUTORUN_TENANT_ID", "AUTORUN_ACCOUNT_UUID", "NO_COLOR", "AUTORUN_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), input=input, env=env)


def fails(code: int, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> tuple[str, str]:
    result = invoke(*args, input=input, env=env)
    assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), result.stderr
    return lines[0], lines[1]


def profiles(tmp) -> dict:
    import tomllib

    return tomllib.loads((tmp / "config.toml").read_text())["profiles"]


# -- 4. add on an existing profile ------------------------------------------------------


def test_add_refuses_an_existing_profile_without_force_and_keeps_it(isolated):
    r = invoke("config", "add", "mail", "--provider", "sendrealm", "--base-url", "https://api.sendrealm.com",
               "--automation", "aut_1", "--token-stdin", input="s3cret\n")
    assert r.exit_code == 0, r.stderr
    before = (isolated / "config.toml").read_bytes()
    error, hint = fails(2, "config", "add", "mail", "--provider", "sendrealm", "--base-url", "https://other.example")
    assert error == f"error: profile 'mail' already exists in {isolated / 'config.toml'}"
    assert "autorun config add mail --force" in hint and "autorun config remove mail" in hint
    assert (isolated / "config.toml").read_bytes() == before  # nothing written


def test_add_force_updates_the_given_keys_and_keeps_the_token_and_automation(isolated):
    invoke("config", "add", "mail", "--provider", "sendrealm", "--base-url", "https://api.sendrealm.com",
           "--automation", "aut_1", "--token-stdin", input="s3cret\n")
    r = invoke("config", "add", "mail", "--base-url", "https://eu.sendrealm.com", "--force")
    assert r.exit_code == 0, r.stderr
    assert r.stderr.startswith("updated profile 'mail' in ")
    assert profiles(isolated)["mail"] == {
        "provider": "sendrealm", "base_url": "https://eu.sendrealm.com", "automation": "aut_1", "token": "s3cret",
    }


def test_a_new_profile_needs_a_provider(isolated):
    error, hint = fails(2, "config", "add", "fresh", "--base-url", "https://x.example")
    assert error == "error: a new profile needs --provider"
    assert not (isolated / "config.toml").exists()


# -- 5. a broken file stops only what needs it, naming file and line ------------------------


BROKEN_TOML = '[profiles.crm]\nprovider = "plannr"\nbase_url = "https://x.example\n'


def test_invalid_toml_does_not_stop_a_command_that_does_not_need_the_file(isolated):
    (isolated / "config.toml").write_text(BROKEN_TOML)
    r = invoke("--provider", "local", "list", "-o", "json")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "[]\n"
    # It says why the file was skipped, with file and line, on stderr only.
    assert r.stderr.startswith(f"warning: config file {isolated / 'config.toml'}, line 3: not valid TOML: ")
    assert r.stderr.endswith("; ignoring the file (no profile is used)\n")


def test_invalid_toml_stops_a_command_that_needs_a_profile_naming_file_and_line(isolated):
    (isolated / "config.toml").write_text(BROKEN_TOML)
    error, hint = fails(2, "list")
    assert error.startswith(f"error: config file {isolated / 'config.toml'}, line 3: not valid TOML: ")
    assert "(at line" not in error  # said once, in front
    assert hint == "hint: fix that line, or move the file aside and recreate it with `autorun config add`"
    assert fails(2, "-p", "crm", "--provider", "local", "list")[0] == error
    assert fails(2, "config", "list")[0] == error
    # config add never overwrites a file it could not read.
    assert fails(2, "config", "add", "x", "--provider", "local")[0] == error
    assert (isolated / "config.toml").read_text() == BROKEN_TOML


def test_a_broken_profile_stops_only_commands_that_use_it(isolated):
    (isolated / "config.toml").write_text(
        'default_profile = "ok"\n\n[profiles.ok]\nprovider = "local"\n\n'
        '[profiles.bad]\nprovider = "plannr"\nbase_url = "https://x.example"\ntenant = 42\n'
    )
    assert invoke("list", "-o", "json").stdout == "[]\n"  # the default profile is fine
    error, hint = fails(2, "list", "-p", "bad")
    assert error == f"error: config file {isolated / 'config.toml'}, line 9: profiles.bad.tenant must be a string"
    assert hint == 'hint: write it as tenant = "…"'
    listed = invoke("config", "list", "-o", "json")
    assert listed.exit_code == 0
    assert [p["name"] for p in json.loads(listed.stdout)] == ["ok", "bad"]
    assert "warning: config file" in listed.stderr and "line 9" in listed.stderr
    assert fails(2, "config", "use", "bad")[0] == error
    assert invoke("config", "remove", "bad").exit_code == 0  # the way to fix it
    assert list(profiles(isolated)) == ["ok"]


def test_a_broken_default_profile_is_skipped_when_the_provider_is_given(isolated):
    (isolated / "config.toml").write_text('default_profile = "crm"\n[profiles.crm]\nprovider = "plannr"\nbase_ulr = "x"\n')
    r = invoke("list", "--provider", "local", "-o", "json")
    assert r.exit_code == 0 and r.stdout == "[]\n"
    assert "line 4: unknown key profiles.crm.base_ulr; ignoring the default profile" in r.stderr
    error, _ = fails(2, "list")
    assert error == f"error: config file {isolated / 'config.toml'}, line 4: unknown key profiles.crm.base_ulr"


def test_default_profile_naming_no_profile_names_its_line(isolated):
    (isolated / "config.toml").write_text('# profiles\n\ndefault_profile = "gone"\n')
    error, hint = fails(2, "list")
    assert error == f"error: config file {isolated / 'config.toml'}, line 3: default_profile 'gone' names no profile"


# -- 7. tenant IDs are UUIDs --------------------------------------------------------------


@pytest.fixture
def no_requests(monkeypatch):
    """Fail the test if anything reaches the network layer."""
    import autorun_cli.providers.tenant as tenant

    def refuse(*a, **k):
        raise AssertionError("a request was sent")

    monkeypatch.setattr(tenant.TenantProvider, "iter_runs", refuse)
    monkeypatch.setattr(tenant.TenantProvider, "get_run", refuse)


@pytest.mark.parametrize("how", ["flag", "env", "profile"])
def test_a_malformed_tenant_is_refused_before_any_request(isolated, no_requests, how):
    env = {"AUTORUN_TOKEN": "tok"}
    args = ["list", "--provider", "tenant", "--base-url", "https://psa.example"]
    if how == "flag":
        args += ["--tenant", "acme"]
    elif how == "env":
        env["AUTORUN_TENANT_ID"] = "acme"
    else:
        (isolated / "config.toml").write_text('[profiles.psa]\nprovider = "tenant"\nbase_url = "https://psa.example"\ntenant = "acme"\n')
        args = ["list", "-p", "psa"]
    error, hint = fails(2, *args, env=env)
    if how == "profile":
        assert error == f"error: config file {isolated / 'config.toml'}, line 4: profiles.psa.tenant is 'acme', not a UUID (tenant IDs are UUIDs)"
    else:
        assert error.startswith("error: tenant ID 'acme' (--tenant / AUTORUN_TENANT_ID) is not a UUID")
        assert hint == "hint: pass the tenant's UUID with --tenant or AUTORUN_TENANT_ID"


def test_a_tenant_id_on_another_provider_is_not_checked(isolated):
    r = invoke("list", "--provider", "local", "--tenant", "acme", "-o", "json")
    assert r.exit_code == 0 and r.stdout == "[]\n"


def test_config_add_checks_tenant_and_account_uuids(isolated):
    error, hint = fails(2, "config", "add", "psa", "--provider", "tenant", "--base-url", "https://psa.example", "--tenant", "acme")
    assert error == "error: --tenant 'acme' is not a UUID (tenant IDs are UUIDs)"
    assert hint == "hint: e.g. --tenant 6f1e0c1a-0000-4000-8000-000000000001"
    error, _ = fails(2, "config", "add", "crm", "--provider", "plannr", "--base-url", "https://p.example", "--account", "12")
    assert error == "error: --account '12' is not a UUID (plannr account IDs are UUIDs)"
    assert not (isolated / "config.toml").exists()
    ok = invoke("config", "add", "psa", "--provider", "tenant", "--base-url", "https://psa.example", "--tenant", TENANT)
    assert ok.exit_code == 0, ok.stderr


# -- 27. safe writes, path templates ---------------------------------------------------------


def test_config_is_written_through_a_fresh_random_temp_file_not_a_planted_symlink(isolated):
    victim = isolated / "victim.txt"
    victim.write_text("precious\n")
    os.symlink(victim, isolated / "config.toml.tmp")  # the old fixed temp name
    r = invoke("config", "add", "crm", "--provider", "local")
    assert r.exit_code == 0, r.stderr
    assert victim.read_text() == "precious\n"
    cfg = isolated / "config.toml"
    assert not cfg.is_symlink() and stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert profiles(isolated) == {"crm": {"provider": "local"}}
    # No temporary file is left behind.
    assert sorted(p.name for p in isolated.iterdir()) == ["config.toml", "config.toml.tmp", "victim.txt"]


def test_save_uses_mkstemp_in_the_same_folder(isolated, monkeypatch):
    import tempfile

    seen = []
    real = tempfile.mkstemp

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", spy)
    config.save({"profiles": {}}, isolated / "sub" / "config.toml")
    assert [k["dir"] for k in seen] == [isolated / "sub"]


def test_a_symlinked_config_file_is_written_where_it_points(isolated):
    real = isolated / "dotfiles" / "autorun.toml"
    real.parent.mkdir()
    real.write_text('[profiles.a]\nprovider = "local"\n')
    (isolated / "config.toml").unlink(missing_ok=True)
    os.symlink(real, isolated / "config.toml")
    assert invoke("config", "add", "b", "--provider", "local").exit_code == 0
    assert (isolated / "config.toml").is_symlink()
    assert "[profiles.b]" in real.read_text()


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("/{id:>99999999999}", "formats {id} (only a plain {id} is allowed)"),
        ("/{id!r}", "formats {id} (only a plain {id} is allowed)"),
        ("/{id.__class__}", "uses {id.__class__}, which is not a placeholder"),
        ("/{id[0]}", "uses {id[0]}, which is not a placeholder"),
        ("/{token}", "uses {token}, which is not a placeholder"),
        ("/{", "is not a valid template (Single '{' encountered in format string)"),
    ],
)
def test_path_templates_take_only_the_documented_placeholders(isolated, template, problem):
    (isolated / "config.toml").write_text(
        f'[profiles.t]\nprovider = "tenant"\nbase_url = "https://psa.example"\nget_path = "{template}"\n'
    )
    error, hint = fails(2, "show", TENANT, "-p", "t", env={"AUTORUN_TOKEN": "tok-8c1f27"})
    assert error == f"error: config file {isolated / 'config.toml'}, line 4: profiles.t.get_path {problem}"
    assert hint == "hint: placeholders are {id}, {automation}, {automation_id}; write {{ and }} for braces"


def test_fill_path_fills_documented_placeholders_and_refuses_missing_ones():
    from autorun_cli.errors import UsageError

    assert config.fill_path("get_path", "/a/{automation}/{automation_id}/{id}/{{x}}", {"automation_id": "au", "id": "r1"}) == "/a/au/au/r1/{x}"
    with pytest.raises(UsageError, match=r"uses \{automation\}, which this endpoint does not have"):
        config.fill_path("get_path", "/a/{automation}/{id}", {"id": "r1"})


def test_local_engine_commands_read_only_the_engine_url_of_the_profile(isolated):
    (isolated / "config.toml").write_text(BROKEN_TOML)
    r = invoke("automations", "list", "-o", "json")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "[]\n"
    assert "line 3: not valid TOML" in r.stderr and "the local engine uses its default store" in r.stderr
    assert fails(2, "automations", "list", env={"AUTORUN_PROFILE": "crm"})[0].startswith(f"error: config file {isolated / 'config.toml'}, line 3")
    # A default profile broken elsewhere still names its store.
    (isolated / "config.toml").write_text(
        f'default_profile = "crm"\n[profiles.crm]\nprovider = "plannr"\nbase_ulr = "x"\nengine_url = "sqlite:///{isolated}/other.db"\n'
    )
    assert invoke("automations", "list", "-o", "json").exit_code == 0
    assert (isolated / "other.db").exists()
