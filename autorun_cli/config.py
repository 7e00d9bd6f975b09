"""Profiles in a TOML file, and the precedence flag > env > profile > default.

Read with tomllib, written with tomli-w at mode 0600 (it may hold a token).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from autorun_cli.errors import ConfigError, UsageError

PROFILE_KEYS = {
    "provider": "plannr, sendrealm, tenant, generic or local",
    "base_url": "API root URL",
    "token": "token or API key (prefer token_env)",
    "token_env": "name of the environment variable holding the token",
    "tenant": "x-tenant-id (tenant)",
    "account": "X-PLANNR-ACCOUNT-UUID (plannr)",
    "automation": "default automation ID",
    "list_path": "path template of the list endpoint",
    "get_path": "path template of the run endpoint",
    "retry_path": "path template of the retry endpoint",
    "cancel_path": "path template of the cancel endpoint",
    "events_path": "path template of the events endpoint",
    "engine_url": "the local engine's store: sqlite:///PATH or postgresql://USER@HOST:PORT/DB",
}
PATH_KEYS = ("list_path", "get_path", "retry_path", "cancel_path", "events_path")
TOP_KEYS = {"default_profile", "profiles"}


def config_path() -> Path:
    explicit = os.environ.get("AUTORUN_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "autorun" / "config.toml"


def home_path() -> Path:
    explicit = os.environ.get("AUTORUN_HOME")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "autorun"


def load(path: Path | None = None) -> dict[str, Any]:
    """The config document, ``{}`` when the file does not exist."""
    path = path or config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc.strerror}",
            hint="fix its permissions, or point AUTORUN_CONFIG at another file",
        ) from None
    import tomllib  # only when there is a file: most runs of a local setup have none

    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML: {exc}",
            hint="fix the line it names, or move the file aside and recreate it with `autorun config add`",
        ) from None
    _validate(doc, path)
    return doc


def _validate(doc: dict[str, Any], path: Path) -> None:
    for key in doc:
        if key not in TOP_KEYS:
            raise ConfigError(
                f"config file {path}: unknown top-level key {key!r}",
                hint="the file holds default_profile = \"NAME\" and [profiles.NAME] tables",
            )
    profiles = doc.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"config file {path}: 'profiles' must be a table", hint="write profiles as [profiles.NAME]")
    for name, prof in profiles.items():
        if not isinstance(prof, dict):
            raise ConfigError(f"config file {path}: profiles.{name} must be a table", hint=f"write it as [profiles.{name}]")
        for key, value in prof.items():
            if key not in PROFILE_KEYS:
                raise ConfigError(
                    f"config file {path}: unknown key profiles.{name}.{key}",
                    hint="known keys: " + ", ".join(PROFILE_KEYS),
                )
            if not isinstance(value, str):
                raise ConfigError(
                    f"config file {path}: profiles.{name}.{key} must be a string",
                    hint=f'write it as {key} = "…"',
                )
        provider = prof.get("provider")
        if provider is not None:
            from autorun_cli.providers import NAMES

            if provider not in NAMES:
                raise ConfigError(
                    f"config file {path}: profiles.{name}.provider is {provider!r}, not a known provider",
                    hint="use one of: " + ", ".join(NAMES),
                )
    default = doc.get("default_profile")
    if default is not None and default not in profiles:
        raise ConfigError(
            f"config file {path}: default_profile {default!r} names no profile",
            hint=f"add [profiles.{default}] or run `autorun config use NAME`",
        )


def save(doc: dict[str, Any], path: Path | None = None) -> Path:
    """Write atomically at mode 0600."""
    import tomli_w

    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        tomli_w.dump(doc, fh)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def resolve(opts: Any) -> Any:
    """Build provider Settings from command options (flag/env), the profile, defaults.

    ``opts`` carries flag values already merged with their environment variables
    (Typer reads ``envvar=``), so both rank above the profile here.
    """
    from autorun_cli.providers import NAMES
    from autorun_cli.providers.base import Settings

    path = config_path()
    doc = load(path)
    profiles = doc.get("profiles", {})
    name = opts.profile or doc.get("default_profile")
    profile: dict[str, str] = {}
    if name:
        if name not in profiles:
            known = ", ".join(profiles) or "none yet"
            raise ConfigError(
                f"unknown profile {name!r} (config file {path}; profiles: {known})",
                hint=f"create it with `autorun config add {name} --provider … --base-url …` or pick one with -p",
            )
        profile = profiles[name]
    provider = (opts.provider or profile.get("provider") or "local").strip().lower()
    if provider not in NAMES:
        raise UsageError(f"unknown provider {provider!r}", hint="use one of: " + ", ".join(NAMES))
    token = os.environ.get("AUTORUN_TOKEN") or profile.get("token")
    token_env = profile.get("token_env")
    if not token and token_env:
        token = os.environ.get(token_env)
        if not token and provider != "local":
            raise ConfigError(
                f"profile {name!r} reads its token from ${token_env}, which is not set",
                hint=f"export {token_env}=… (or AUTORUN_TOKEN=…)",
            )
    return Settings(
        provider=provider,
        profile=name,
        base_url=opts.base_url or profile.get("base_url"),
        token=token or None,
        tenant=opts.tenant or profile.get("tenant"),
        account=opts.account or profile.get("account"),
        automation=opts.automation or profile.get("automation"),
        home=str(home_path()),
        verbose=bool(opts.verbose),
        paths={k: profile[k] for k in PATH_KEYS if k in profile},
        engine_url=getattr(opts, "engine_url", None) or profile.get("engine_url"),
    )


def engine_url(opts: Any = None) -> str | None:
    """The local engine's store: ``--engine-url`` / ``AUTORUN_ENGINE_URL`` (merged into
    ``opts``), else the selected profile's ``engine_url``, else None (``<home>/engine.db``)."""
    explicit = getattr(opts, "engine_url", None) or os.environ.get("AUTORUN_ENGINE_URL")
    if explicit:
        return explicit
    path = config_path()
    if not path.is_file():
        return None
    doc = load(path)
    name = getattr(opts, "profile", None) or os.environ.get("AUTORUN_PROFILE") or doc.get("default_profile")
    profile = doc.get("profiles", {}).get(name) if name else None
    return profile.get("engine_url") if isinstance(profile, dict) else None
