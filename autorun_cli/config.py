"""Profiles in a TOML file, and the precedence flag > env > profile > default.

Read with tomllib, written with tomli-w at mode 0600 (it may hold a token), through a
temporary file with a random name in the same folder (``O_EXCL``) renamed over the
old one, so a crash or a planted symlink never leaves a half-written or misplaced file.

A broken file stops only the commands that need the broken part: each profile is
checked when it is used, and every error names the file and, where it can be found,
the line.
"""

from __future__ import annotations

import os
import re
import sys
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
# The placeholders a path template may use, and nothing else (no format specs:
# "{id:>99999999999}" would build a string of that width).
PATH_PLACEHOLDERS = ("id", "automation", "automation_id")
UUID_KEYS = {"tenant": "tenant IDs", "account": "plannr account IDs"}
TOP_KEYS = {"default_profile", "profiles"}

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
FIX_HINT = "fix that line, or move the file aside and recreate it with `autorun config add`"


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


def is_uuid(value: str) -> bool:
    return bool(_UUID.match(value))


# -- path templates ---------------------------------------------------------------------


def template_problem(template: str) -> str | None:
    """What is wrong with a path template, or None: only ``{id}``, ``{automation}``,
    ``{automation_id}`` (``{{``/``}}`` for braces), no format specs or conversions."""
    from string import Formatter

    try:
        parts = list(Formatter().parse(template))
    except ValueError as exc:
        return f"is not a valid template ({exc})"
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in PATH_PLACEHOLDERS:
            return f"uses {{{field}}}, which is not a placeholder"
        if spec or conversion:
            return f"formats {{{field}}} (only a plain {{{field}}} is allowed)"
    return None


def fill_path(key: str, template: str, values: dict[str, str]) -> str:
    """``template`` with its placeholders replaced; a template that uses one this
    endpoint has no value for is bad usage (exit 2)."""
    problem = template_problem(template)
    if problem is not None:
        raise UsageError(f"path template {key}={template!r} {problem}", hint=_placeholders_hint())
    if "automation" in values or "automation_id" in values:
        values = {**values, "automation": values.get("automation") or values.get("automation_id", ""),
                  "automation_id": values.get("automation_id") or values.get("automation", "")}
    from string import Formatter

    out: list[str] = []
    for literal, field, _, _ in Formatter().parse(template):
        out.append(literal)
        if field is not None:
            if field not in values:
                raise UsageError(
                    f"path template {key}={template!r} uses {{{field}}}, which this endpoint does not have",
                    hint="placeholders here: " + (", ".join("{" + k + "}" for k in values) or "none"),
                )
            out.append(values[field])
    return "".join(out)


def _placeholders_hint() -> str:
    return "placeholders are " + ", ".join("{" + p + "}" for p in PATH_PLACEHOLDERS) + "; write {{ and }} for braces"


# -- reading ------------------------------------------------------------------------------


def _line_of(text: str, name: str | None = None, key: str | None = None) -> int | None:
    """The line of ``[profiles.NAME]`` (or of ``key`` inside it, or of a top-level
    ``key``): tomllib does not say where a valid document's values are."""
    lines = text.splitlines()
    start, end = 0, len(lines)
    if name is not None:
        header = re.compile(r"^\s*\[\s*profiles\s*\.\s*(?:\"" + re.escape(name) + r"\"|'" + re.escape(name) + r"'|" + re.escape(name) + r")\s*\]")
        found = next((i for i, line in enumerate(lines) if header.match(line)), None)
        if found is None:
            # Dotted keys or an inline table: the first line that names the profile.
            found = next((i for i, line in enumerate(lines) if re.search(r"\b" + re.escape(name) + r"\b", line)), None)
            return None if found is None else found + 1
        if key is None:
            return found + 1
        start = found + 1
        end = next((i for i in range(start, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    if key is None:
        return None
    pattern = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=")
    return next((i + 1 for i in range(start, end) if pattern.match(lines[i])), None)


class Loaded:
    """A config file as read: its text, its document, or why it could not be parsed."""

    def __init__(self, path: Path, text: str = "", doc: dict[str, Any] | None = None, error: ConfigError | None = None):
        self.path = path
        self.text = text
        self.doc: dict[str, Any] = doc if doc is not None else {}
        self.error = error

    def where(self, name: str | None = None, key: str | None = None) -> str:
        line = _line_of(self.text, name, key)
        return f"config file {self.path}" + (f", line {line}" if line else "")

    def fail(self, message: str, hint: str = FIX_HINT, *, name: str | None = None, key: str | None = None) -> ConfigError:
        return ConfigError(f"{self.where(name, key)}: {message}", hint=hint)

    def require(self) -> dict[str, Any]:
        """The whole document, for commands that need all of it (``config …``)."""
        if self.error is not None:
            raise self.error
        if not isinstance(self.doc.get("profiles", {}), dict):
            raise self.fail("'profiles' must be a table", "write profiles as [profiles.NAME]", key="profiles")
        return self.doc

    @property
    def profiles(self) -> dict[str, Any]:
        profiles = self.doc.get("profiles", {})
        return profiles if isinstance(profiles, dict) else {}

    def stray_keys(self) -> list[str]:
        return [k for k in self.doc if k not in TOP_KEYS]

    def default_name(self) -> str | None:
        default = self.doc.get("default_profile")
        if default is None:
            return None
        if not isinstance(default, str):
            raise self.fail("default_profile must be a profile name", 'write it as default_profile = "NAME"', key="default_profile")
        if default not in self.profiles:
            raise self.fail(
                f"default_profile {default!r} names no profile",
                f"add [profiles.{default}] or run `autorun config use NAME`",
                key="default_profile",
            )
        return default

    def profile(self, name: str) -> dict[str, str]:
        """One profile, checked: only the part of the file a command uses."""
        self.require()
        profiles = self.profiles
        if name not in profiles:
            known = ", ".join(profiles) or "none yet"
            raise ConfigError(
                f"unknown profile {name!r} (config file {self.path}; profiles: {known})",
                hint=f"create it with `autorun config add {name} --provider … --base-url …` or pick one with -p",
            )
        prof = profiles[name]
        if not isinstance(prof, dict):
            raise self.fail(f"profiles.{name} must be a table", f"write it as [profiles.{name}]", name=name)
        for key, value in prof.items():
            if key not in PROFILE_KEYS:
                raise self.fail(f"unknown key profiles.{name}.{key}", "known keys: " + ", ".join(PROFILE_KEYS), name=name, key=key)
            if not isinstance(value, str):
                raise self.fail(f"profiles.{name}.{key} must be a string", f'write it as {key} = "…"', name=name, key=key)
        problem = profile_problem(prof)
        if problem is not None:
            key, message, hint = problem
            raise self.fail(f"profiles.{name}.{key} {message}", hint, name=name, key=key)
        return prof


def profile_problem(prof: dict[str, str]) -> tuple[str, str, str] | None:
    """(key, what is wrong, hint) for the first bad value of a profile, or None."""
    provider = prof.get("provider")
    if provider is not None:
        from autorun_cli.providers import NAMES

        if provider not in NAMES:
            return "provider", f"is {provider!r}, not a known provider", "use one of: " + ", ".join(NAMES)
    for key, what in UUID_KEYS.items():
        value = prof.get(key)
        if value is not None and not is_uuid(value):
            return key, f"is {value!r}, not a UUID ({what} are UUIDs)", f'e.g. {key} = "6f1e0c1a-0000-4000-8000-000000000001"'
    for key in PATH_KEYS:
        value = prof.get(key)
        if value is not None:
            problem = template_problem(value)
            if problem is not None:
                return key, problem, _placeholders_hint()
    return None


def read(path: Path | None = None) -> Loaded:
    """The config file, parsed if it can be; an unparsable one is kept as an error
    for the commands that need it. A missing file is an empty document."""
    path = path or config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Loaded(path)
    except OSError as exc:
        return Loaded(path, error=ConfigError(
            f"cannot read config file {path}: {exc.strerror}",
            hint="fix its permissions, or point AUTORUN_CONFIG at another file",
        ))
    import tomllib  # only when there is a file: most runs of a local setup have none

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return Loaded(path, error=ConfigError(f"config file {path}, line {line}: not UTF-8 text", hint=FIX_HINT))
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = _TOML_AT.search(message)
        where = f"config file {path}, line {at.group(1)}" if at else f"config file {path}"
        reason = _TOML_AT.sub("", message) if at else message
        return Loaded(path, text, error=ConfigError(f"{where}: not valid TOML: {reason}", hint=FIX_HINT))
    return Loaded(path, text, doc)


def load(path: Path | None = None) -> dict[str, Any]:
    """The whole config document (``{}`` when there is no file); parse errors raise."""
    return read(path).require()


def _warn(message: str) -> None:
    from autorun_cli.textsafe import clean

    sys.stderr.write(f"warning: {clean(message)}\n")
    sys.stderr.flush()


# -- writing --------------------------------------------------------------------------------


def save(doc: dict[str, Any], path: Path | None = None) -> Path:
    """Write atomically at mode 0600: a temporary file with a random name, created
    with ``O_EXCL`` in the same folder (never a path someone could plant a symlink
    at), flushed to disk, then renamed over the config file. A config file that is
    itself a symlink (dotfiles) is written where it points."""
    import tempfile

    import tomli_w

    path = path or config_path()
    target = path.resolve() if path.is_symlink() else path
    target.parent.mkdir(parents=True, exist_ok=True)
    data = tomli_w.dumps(doc).encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


# -- resolving ------------------------------------------------------------------------------


def resolve(opts: Any) -> Any:
    """Build provider Settings from command options (flag/env), the profile, defaults.

    ``opts`` carries flag values already merged with their environment variables
    (see ``cli.options.resolve``), so both rank above the profile here.

    Only the profile in use is checked. When the provider comes from a flag or the
    environment and no profile was asked for, a broken file or default profile is
    skipped with a warning: the command does not need it.
    """
    from autorun_cli.providers import NAMES
    from autorun_cli.providers.base import Settings

    loaded = read()
    explicit = opts.profile
    can_skip = bool(opts.provider) and not explicit
    name: str | None = explicit
    profile: dict[str, str] = {}
    if loaded.error is not None:
        if not can_skip:
            raise loaded.error
        _warn(f"{loaded.error.message}; ignoring the file (no profile is used)")
    else:
        for key in loaded.stray_keys():
            _warn(f"{loaded.where(key=key)}: unknown top-level key {key!r} ignored (the file holds default_profile and [profiles.NAME] tables)")
        try:
            name = name or loaded.default_name()
            profile = loaded.profile(name) if name else {}
        except ConfigError as exc:
            if not can_skip:
                raise
            _warn(f"{exc.message}; ignoring the default profile")
            name, profile = None, {}
    provider = (opts.provider or profile.get("provider") or "local").strip().lower()
    if provider not in NAMES:
        raise UsageError(f"unknown provider {provider!r}", hint="use one of: " + ", ".join(NAMES))
    tenant = opts.tenant or profile.get("tenant")
    account = opts.account or profile.get("account")
    # Checked before any request: the header would carry a value the API cannot match.
    for value, given, used_by, flag, var in (
        (tenant, opts.tenant, "tenant", "--tenant", "AUTORUN_TENANT_ID"),
        (account, opts.account, "plannr", "--account", "AUTORUN_ACCOUNT_UUID"),
    ):
        if provider == used_by and value and not is_uuid(value):
            source = f"{flag} / {var}" if given else f"profile {name!r}"
            raise UsageError(
                f"{flag[2:]} ID {value!r} ({source}) is not a UUID: {used_by} {flag[2:]} IDs look like 6f1e0c1a-0000-4000-8000-000000000001",
                hint=f"pass the {flag[2:]}'s UUID with {flag} or {var}",
            )
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
        tenant=tenant,
        account=account,
        automation=opts.automation or profile.get("automation"),
        home=str(home_path()),
        verbose=bool(opts.verbose),
        paths={k: profile[k] for k in PATH_KEYS if k in profile},
        engine_url=getattr(opts, "engine_url", None) or profile.get("engine_url"),
    )


def known_secrets() -> list[str]:
    """Every secret this setup may hold: ``AUTORUN_TOKEN``, the password of
    ``AUTORUN_BASE_URL``, and each profile's token (stored, or in its ``token_env``
    variable) and base-URL password. For output written before the command's settings
    are resolved (an error about a value given in the wrong place may quote a token).
    Best effort: a file that cannot be read or parsed adds nothing."""
    from autorun_cli.textsafe import url_password

    found = [os.environ.get("AUTORUN_TOKEN"), url_password(os.environ.get("AUTORUN_BASE_URL"))]
    try:
        loaded = read()
        profiles = loaded.profiles if loaded.error is None else {}
    except Exception:
        profiles = {}
    for prof in profiles.values():
        if not isinstance(prof, dict):
            continue
        token, token_env, base = prof.get("token"), prof.get("token_env"), prof.get("base_url")
        found.append(token if isinstance(token, str) else None)
        found.append(os.environ.get(token_env) if isinstance(token_env, str) and token_env else None)
        found.append(url_password(base) if isinstance(base, str) else None)
    return [s for s in found if s]


def engine_url(opts: Any = None) -> str | None:
    """The local engine's store: ``--engine-url`` / ``AUTORUN_ENGINE_URL`` (merged into
    ``opts``), else the selected profile's ``engine_url``, else None (``<home>/engine.db``).

    Only that value is read: another broken key of the profile does not stop the local
    engine, and an unparsable file stops it only when a profile was asked for."""
    explicit = getattr(opts, "engine_url", None) or os.environ.get("AUTORUN_ENGINE_URL")
    if explicit:
        return explicit
    loaded = read()
    asked = getattr(opts, "profile", None) or os.environ.get("AUTORUN_PROFILE")
    if loaded.error is not None:
        if asked:
            raise loaded.error
        _warn(f"{loaded.error.message}; ignoring the file (the local engine uses its default store)")
        return None
    name = asked or loaded.doc.get("default_profile")
    if not isinstance(name, str):
        return None
    if asked and name not in loaded.profiles:
        loaded.profile(name)  # raises: unknown profile, naming the known ones
    profile = loaded.profiles.get(name)
    value = profile.get("engine_url") if isinstance(profile, dict) else None
    if value is not None and not isinstance(value, str):
        raise loaded.fail(f"profiles.{name}.engine_url must be a string", 'write it as engine_url = "postgresql://…"', name=name, key="engine_url")
    return value
