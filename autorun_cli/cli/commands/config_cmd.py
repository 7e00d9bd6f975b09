"""``autorun config``: profiles in the TOML config file."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from autorun_cli.cli.completing import complete_profile, complete_provider
from autorun_cli.cli.options import JqOpt, JsonOpt, OutputOpt

if TYPE_CHECKING:
    from autorun_cli.cli.output import Output

app = typer.Typer(help="Manage profiles: where each API is and how to authenticate.", no_args_is_help=True)


def _out(ctx: typer.Context, output: Any = None, json_: Any = False, jq: str | None = None) -> Output:
    from autorun_cli.cli.output import output_for, register_known_secrets

    out = output_for(ctx, output, json_, jq)
    # These commands print the file's values (a base URL's password…): mask them all.
    register_known_secrets()
    return out


def _mask(profile: dict[str, str]) -> dict[str, Any]:
    shown: dict[str, Any] = dict(profile)
    if "token" in shown:
        shown["token"] = "***"  # never any part of a secret
    if "token_env" in shown:
        shown["token_env_set"] = bool(os.environ.get(shown["token_env"]))
    return shown


@app.command("list")
def list_profiles(ctx: typer.Context, output: OutputOpt = None, json_: JsonOpt = False, jq: JqOpt = None) -> None:
    """List the profiles and which one is the default."""
    from autorun_cli import config
    from autorun_cli.errors import ConfigError

    out = _out(ctx, output, json_, jq)
    loaded = config.read()
    loaded.require()
    default = loaded.doc.get("default_profile")
    rows = []
    for name, p in loaded.profiles.items():
        try:
            loaded.profile(name)
        except ConfigError as exc:
            out.warn(exc.message)  # listed anyway: `config remove` or an edit fixes it
        p = p if isinstance(p, dict) else {}
        rows.append({"name": name, "default": name == default, "provider": p.get("provider"), "base_url": p.get("base_url")})

    def table(rows: list[dict[str, Any]]):
        from autorun_cli.render import safe
        from autorun_cli.render.layout import Col, FitTable

        t = FitTable(Col(""), Col("NAME", priority=2), Col("PROVIDER", priority=1), Col("BASE URL", label="base url"))
        for r in rows:
            t.add_row("*" if r["default"] else "", safe(r["name"], "bold"), safe(r["provider"]), safe(r["base_url"]))
        return t

    if not rows and out.mode == "table":
        out.info(f"no profiles in {loaded.path}; add one with `autorun config add NAME --provider … --base-url …`", style="dim")
        return
    out.data(rows, table, ids=lambda rs: [r["name"] for r in rs])


@app.command("show")
def show_profile(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="NAME", help="Profile (default: the default profile).", show_default=False, autocompletion=complete_profile)] = None,
    output: OutputOpt = None,
    json_: JsonOpt = False,
    jq: JqOpt = None,
) -> None:
    """Show a profile with secrets masked."""
    from autorun_cli import config
    from autorun_cli.errors import ConfigError

    out = _out(ctx, output, json_, jq)
    loaded = config.read()
    loaded.require()
    name = name or loaded.default_name()
    if not name:
        raise ConfigError(
            f"no default profile in {loaded.path}",
            hint="name one: `autorun config show NAME` (see `autorun config list`), or add one with `autorun config add NAME --provider … --base-url …`",
        )
    profile = loaded.profile(name)
    data = {"name": name, "default": name == loaded.doc.get("default_profile"), "config_file": str(loaded.path), **_mask(profile)}

    def table(d: dict[str, Any]):
        from autorun_cli.render import safe
        from autorun_cli.render.layout import Col, FitTable

        g = FitTable(Col("", style="bold"), Col("", "fold", label=""), show_header=False)
        for k, v in d.items():
            g.add_row(k, safe(v))
        return g

    out.data(data, table, ids=lambda d: [d["name"]])


@app.command("add")
def add_profile(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Profile name: letters, digits, '-', '_' or '.'.", autocompletion=complete_profile)],
    provider: Annotated[str | None, typer.Option("--provider", metavar="NAME", help="plannr, sendrealm, tenant, generic or local (required for a new profile).", show_default=False, autocompletion=complete_provider)] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", metavar="URL", help="API root URL.", show_default=False)] = None,
    token_env: Annotated[str | None, typer.Option("--token-env", metavar="VAR", help="Environment variable that holds the token.", show_default=False)] = None,
    token_stdin: Annotated[bool, typer.Option("--token-stdin", help="Read the token from stdin and store it in the file (mode 0600).")] = False,
    tenant: Annotated[str | None, typer.Option("--tenant", metavar="UUID", help="x-tenant-id (tenant).", show_default=False)] = None,
    account: Annotated[str | None, typer.Option("--account", metavar="UUID", help="X-PLANNR-ACCOUNT-UUID (plannr).", show_default=False)] = None,
    automation: Annotated[str | None, typer.Option("--automation", metavar="ID", help="Default automation ID.", show_default=False)] = None,
    use: Annotated[bool, typer.Option("--use", help="Also make it the default profile.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Update an existing profile: the values given replace its own, the rest (a stored token…) stay.")] = False,
) -> None:
    """Add a profile, or with --force update one. The first profile becomes the default."""
    import re
    import sys

    from autorun_cli import config
    from autorun_cli.errors import UsageError
    from autorun_cli.providers import NAMES

    out = _out(ctx)
    if not re.match(r"^[A-Za-z0-9_.-]+$", name):
        raise UsageError(f"profile name {name!r} is not allowed", hint="use letters, digits, '-', '_' or '.'")
    if provider is not None:
        provider = provider.strip().lower()
        if provider not in NAMES:
            raise UsageError(f"unknown provider {provider!r}", hint="use one of: " + ", ".join(NAMES))
    if base_url and not re.match(r"^https?://", base_url):
        raise UsageError(f"base URL {base_url!r} is not an http(s) URL", hint="pass e.g. --base-url https://api.example.com")
    if token_env and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", token_env):
        raise UsageError(f"--token-env {token_env!r} is not an environment variable name", hint="e.g. --token-env PLANNR_TOKEN")
    for flag, value in (("--tenant", tenant), ("--account", account)):
        if value and not config.is_uuid(value):
            raise UsageError(
                f"{flag} {value!r} is not a UUID ({config.UUID_KEYS[flag[2:]]} are UUIDs)",
                hint=f"e.g. {flag} 6f1e0c1a-0000-4000-8000-000000000001",
            )
    loaded = config.read()
    doc = loaded.require()  # another profile may be broken; this one is replaced whole
    old = doc.get("profiles", {}).get(name)
    if old is not None and not force:
        raise UsageError(
            f"profile {name!r} already exists in {loaded.path}",
            hint=f"update it with `autorun config add {name} --force …` (values given replace its own, the rest are kept), "
            f"or remove it first with `autorun config remove {name}`",
        )
    if old is None and provider is None:
        raise UsageError("a new profile needs --provider", hint=f"e.g. autorun config add {name} --provider plannr --base-url https://api.plannrcrm.com")
    given = {"provider": provider, "base_url": base_url, "token_env": token_env, "tenant": tenant, "account": account, "automation": automation}
    profile = {**(old if isinstance(old, dict) else {}), **{k: v for k, v in given.items() if v}}
    if token_stdin:
        token = sys.stdin.readline().strip()
        if not token:
            raise UsageError("--token-stdin read an empty token", hint="pipe the token in: printf %s \"$TOKEN\" | autorun config add …")
        profile["token"] = token
    kind = profile.get("provider", "")
    if kind != "local" and not profile.get("base_url"):
        raise UsageError(f"the {kind} provider needs --base-url", hint=f"e.g. autorun config add {name} --provider {kind} --base-url https://api.example.com")
    problem = config.profile_problem(profile)
    if problem is not None:  # a key kept from the old profile
        key, message, hint = problem
        raise UsageError(f"{loaded.where(name, key)}: profiles.{name}.{key} {message}", hint=hint)
    doc.setdefault("profiles", {})[name] = profile
    if use or not doc.get("default_profile") or doc.get("default_profile") not in doc["profiles"]:
        doc["default_profile"] = name
    path = config.save(doc, loaded.path)
    verb = "updated" if old is not None else "saved"
    out.info(f"{verb} profile {name!r} in {path}" + (" (default)" if doc["default_profile"] == name else ""))


@app.command("use")
def use_profile(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME", help="Profile to make the default.", autocompletion=complete_profile)]) -> None:
    """Make a profile the default."""
    from autorun_cli import config

    out = _out(ctx)
    loaded = config.read()
    doc = loaded.require()
    loaded.profile(name)  # a broken profile is not made the default
    doc["default_profile"] = name
    config.save(doc, loaded.path)
    out.info(f"default profile is now {name!r}")


@app.command("remove")
def remove_profile(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME", help="Profile to remove.", autocompletion=complete_profile)]) -> None:
    """Remove a profile (a broken one too)."""
    from autorun_cli import config
    from autorun_cli.errors import ConfigError

    out = _out(ctx)
    loaded = config.read()
    doc = loaded.require()
    if name not in doc.get("profiles", {}):
        raise ConfigError(f"no profile {name!r} in {loaded.path}", hint="see `autorun config list`")
    del doc["profiles"][name]
    moved = ""
    if doc.get("default_profile") == name:
        doc.pop("default_profile")
        if doc["profiles"]:
            doc["default_profile"] = next(iter(doc["profiles"]))
            moved = f"; the default is now {doc['default_profile']!r}"
        else:
            moved = "; there is no default profile now"
    config.save(doc, loaded.path)
    out.info(f"removed profile {name!r}{moved}")


def register(root: typer.Typer, name: str = "config") -> None:
    root.add_typer(app, name="config")
