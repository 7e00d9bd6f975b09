"""One output object: data on stdout in the chosen mode, everything else on stderr.

Commands hand it data; it renders a table (Rich) or JSON/NDJSON/IDs. Rich is
imported only when a table or a styled message is actually drawn.

Everything written here passes the one sanitiser (:mod:`autorun_cli.textsafe`):
text outside JSON has its control characters escaped and the configured secrets
masked — IDs and lines (``line``), messages (``info``, ``warn``, errors), and every
segment a Rich console draws, whatever renderable a command hands it; JSON
documents have the secrets masked in every string. Commands write stdout only
through this object.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from autorun_cli.cli.options import Opts

if TYPE_CHECKING:
    from rich.console import Console

    from autorun_cli.errors import AutorunError
    from autorun_cli.model import Run


def plural(n: int, noun: str) -> str:
    """``1 timer``, ``0 timers``, ``2 timers``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _dumps(obj: Any, indent: int | None = 2) -> str:
    """JSON text of ``obj`` with the configured secrets masked in every string."""
    from autorun_cli import textsafe

    text = json.dumps(obj, indent=indent, ensure_ascii=False, default=str)
    if textsafe.leaks(text):  # rare: only then walk the document
        text = json.dumps(textsafe.redact_data(obj), indent=indent, ensure_ascii=False, default=str)
    return text


def json_line(obj: Any) -> str:
    """One compact JSON document on one line (ndjson), secrets masked."""
    return _dumps(obj, indent=None)


_console_class: Any = None


def console_class() -> type[Console]:
    """Rich's Console, except a reader that goes away (`autorun list | head`) ends the
    command quietly with exit 0 like the JSON modes, rather than Rich's exit 1; and a
    line is never cropped at the width: the tables keep IDs and URLs whole, and one
    longer than the width runs past the edge rather than losing its end."""
    global _console_class
    if _console_class is None:
        from rich.console import Console
        from rich.segment import Segment

        from autorun_cli.textsafe import clean

        class PipeQuietConsole(Console):
            def on_broken_pipe(self) -> None:
                self.quiet = True
                raise BrokenPipeError

            def print(self, *objects: Any, crop: bool = False, **kwargs: Any) -> None:
                super().print(*objects, crop=crop, **kwargs)

            def _render_buffer(self, buffer: Iterable[Segment]) -> str:
                # The net under every renderable: the text of each segment passes the
                # sanitiser (Rich's own control segments, e.g. Live's cursor moves, and
                # the styles it adds around the text are left alone). Renderers clean
                # their cells before layout; this catches what one forgets.
                return super()._render_buffer(
                    seg if seg.control or not seg.text else Segment(clean(seg.text), seg.style) for seg in buffer
                )

        _console_class = PipeQuietConsole
    return _console_class


def compile_jq(expr: str) -> Any:
    """The compiled jq program; one that does not compile is bad usage (exit 2)
    with jq's own message. libjq is loaded only here, when --jq is given."""
    from autorun_cli.errors import UsageError

    try:
        import jq
    except ImportError:  # pragma: no cover - a dependency; only a broken install lacks it
        raise UsageError("--jq needs the jq package, which is not installed", hint="reinstall autorun: pip install autorun-cli") from None
    try:
        return jq.compile(expr)
    except ValueError as exc:
        lines = [line.rstrip(":") for line in str(exc).splitlines() if line.startswith("jq: error")]
        raise UsageError(
            "; ".join(lines) or f"jq: error: {exc}",
            hint="fix the jq program, e.g. --jq '.[].id' or --jq '.status' (quote it for the shell)",
            code="jq",
        ) from None


def emit_jq(program: Any, obj: Any) -> None:
    """Run ``program`` on ``obj`` and print each result on its own line, as gh does:
    a string bare, anything else compact JSON. A failure at run time (`.a` on an
    array...) is bad input, exit 2 with jq's message, after the results before it."""
    from autorun_cli.errors import UsageError
    from autorun_cli.textsafe import clean

    write = sys.stdout.write
    # Text in, so values json can only show with default=str still reach jq. The
    # document is redacted first; a bare string result is text outside JSON: cleaned.
    results = program.input_text(_dumps(obj, indent=None))
    try:
        for result in results:
            write((clean(result) if isinstance(result, str) else json.dumps(result, ensure_ascii=False, separators=(",", ":"))) + "\n")
    except ValueError as exc:
        sys.stdout.flush()
        raise UsageError(
            f"jq: error: {exc}",
            hint="the program does not fit this command's JSON: see it with -o json",
            code="jq",
        ) from None
    sys.stdout.flush()


class Output:
    def __init__(self, opts: Opts):
        self.mode = opts.mode
        # The compiled --jq program (None without --jq); compiled before any work so a
        # bad program fails at once, not after the requests.
        self.jq: Any = compile_jq(opts.jq) if opts.jq is not None else None
        self.color = opts.color.value if opts.color else "auto"
        self.verbose = bool(opts.verbose)
        tf = opts.time_format.value if opts.time_format else None
        self.time_format = tf or ("relative" if self._stdout_tty() else "iso")
        self._out: Console | None = None
        self._err: Console | None = None

    # -- consoles ------------------------------------------------------------
    @staticmethod
    def _stdout_tty() -> bool:
        try:
            return sys.stdout.isatty()
        except (AttributeError, ValueError):
            return False

    def _console(self, stream: Any) -> Console:
        Console = console_class()
        no_color = "NO_COLOR" in os.environ and os.environ.get("NO_COLOR", "") != ""
        if self.color == "never" or (self.color == "auto" and no_color):
            return Console(file=stream, color_system=None, highlight=False, emoji=False, markup=False, force_terminal=False, soft_wrap=False)
        if self.color == "always":
            return Console(file=stream, force_terminal=True, highlight=False, emoji=False, markup=False)
        # auto: Rich drops styles when the stream is not a terminal.
        return Console(file=stream, highlight=False, emoji=False, markup=False)

    @property
    def out(self) -> Console:
        if self._out is None:
            self._out = self._console(sys.stdout)
        return self._out

    @property
    def err(self) -> Console:
        if self._err is None:
            self._err = self._console(sys.stderr)
        return self._err

    # -- data ----------------------------------------------------------------
    def print_json(self, obj: Any) -> None:
        if self.jq is not None:
            emit_jq(self.jq, obj)
            return
        sys.stdout.write(_dumps(obj) + "\n")
        sys.stdout.flush()

    def runs(self, runs: Iterable[Run], *, raw: bool = False) -> int:
        """Render a list of runs; streamed for json/ndjson/id. Returns the count."""
        count = 0
        write = sys.stdout.write
        if self.jq is not None:
            # jq needs the whole document: the array of every run.
            docs = [run.to_json(raw=raw) for run in runs]
            self.print_json(docs)
            return len(docs)
        if self.mode == "ndjson":
            for run in runs:
                write(_dumps(run.to_json(raw=raw), indent=None) + "\n")
                count += 1
        elif self.mode == "id":
            from autorun_cli.textsafe import clean_line

            for run in runs:
                write(clean_line(run.id) + "\n")
                count += 1
        elif self.mode == "json":
            # Streamed array: memory stays flat however many pages --all reads. The "["
            # waits for the first run, so a failure before any data (auth, 5xx on the
            # first page) leaves only the error document on stdout.
            try:
                for run in runs:
                    write(("[\n  " if count == 0 else ",\n  ") + _dumps(run.to_json(raw=raw), indent=None))
                    count += 1
            except BaseException:
                # A later page failed: close the array, so stdout holds the runs read so
                # far and then the error document, each well-formed (not "}{").
                if count:
                    write("\n]\n")
                raise
            write("\n]\n" if count else "[]\n")
        else:
            from autorun_cli.render import runs_table

            items = list(runs)
            count = len(items)
            if items:
                self.out.print(runs_table(items, self.time_format, width=self.out.width))
        sys.stdout.flush()
        return count

    def run_details(self, runs: list[Run], *, raw: bool = False, single: bool = True) -> None:
        if self.mode == "json":
            if single and len(runs) == 1:
                self.print_json(runs[0].to_json(raw=raw))
            else:
                self.print_json([r.to_json(raw=raw) for r in runs])
        elif self.mode in ("ndjson", "id"):
            self.runs(runs, raw=raw)
        else:
            from rich.rule import Rule

            from autorun_cli.render import run_view

            for i, run in enumerate(runs):
                if i:
                    self.out.print(Rule(style="dim"))
                self.out.print(run_view(run, self.time_format, details=raw or self.verbose))

    def data(self, obj: Any, table: Callable[[Any], Any] | None = None, ids: Callable[[Any], Iterable[str]] | None = None) -> None:
        """Generic data: JSON as given, a renderable from ``table`` for people."""
        if self.mode in ("json",) or table is None and self.mode == "table":
            self.print_json(obj)
        elif self.mode == "ndjson":
            for item in obj if isinstance(obj, list) else [obj]:
                sys.stdout.write(_dumps(item, indent=None) + "\n")
        elif self.mode == "id":
            from autorun_cli.textsafe import clean_line

            # Only IDs that exist: a document without one prints nothing, never "None".
            found = ids(obj) if ids else [x.get("id") for x in (obj if isinstance(obj, list) else [obj]) if isinstance(x, dict)]
            for ident in found:
                if ident is not None:
                    sys.stdout.write(clean_line(ident) + "\n")
        else:
            assert table is not None
            self.out.print(table(obj))
        sys.stdout.flush()

    def line(self, text: Any) -> None:
        """One value on its own line of stdout (an ID printed for scripts)."""
        from autorun_cli.textsafe import clean_line

        sys.stdout.write(clean_line(text) + "\n")
        sys.stdout.flush()

    def ndjson(self, obj: Any) -> None:
        """One JSON document on its own line of stdout."""
        sys.stdout.write(json_line(obj) + "\n")
        sys.stdout.flush()

    # -- messages on stderr --------------------------------------------------
    # A message is one line, never wrapped at the width: the terminal wraps it on
    # screen, and a CI log or `grep` gets it whole (paths, IDs and URLs included).
    def info(self, message: str, style: str = "") -> None:
        from rich.text import Text

        from autorun_cli.textsafe import clean

        self.err.print(Text(clean(message), style=style), soft_wrap=True)

    def warn(self, message: str) -> None:
        from rich.text import Text

        from autorun_cli.textsafe import clean

        self.err.print(Text("warning: ", style="yellow bold") + Text(clean(message)), soft_wrap=True)

    def error(self, err: AutorunError) -> None:
        report_error(err, "table" if self.jq is not None else self.mode)


def output_for(ctx: Any, output: Any = None, json_: Any = False, jq: str | None = None) -> Output:
    """The Output of a command that declares its output options itself (``-o``,
    ``--json``, ``--jq``) rather than taking the shared ones, merged with those given
    before the command as ``@common`` does (flag > env, after > before)."""
    from autorun_cli.cli.options import resolve

    return Output(resolve(ctx, output=output, json_=json_, jq=jq))


def register_known_secrets() -> None:
    """Before an error or a traceback is written: mask every secret of the setup, not
    only the resolved settings' (the error may come before they were, or be about them)."""
    from autorun_cli import config, textsafe

    textsafe.add_secrets(config.known_secrets())


def report_error(err: AutorunError, mode: str) -> None:
    """One ``error:`` line and a ``hint:`` line on stderr (+ JSON on stdout with -o json).

    Plain writes, no Rich: this runs on every failure path, including before any
    console exists, and must not interpret the message as markup.
    """
    from autorun_cli.textsafe import clean

    register_known_secrets()
    sys.stderr.write(f"error: {clean(err.message)}\n")
    if err.hint:
        sys.stderr.write(f"hint: {clean(err.hint)}\n")
    sys.stderr.flush()
    if mode in ("json", "ndjson"):
        # One line in ndjson mode, so line-by-line readers can parse it.
        sys.stdout.write(_dumps(err.to_json(), indent=None if mode == "ndjson" else 2) + "\n")
        sys.stdout.flush()
