"""``autorun config``: profiles in the TOML config file."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from autorun_cli.cli.options import JqOpt, JsonOpt, OutputOpt

if TYPE_CHECKING:
    from autorun_cli.cli.output import Output

app = typer.Typer(help="Manage profiles: where each API is and how to authenticate.", no_args_is_help=True)


def _out(ctx: typer.Context, output: Any = None, json_: Any = False, jq: str | None = None) -> Output:
    from autorun_cli.cli.output import output_for

    return output_for(ctx, output, json_, jq)


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

    out = _out(ctx, output, json_, jq)
    doc = config.load()
    default = doc.get("default_profile")
    rows = [
        {"name": name, "default": name == default, "provider": p.get("provider"), "base_url": p.get("base_url")}
        for name, p in doc.get("profiles", {}).items()
    ]

    def table(rows: list[dict[str, Any]]):
        from autorun_cli.render import safe
        from autorun_cli.render.layout import Col, FitTable

        t = FitTable(Col(""), Col("NAME", priority=2), Col("PROVIDER", priority=1), Col("BASE URL", label="base url"))
        for r in rows:
            t.add_row("*" if r["default"] else "", safe(r["name"], "bold"), safe(r["provider"]), safe(r["base_url"]))
        return t

    if not rows and out.mode == "table":
        out.info(f"no profiles in {config.config_path()}; add one with `autorun config add NAME --provider … --base-url …`", style="dim")
        return
    out.data(rows, table, ids=lambda rs: [r["name"] for r in rs])


@app.command("show")
def show_profile(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Profile (default: the default profile).", show_default=False)] = None,
    output: OutputOpt = None,
    json_: JsonOpt = False,
    jq: JqOpt = None,
) -> None:
    """Show a profile with secrets masked."""
    from autorun_cli import config
    from autorun_cli.errors import ConfigError

    out = _out(ctx, output, json_, jq)
    doc = config.load()
    name = name or doc.get("default_profile")
    profiles = doc.get("profiles", {})
    if not name or name not in profiles:
        raise ConfigError(
            f"no profile {name!r} in {config.config_path()}" if name else f"no default profile in {config.config_path()}",
            hint="see `autorun config list`; add one with `autorun config add NAME --provider … --base-url …`",
        )
    data = {"name": name, "default": name == doc.get("default_profile"), "config_file": str(config.config_path()), **_mask(profiles[name])}

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
    name: Annotated[str, typer.Argument(help="Profile name.")],
    provider: Annotated[str, typer.Option("--provider", help="plannr, sendrealm, tenant, generic or local.")],
    base_url: Annotated[str | None, typer.Option("--base-url", help="API root URL.", show_default=False)] = None,
    token_env: Annotated[str | None, typer.Option("--token-env", help="Environment variable that holds the token.", show_default=False)] = None,
    token_stdin: Annotated[bool, typer.Option("--token-stdin", help="Read the token from stdin and store it in the file (mode 0600).")] = False,
    tenant: Annotated[str | None, typer.Option("--tenant", help="x-tenant-id (tenant).", show_default=False)] = None,
    account: Annotated[str | None, typer.Option("--account", help="X-PLANNR-ACCOUNT-UUID (plannr).", show_default=False)] = None,
    automation: Annotated[str | None, typer.Option("--automation", help="Default automation ID.", show_default=False)] = None,
    use: Annotated[bool, typer.Option("--use", help="Also make it the default profile.")] = False,
) -> None:
    """Add or replace a profile. The first profile becomes the default."""
    import re
    import sys

    from autorun_cli import config
    from autorun_cli.errors import UsageError
    from autorun_cli.providers import NAMES

    out = _out(ctx)
    if not re.match(r"^[A-Za-z0-9_.-]+$", name):
        raise UsageError(f"profile name {name!r} is not allowed", hint="use letters, digits, '-', '_' or '.'")
    provider = provider.strip().lower()
    if provider not in NAMES:
        raise UsageError(f"unknown provider {provider!r}", hint="use one of: " + ", ".join(NAMES))
    if provider != "local" and not base_url:
        raise UsageError(f"the {provider} provider needs --base-url", hint=f"e.g. autorun config add {name} --provider {provider} --base-url https://api.example.com")
    if base_url and not re.match(r"^https?://", base_url):
        raise UsageError(f"base URL {base_url!r} is not an http(s) URL", hint="pass e.g. --base-url https://api.example.com")
    if token_env and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", token_env):
        raise UsageError(f"--token-env {token_env!r} is not an environment variable name", hint="e.g. --token-env PLANNR_TOKEN")
    doc = config.load()
    profile = {
        k: v
        for k, v in {"provider": provider, "base_url": base_url, "token_env": token_env, "tenant": tenant, "account": account, "automation": automation}.items()
        if v
    }
    if token_stdin:
        token = sys.stdin.readline().strip()
        if not token:
            raise UsageError("--token-stdin read an empty token", hint="pipe the token in: printf %s \"$TOKEN\" | autorun config add …")
        profile["token"] = token
    doc.setdefault("profiles", {})[name] = profile
    if use or not doc.get("default_profile"):
        doc["default_profile"] = name
    path = config.save(doc)
    out.info(f"saved profile {name!r} to {path}" + (" (default)" if doc["default_profile"] == name else ""))


@app.command("use")
def use_profile(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Profile to make the default.")]) -> None:
    """Make a profile the default."""
    from autorun_cli import config
    from autorun_cli.errors import ConfigError

    out = _out(ctx)
    doc = config.load()
    if name not in doc.get("profiles", {}):
        raise ConfigError(f"no profile {name!r} in {config.config_path()}", hint="see `autorun config list`")
    doc["default_profile"] = name
    config.save(doc)
    out.info(f"default profile is now {name!r}")


@app.command("remove")
def remove_profile(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Profile to remove.")]) -> None:
    """Remove a profile."""
    from autorun_cli import config
    from autorun_cli.errors import ConfigError

    out = _out(ctx)
    doc = config.load()
    if name not in doc.get("profiles", {}):
        raise ConfigError(f"no profile {name!r} in {config.config_path()}", hint="see `autorun config list`")
    del doc["profiles"][name]
    if doc.get("default_profile") == name:
        doc.pop("default_profile")
        if doc["profiles"]:
            doc["default_profile"] = next(iter(doc["profiles"]))
    config.save(doc)
    out.info(f"removed profile {name!r}")


def register(root: typer.Typer, name: str = "config") -> None:
    root.add_typer(app, name="config")
