"""Options shared by every command, declared once.

The selection flags (``--profile``, ``--provider``...) and output flags (``-o``,
``--json``...) are accepted after the command, the form scripts use, and before it.
``@common`` adds them to a command's signature and hands the command one merged
:class:`Opts` (see :func:`resolve`): a flag in either position beats the environment
variable, and a flag after the command beats one before it.

Nothing here imports rich, httpx or pydantic: this module loads for ``--help``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any

import typer

from autorun_cli.cli.completing import complete_automation, complete_profile, complete_provider

SELECTION = "Selection"
OUTPUT = "Output"


class OutputMode(str, Enum):
    table = "table"
    json = "json"
    ndjson = "ndjson"
    id = "id"


class ColorMode(str, Enum):
    auto = "auto"
    always = "always"
    never = "never"


class TimeFormat(str, Enum):
    relative = "relative"
    iso = "iso"


ProfileOpt = Annotated[
    str | None,
    typer.Option("--profile", "-p", envvar="AUTORUN_PROFILE", metavar="NAME", help="Profile of the config file to use.", rich_help_panel=SELECTION, show_default=False, autocompletion=complete_profile),
]
ProviderOpt = Annotated[
    str | None,
    typer.Option("--provider", envvar="AUTORUN_PROVIDER", metavar="NAME", help="plannr, sendrealm, tenant, generic or local.", rich_help_panel=SELECTION, show_default=False, autocompletion=complete_provider),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", envvar="AUTORUN_BASE_URL", metavar="URL", help="API root, e.g. https://api.sendrealm.com.", rich_help_panel=SELECTION, show_default=False),
]
TenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", envvar="AUTORUN_TENANT_ID", metavar="UUID", help="x-tenant-id for the tenant provider (a UUID).", rich_help_panel=SELECTION, show_default=False),
]
AccountOpt = Annotated[
    str | None,
    typer.Option("--account", envvar="AUTORUN_ACCOUNT_UUID", metavar="UUID", help="X-PLANNR-ACCOUNT-UUID for plannr.", rich_help_panel=SELECTION, show_default=False),
]
AutomationOpt = Annotated[
    str | None,
    typer.Option("--automation", envvar="AUTORUN_AUTOMATION_ID", metavar="ID", help="Automation (blueprint, rule) whose runs to use; generic paths need it.", rich_help_panel=SELECTION, show_default=False, autocompletion=complete_automation),
]
EngineUrlOpt = Annotated[
    str | None,
    typer.Option("--engine-url", envvar="AUTORUN_ENGINE_URL", metavar="URL",
                 help="The local engine's store: sqlite:///PATH (default $AUTORUN_HOME/engine.db) or postgresql://USER@HOST:PORT/DB.",
                 rich_help_panel=SELECTION, show_default=False),
]
OutputOpt = Annotated[
    OutputMode | None,
    typer.Option("--output", "-o", envvar="AUTORUN_OUTPUT", metavar="table|json|ndjson|id", help="Output: a table for people, JSON, one JSON run per line, or IDs.", rich_help_panel=OUTPUT, show_default=False, case_sensitive=False),
]
# Plain bool flags (False when absent): Typer skips its per-value coercion for them.
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Short for -o json.", rich_help_panel=OUTPUT, show_default=False),
]
ColorOpt = Annotated[
    ColorMode | None,
    typer.Option("--color", metavar="auto|always|never", help="Colour: auto (a terminal only), always or never (NO_COLOR is honoured).", rich_help_panel=OUTPUT, show_default=False, case_sensitive=False),
]
TimeFormatOpt = Annotated[
    TimeFormat | None,
    typer.Option("--time-format", metavar="relative|iso", help="relative (default on a terminal) or iso (default when piped).", rich_help_panel=OUTPUT, show_default=False, case_sensitive=False),
]
VerboseOpt = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Log each request on stderr (secrets redacted).", rich_help_panel=OUTPUT, show_default=False),
]
JqOpt = Annotated[
    str | None,
    typer.Option(
        "--jq", metavar="EXPR",
        help="Filter the JSON output with a jq program (implies -o json): strings bare, the rest compact JSON, one result per line.",
        rich_help_panel=OUTPUT, show_default=False,
    ),
]

# name → annotation, in the order they appear in --help.
COMMON: dict[str, Any] = {
    "profile": ProfileOpt,
    "provider": ProviderOpt,
    "base_url": BaseUrlOpt,
    "tenant": TenantOpt,
    "account": AccountOpt,
    "automation": AutomationOpt,
    "engine_url": EngineUrlOpt,
    "output": OutputOpt,
    "json_": JsonOpt,
    "color": ColorOpt,
    "time_format": TimeFormatOpt,
    "verbose": VerboseOpt,
    "jq": JqOpt,
}


# The option names, in the order they appear in --help.
_OPT_NAMES = tuple(COMMON)
_FLAGS = frozenset({"json_", "verbose"})


class Opts:
    """The shared options of one command; None (False for flags) = not given.

    A plain slotted class, not a dataclass: it is built on every start-up path.
    """

    __slots__ = _OPT_NAMES

    def __init__(
        self,
        profile: str | None = None,
        provider: str | None = None,
        base_url: str | None = None,
        tenant: str | None = None,
        account: str | None = None,
        automation: str | None = None,
        output: OutputMode | None = None,
        json_: bool | None = None,
        color: ColorMode | None = None,
        time_format: TimeFormat | None = None,
        verbose: bool | None = None,
        jq: str | None = None,
        engine_url: str | None = None,
    ):
        self.profile = profile
        self.provider = provider
        self.base_url = base_url
        self.tenant = tenant
        self.account = account
        self.automation = automation
        self.output = output
        self.json_ = json_
        self.color = color
        self.time_format = time_format
        self.verbose = verbose
        self.jq = jq
        self.engine_url = engine_url

    def __repr__(self) -> str:
        given = ", ".join(f"{n}={getattr(self, n)!r}" for n in _OPT_NAMES if getattr(self, n) not in (None, False))
        return f"Opts({given})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opts) and all(getattr(self, n) == getattr(other, n) for n in _OPT_NAMES)

    @property
    def mode(self) -> str:
        if self.json_ or self.jq is not None:
            return "json"
        return self.output.value if self.output else "table"

    @property
    def error_mode(self) -> str:
        """How errors are rendered: with --jq stdout holds only the program's results
        (as with gh), so the error document is not added there; stderr has the error."""
        return "table" if self.jq is not None else self.mode


# The options of the command being run, so the error handler renders errors in the
# same mode (JSON error document with -o json) even when it fails early.
_current: Opts = Opts()


def current() -> Opts:
    return _current


def set_current(opts: Opts) -> None:
    global _current
    _current = opts


def _from_command_line(ctx: Any, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def resolve(ctx: Any, **mine: Any) -> Opts:
    """The options of the command ``ctx`` runs: ``mine`` (its own values of the shared
    options) merged with those given before the command, flag > env > default.

    Typer reads ``envvar=`` for the options after the command too, so a value there
    may only be the environment's: the context knows where each value came from, and a
    flag before the command beats the environment after it. Between two flags, the one
    after the command wins.
    """
    # Any: Typer hands its own (vendored Click) Context here, a supertype of typer.Context.
    root = ctx.find_root()
    before: Opts = root.obj if isinstance(root.obj, Opts) else Opts()
    out = Opts()
    for name in _OPT_NAMES:
        value = getattr(before, name)
        if name in mine:
            given = mine[name]
            if _from_command_line(ctx, name):
                value = given
            elif not _from_command_line(root, name) and given is not None and given is not False:
                value = given  # the environment, the same for both positions
        setattr(out, name, value)
    set_current(out)
    return out


def common(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared options to ``fn``'s signature; pass them as ``opts: Opts``
    (and Typer's context as ``autorun_ctx`` when ``fn`` has that parameter)."""
    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name not in ("opts", "autorun_ctx")]
    wants_ctx = "autorun_ctx" in sig.parameters
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=False if name in _FLAGS else None)
        for name, ann in COMMON.items()
    ]
    ctx_param = inspect.Parameter("autorun_ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        ctx = kwargs.pop("autorun_ctx")
        opts = resolve(ctx, **{name: kwargs.pop(name) for name in COMMON})
        if wants_ctx:
            kwargs["autorun_ctx"] = ctx
        return fn(opts=opts, **kwargs)

    params = own + added + [ctx_param]
    # Keyword-only after positional-or-keyword is always a valid order.
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD else p for p in params]
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # Typer must read __signature__, not the original
    return wrapper


def given_on_command_line(ctx: Any, name: str) -> bool:
    """Whether option ``name`` was typed on the command line (after the command or
    before it), not taken from its environment variable or default."""
    while ctx is not None:
        if _from_command_line(ctx, name):
            return True
        ctx = ctx.parent
    return False
