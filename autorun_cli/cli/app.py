"""The ``autorun`` command: a Typer app whose commands import their weight lazily.

Errors from anywhere below are turned into one ``error:``/``hint:`` pair and the
contract's exit code by :class:`AutorunGroup`, the single place that does so.
"""

from __future__ import annotations

import gc
import os
import re
import sys
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from autorun_cli import __version__
from autorun_cli.cli import options as o
from autorun_cli.errors import EXIT_INTERRUPTED, AutorunError


def handle_exception(exc: BaseException) -> int:
    """Render ``exc`` for the user and return the exit code."""
    from autorun_cli.cli.output import report_error

    mode = o.current().error_mode
    if isinstance(exc, AutorunError):
        report_error(exc, mode)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        sys.stderr.write("\ninterrupted\n")
        return EXIT_INTERRUPTED
    if isinstance(exc, BrokenPipeError):
        # `autorun list | head`: the reader left; nothing more to say.
        # Point fd 1 at /dev/null, so flushing what is still buffered at exit
        # cannot raise again (Python's own advice for SIGPIPE-free programs).
        try:
            fd = sys.stdout.fileno()
        except (OSError, ValueError, AttributeError):
            return 0  # not a real file (tests): nothing is flushed to a pipe at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
        return 0
    from autorun_cli.errors import AutorunError as _E

    report_error(
        _E(
            f"internal error: {type(exc).__name__}: {exc}",
            hint="this is a bug in autorun; rerun with AUTORUN_DEBUG=1 for the traceback and report it",
        ),
        mode,
    )
    return 1


def print_traceback() -> None:
    """The traceback AUTORUN_DEBUG=1 asks for, through the output sanitiser like every
    other line: exception texts quote API answers (escapes) and may quote a secret."""
    import traceback

    from autorun_cli.cli.output import register_known_secrets
    from autorun_cli.textsafe import clean

    register_known_secrets()
    sys.stderr.write(clean(traceback.format_exc()))
    sys.stderr.flush()


def _mode_in(args: list[str]) -> str:
    """The output mode ``args`` ask for, read without parsing (they failed to parse)."""
    mode = os.environ.get("AUTORUN_OUTPUT", "table")
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--json":
            mode = "json"
        elif arg in ("-o", "--output") and i + 1 < len(args):
            mode = args[i + 1]
        elif arg.startswith("--output="):
            mode = arg.partition("=")[2]
        elif arg.startswith("-o") and len(arg) > 2:
            mode = arg[2:]
        elif arg == "--jq" or arg.startswith("--jq="):
            return "table"  # with --jq stdout holds only the program's results
    return mode.lower() if mode.lower() in ("json", "ndjson") else "table"


def usage_error(exc: Any, args: list[str]) -> int:
    """Typer's own usage errors (unknown flag, bad value, missing argument) as the
    contract's ``error:``/``hint:`` lines, in plain words, with the accepted range."""
    from autorun_cli.cli.output import report_error
    from autorun_cli.errors import UsageError, plain_words

    message = plain_words(exc.format_message())
    param = getattr(exc, "param", None)
    lo, hi = getattr(param, "min", None), getattr(param, "max", None)
    if lo is not None or hi is not None:
        kind = "a whole number" if isinstance(lo if lo is not None else hi, int) else "a number"
        accepted = f"{kind} from {lo} to {hi}" if lo is not None and hi is not None else f"at least {lo}" if lo is not None else f"at most {hi}"
        head, sep, _ = message.partition(": must be ")
        message = f"{head}: must be {accepted}" if sep else f"{message} (accepted: {accepted})"
    ctx = getattr(exc, "ctx", None)
    command = invoked_command(args)
    where = ctx.command_path if ctx is not None else f"autorun {command}" if command else "autorun"
    if param is not None and getattr(param, "envvar", None) and not os.environ.get(str(param.envvar)):
        # Click names the variable in every such message; say so only when it is set.
        message = message.replace(f" (env var: {str(param.envvar)!r})", "")
    report_error(UsageError(message, hint=f"see `{where} --help`"), _mode_in(args))
    return int(getattr(exc, "exit_code", 2))


def _is_usage_error(exc: BaseException) -> bool:
    # Typer's usage errors (vendored Click's ClickException family) subclass
    # TyperException and format their own message; "no arguments: show the help"
    # is one too and keeps printing the help.
    return isinstance(exc, typer.TyperException) and hasattr(exc, "format_message") and type(exc).__name__ != "NoArgsIsHelpError"


_TYPE_WORDS = {"int": "N", "int range": "N", "float": "NUMBER", "float range": "NUMBER", "path": "PATH", "file": "FILE"}


def metavar_word(param: Any, shown: str) -> str:
    """Typer's ``<str>``, ``<list[str]>``, ``<int range>`` in a help record → a word
    that says what goes there: ``N``, the choices, or the option's own name."""

    def word(m: re.Match[str]) -> str:
        inner = m.group(1)
        if "|" in inner:
            return inner  # the choices themselves
        if inner in _TYPE_WORDS:
            return _TYPE_WORDS[inner]
        many = inner.startswith("list[")
        name = (param.name or "value").rstrip("_").upper()
        return f"{name}..." if many else name

    return re.sub(r"<([^<>]+)>", word, shown)


def arg_name(param: Any) -> str:
    return (param.metavar or (param.name or "").upper()) + ("..." if param.nargs != 1 else "")


class AutorunCommand(TyperCommand):
    """A command whose help names each value (``ID``, ``DURATION``, ``N``), lists its
    own options in full and the shared ones — the same on every command, described
    in `autorun --help` — in one short section."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        # Typer writes a required argument as {ID} and an unnamed one in lower case;
        # the usage line names them as the Arguments section does: ID, [B], PATHS...
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = arg_name(param)
                pieces.append(name if param.required or name.startswith("[") else f"[{name}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        args: list[tuple[str, str]] = []
        own: list[tuple[str, str]] = []
        shared: list[str] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                args.append((arg_name(param), record[1]))
            elif param.name in o.COMMON:
                flag = "/".join(sorted(param.opts, key=len))
                shared.append(flag if getattr(param, "is_flag", False) or not param.metavar else f"{flag} {param.metavar}")
            else:
                own.append((metavar_word(param, record[0]), record[1]))
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        if own:
            with formatter.section("Options"):
                formatter.write_dl(own)
        if shared:
            with formatter.section("Global options (also before the command; see autorun --help)"):
                # Wrapped between flags only: a flag and its value stay on one line.
                indent = " " * formatter.current_indent
                room = max((formatter.width or 80) - formatter.current_indent, 20)
                line = ""
                for n, item in enumerate(shared):
                    piece = item + ("," if n < len(shared) - 1 else "")
                    if line and len(line) + 1 + len(piece) > room:
                        formatter.write(indent + line + "\n")
                        line = piece
                    else:
                        line = f"{line} {piece}" if line else piece
                formatter.write(indent + line + "\n")


def _use_command_class(app: typer.Typer) -> None:
    """Every command of ``app`` and its sub-apps is an :class:`AutorunCommand`."""
    for info in app.registered_commands:
        if info.cls in (None, TyperCommand):
            info.cls = AutorunCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            _use_command_class(group.typer_instance)


class AutorunGroup(TyperGroup):
    """Turns every failure into the contract's error lines and exit codes."""

    _args: list[str] = []

    def main(self, args: Any = None, *a: Any, **kw: Any) -> Any:
        self._args = list(args) if args is not None else sys.argv[1:]
        return super().main(args, *a, **kw)

    def make_context(self, info_name: Any, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except typer.TyperException as exc:
            if _is_usage_error(exc):
                raise typer.Exit(usage_error(exc, self._args)) from None
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except typer.TyperException as exc:
            if _is_usage_error(exc):
                raise typer.Exit(usage_error(exc, self._args)) from None
            raise
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if os.environ.get("AUTORUN_DEBUG") == "1":
                print_traceback()
            code = handle_exception(exc)
            raise typer.Exit(code) from None
        except KeyboardInterrupt as exc:
            raise typer.Exit(handle_exception(exc)) from None

    def list_commands(self, ctx: Any) -> list[str]:
        # Keep the order commands were registered in (the order of the docs).
        return list(self.commands)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"autorun {__version__}\n")
        raise typer.Exit()


def root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    profile: o.ProfileOpt = None,
    provider: o.ProviderOpt = None,
    base_url: o.BaseUrlOpt = None,
    tenant: o.TenantOpt = None,
    account: o.AccountOpt = None,
    automation: o.AutomationOpt = None,
    output: o.OutputOpt = None,
    json_: o.JsonOpt = False,
    color: o.ColorOpt = None,
    time_format: o.TimeFormatOpt = None,
    verbose: o.VerboseOpt = False,
    jq: o.JqOpt = None,
    engine_url: o.EngineUrlOpt = None,
) -> None:
    """autorun: see what an automation run did, which step failed and why, which wait
    is pending and when it times out; retry it, follow it, or replay it locally.

    With no configuration the provider is `local`, the built-in engine: try `autorun demo`.
    """
    ctx.obj = o.Opts(profile, provider, base_url, tenant, account, automation, output, json_, color, time_format, verbose, jq,
                     engine_url=engine_url)
    o.set_current(ctx.obj)
    _resume_gc()


# Top-level command → the module under cli/commands whose ``register(app, name)``
# adds it, in registration order. Modules import only typer and the options at
# module level.
COMMANDS: dict[str, str] = {
    "demo": "local_engine",
    "list": "runs",
    "show": "runs",
    "watch": "watch",
    "retry": "retry",
    "cancel": "cancel",
    "replay": "replay",
    "diff": "diff",
    "stats": "stats",
    "trigger": "local_engine",
    "automations": "local_engine",
    "engine": "local_engine",
    "events": "events",
    "config": "config_cmd",
    "completion": "completion",
}

# Root options that take a value, so the command name is not mistaken for one.
ROOT_VALUE_OPTIONS = frozenset(
    {"-p", "--profile", "--provider", "--base-url", "--tenant", "--account", "--automation", "--engine-url", "-o", "--output",
     "--color", "--time-format", "--jq"}
)


def invoked_command(args: list[str]) -> str | None:
    """The top-level command ``args`` name, or None when it is not plain to see."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--":
            return None
        elif arg.startswith("-"):
            skip = arg in ROOT_VALUE_OPTIONS
        else:
            return arg if arg in COMMANDS else None
    return None


def build_app(only: str | None = None) -> typer.Typer:
    """The autorun app; with ``only``, just that command.

    Typer builds every registered command's parameters before parsing, so a run
    of ``autorun show`` need not pay for the other dozen commands.
    """
    import importlib

    app = typer.Typer(
        name="autorun",
        cls=AutorunGroup,
        help="Inspect, follow, retry and replay automation runs — on SaaS automation APIs or the built-in local engine.",
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(root)
    for name in [only] if only is not None else COMMANDS:
        importlib.import_module(f"autorun_cli.cli.commands.{COMMANDS[name]}").register(app, name)
    _use_command_class(app)
    return app


def __getattr__(name: str) -> Any:
    # `from autorun_cli.cli.app import app` (tests, tools) gets every command.
    if name == "app":
        globals()["app"] = full = build_app()
        return full
    raise AttributeError(name)


_gc_paused = False


def _pause_gc() -> None:
    # Start-up allocates many long-lived objects (Typer's parameters, pydantic's
    # validators) and no garbage worth a cyclic collection: passes over them are
    # wasted time. Resumed by the root callback, before any command runs.
    global _gc_paused
    if gc.isenabled():
        gc.disable()
        _gc_paused = True


def _resume_gc() -> None:
    global _gc_paused
    if _gc_paused:
        gc.freeze()  # what start-up built lives until exit: keep it out of later passes
        gc.enable()
        _gc_paused = False


def main() -> None:
    """Console-script entry point."""
    _pause_gc()
    args = sys.argv[1:]
    # Shell completion asks about every command; otherwise build only the one named.
    only = None if os.environ.get("_AUTORUN_COMPLETE") else invoked_command(args)
    try:
        build_app(only)(prog_name="autorun")
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    finally:
        _resume_gc()
