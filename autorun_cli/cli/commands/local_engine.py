"""Commands of the local engine: ``demo``, ``trigger``, ``automations …``, ``engine …``.

These always use the local engine, whatever provider is selected: they create and move
runs, which only the local engine does. Its store is ``--engine-url`` /
``AUTORUN_ENGINE_URL`` / the profile's ``engine_url``, else ``$AUTORUN_HOME/engine.db``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from autorun_cli.cli.completing import complete_automation
from autorun_cli.cli.options import EngineUrlOpt, JqOpt, JsonOpt, Opts, OutputOpt, common, set_current

if TYPE_CHECKING:
    from autorun_cli.cli.output import Output
    from autorun_cli.engine import Engine

automations_app = typer.Typer(help="Automation definitions of the local engine (TOML).", no_args_is_help=True)
engine_app = typer.Typer(help="The local engine's workers and store: work, status, migrate.", no_args_is_help=True)


def _out(ctx: typer.Context, output: Any = None, json_: Any = False, jq: str | None = None,
         engine_url: str | None = None) -> Output:
    """The command's Output; its options merged with those before the command (this
    also makes ``--engine-url`` given after the command the one ``open_engine`` uses)."""
    from autorun_cli.cli.options import resolve
    from autorun_cli.cli.output import Output

    return Output(resolve(ctx, output=output, json_=json_, jq=jq, engine_url=engine_url))


def open_engine(*, work: bool = True) -> Engine:
    """The engine on the selected store, with due timers and retries fired (``work``)."""
    from autorun_cli import config
    from autorun_cli.cli.options import current
    from autorun_cli.engine import Engine

    engine = Engine.connect(config.engine_url(current()), home=config.home_path())
    if work:
        try:
            engine.work()
        except BaseException:
            engine.close()
            raise
    return engine


# -- demo ------------------------------------------------------------------------------

def demo_cmd(opts: Opts) -> None:
    """Try autorun with no server and no config: load the bundled automations into the
    local engine, produce runs that end completed, waiting, timed out and failed, and
    show them. Safe to run again: nothing is duplicated."""
    from autorun_cli.engine.demo import run_demo
    from autorun_cli.providers.local import map_run

    set_current(opts)
    from autorun_cli.cli.output import Output, plural

    out = Output(opts)
    engine = open_engine()
    try:
        summary = run_demo(engine)
        runs = [map_run(engine.get_run(r["run_id"])) for r in summary["runs"]]
    finally:
        engine.close()
    if out.mode != "table":
        out.runs(runs) if out.mode in ("ndjson", "id") else out.print_json(
            {**summary, "runs": [{**r, "run": run.to_json()} for r, run in zip(summary["runs"], runs, strict=True)]}
        )
        return
    from rich.rule import Rule
    from rich.text import Text

    from autorun_cli.render import run_view, runs_table

    fresh = summary["started"]
    out.info(
        f"local engine at {summary['store']}: "
        + (f"loaded {plural(len(summary['definitions']), 'automation')}, started {plural(fresh, 'run')}" if fresh else "demo runs already exist; nothing new started")
    )
    out.out.print(runs_table(runs, out.time_format, width=out.out.width))
    featured = next((r for r in runs if r.status == "completed" and r.waits), runs[0] if runs else None)
    if featured is not None:
        out.out.print(Rule(Text(f"autorun show {featured.id}", style="bold"), style="dim"))
        out.out.print(run_view(featured, out.time_format))
    failed = next((r for r in runs if r.status == "failed"), None)
    waiting = next((r for r in runs if r.status == "waiting"), None)
    out.out.print(Text(""))
    out.out.print(Text("next:", style="bold"))
    tips: list[tuple[str, str]] = [("autorun list --status failed,timed_out", "")]
    if failed:
        tips.append((f"autorun show {failed.id}", "# why the webhook failed"))
    if waiting:
        tips.append((f'autorun events send email.opened --payload \'{{"email": "{waiting.identity.value if waiting.identity else ""}"}}\'', ""))
    tips.append(("autorun automations list", ""))
    for command, comment in tips:
        # A command is never broken over lines (it must paste whole); its comment
        # only when there is room.
        line = "  " + command
        if comment and len(line) + 8 + len(comment) <= out.out.width:
            line += " " * 8 + comment
        out.out.print(Text(line), no_wrap=True, overflow="ignore")


# -- trigger -----------------------------------------------------------------------------

def trigger_cmd(
    opts: Opts,
    event: Annotated[str, typer.Argument(metavar="EVENT", help="Event name, e.g. order.completed.")],
    payload: Annotated[str | None, typer.Option("--payload", metavar="JSON|@FILE", help="JSON object, @file.json, or @- for stdin.", show_default=False)] = None,
    event_id: Annotated[str | None, typer.Option("--id", metavar="EVENT_ID", help="Event ID; the same ID twice starts nothing new.", show_default=False)] = None,
    occurred_at: Annotated[str | None, typer.Option("--occurred-at", metavar="TIME", help="When the event happened (ISO 8601).", show_default=False)] = None,
) -> None:
    """Start a local run for every automation triggered by EVENT."""
    from autorun_cli.cli.commands.events import _check_time, parse_payload
    from autorun_cli.cli.output import Output, plural

    out = Output(opts)
    body = parse_payload(payload)
    when = _check_time(occurred_at)
    engine = open_engine()
    try:
        dispatch = engine.trigger(event, body, event_id=event_id, occurred_at=when)
        if not dispatch and not dispatch.duplicate and not engine.store.definitions_for_trigger(event):
            from autorun_cli.errors import NotFoundError

            raise NotFoundError(
                f"no automation is triggered by {event!r}",
                hint="see `autorun automations list`; load one with `autorun automations load FILE`",
            )
        result = {"event": event, "event_id": dispatch.event_id, "duplicate": dispatch.duplicate, "runs": list(dispatch)}
        if out.mode == "table":
            if dispatch.duplicate:
                out.info(f"duplicate event {dispatch.event_id}: started nothing new")
            else:
                statuses = {r["id"]: r["status"] for r in engine.list_runs(ids=list(dispatch))}
                out.info(f"event {dispatch.event_id} started {plural(len(dispatch), 'run')}")
                for run_id in dispatch:
                    out.out.print(f"{run_id}  {statuses.get(run_id, '')}", markup=False, highlight=False)
        else:
            out.data(result, ids=lambda r: r["runs"])
    finally:
        engine.close()


# -- automations ------------------------------------------------------------------------

def _defs_table(defs: list[dict[str, Any]]):
    from autorun_cli.render import safe
    from autorun_cli.render.layout import Col, FitTable

    t = FitTable(
        Col("ID"),
        Col("VERSION", justify="right", priority=1),
        Col("NAME", "fold", label="", priority=1),
        Col("TRIGGER", priority=2),
        Col("STEPS", justify="right", priority=1),
        Col("SOURCE", priority=0),
    )
    for d in defs:
        t.add_row(safe(d["id"], "bold"), str(d.get("version", "")), safe(d.get("name")), safe(d.get("trigger")), str(len(d.get("steps") or [])), safe(d.get("source_path"), "dim"))
    return t


@automations_app.command("list")
def automations_list(
    ctx: typer.Context,
    all_versions: Annotated[bool, typer.Option("--all-versions", help="Every stored version, not just the latest.")] = False,
    output: OutputOpt = None,
    json_: JsonOpt = False,
    jq: JqOpt = None,
    engine_url: EngineUrlOpt = None,
) -> None:
    """List the automations loaded into the local engine."""
    out = _out(ctx, output, json_, jq, engine_url)
    engine = open_engine()
    try:
        defs = engine.definitions(all_versions=all_versions)
    finally:
        engine.close()
    if not defs and out.mode == "table":
        out.info("no automations loaded; try `autorun demo` or `autorun automations load FILE|DIR`", style="dim")
        return
    rows = [{k: d.get(k) for k in ("id", "version", "name", "trigger", "steps", "loaded_at", "source_path", "digest")} for d in defs]
    out.data(rows, _defs_table)


@automations_app.command("show")
def automations_show(
    ctx: typer.Context,
    automation_id: Annotated[str, typer.Argument(metavar="ID", help="Automation ID.", autocompletion=complete_automation)],
    version: Annotated[int | None, typer.Option("--version", metavar="N", help="A stored version (default: the latest).", min=1, max=2**31 - 1, show_default=False)] = None,
    output: OutputOpt = None,
    json_: JsonOpt = False,
    jq: JqOpt = None,
    engine_url: EngineUrlOpt = None,
) -> None:
    """Show one automation: its trigger, identity and steps, and its TOML source."""
    out = _out(ctx, output, json_, jq, engine_url)
    engine = open_engine()
    try:
        d = engine.definition(automation_id, version)
    finally:
        engine.close()

    def view(d: dict[str, Any]):
        from rich.console import Group
        from rich.syntax import Syntax
        from rich.text import Text

        from autorun_cli.render import safe
        from autorun_cli.render.layout import Col, FitTable

        head = FitTable(Col("", style="bold"), Col("", "fold", label=""), show_header=False)
        for label, key in (("Automation", "id"), ("Version", "version"), ("Name", "name"), ("Trigger", "trigger"), ("Loaded", "loaded_at"), ("Source", "source_path")):
            head.add_row(label, safe(d.get(key)))
        steps = FitTable(Col("#", justify="right", style="dim"), Col("KEY", priority=2), Col("TYPE", priority=1), Col("NAME", "fold", label=""), title="Steps")
        for i, s in enumerate(d.get("steps") or [], 1):
            steps.add_row(str(i), safe(s.get("key")), safe(s.get("type")), safe(s.get("name")))
        parts: list[Any] = [head, Text(""), steps]
        if d.get("source"):
            parts += [Text(""), Syntax(d["source"], "toml", theme="ansi_dark", background_color="default")]
        return Group(*parts)

    out.data(d, view)


@automations_app.command("validate")
def automations_validate(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(metavar="PATH", help="TOML files or folders to check.")],
    output: OutputOpt = None,
    json_: JsonOpt = False,
    jq: JqOpt = None,
    engine_url: EngineUrlOpt = None,
) -> None:
    """Check definitions without loading them; a bad one exits 2 naming the field.
    Template variables a run may lack (payload fields the trigger may not carry,
    event fields with no event received) are warnings: such a step fails."""
    from autorun_cli.engine import load_definitions

    out = _out(ctx, output, json_, jq, engine_url)
    checked: list[dict[str, Any]] = []
    for path in paths:
        for d in load_definitions(path):
            checked.append({"id": d.id, "name": d.name, "trigger": d.trigger, "steps": len(d.steps), "path": d.source_path,
                            "warnings": d.template_warnings()})
    if out.mode == "table":
        for c in checked:
            for warning in c["warnings"]:
                out.warn(f"{c['path']}: {warning}")
        for c in checked:
            out.info(f"valid: {c['path']}: {c['id']} ({c['steps']} steps, trigger {c['trigger']})"
                     + (f", {len(c['warnings'])} warning(s)" if c["warnings"] else ""))
    else:
        out.data(checked)


@automations_app.command("load")
def automations_load(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(metavar="PATH", help="TOML files or folders to load.")],
    output: OutputOpt = None,
    json_: JsonOpt = False,
    jq: JqOpt = None,
    engine_url: EngineUrlOpt = None,
) -> None:
    """Load definitions into the local engine; a changed one becomes a new version."""
    from autorun_cli.engine import load_definitions

    out = _out(ctx, output, json_, jq, engine_url)
    # Every file is checked before any is stored: a bad one loads nothing at all.
    defs = [d for path in paths for d in load_definitions(path)]
    engine = open_engine()
    try:
        results = [r.as_dict() for r in engine.load(defs)]
    finally:
        engine.close()
    if out.mode == "table":
        for r in results:
            state = f"loaded as version {r['version']}" if r["created"] else f"unchanged (version {r['version']})"
            out.info(f"{r['id']}: {state}" + (f"  ← {r['path']}" if r.get("path") else ""))
    else:
        out.data(results)


# -- engine work / status / migrate ---------------------------------------------------------

@engine_app.command("work")
def engine_work(
    ctx: typer.Context,
    forever: Annotated[bool, typer.Option("--forever", help="Keep running as a worker until SIGTERM or Ctrl-C, which finish the requests in flight and hand the rest back.")] = False,
    poll: Annotated[str, typer.Option("--poll", metavar="DURATION", help="With --forever: time between checks when idle: seconds, or 500ms, 5s (10ms to 1h).")] = "1",
    concurrency: Annotated[int, typer.Option("--concurrency", metavar="N", min=1, max=256, help="HTTP requests this worker sends at once (1 to 256).")] = 8,
    output: OutputOpt = None,
    json_: JsonOpt = False,
    jq: JqOpt = None,
    engine_url: EngineUrlOpt = None,
) -> None:
    """Fire due timers, retries and timeouts, and take over runs whose worker died;
    until idle, or with --forever as a long-lived worker (any number of them, on any
    number of machines, may share one PostgreSQL store)."""
    import signal

    from autorun_cli import config
    from autorun_cli.cli.options import current
    from autorun_cli.cli.output import plural
    from autorun_cli.cli.values import DAY, duration
    from autorun_cli.engine import Engine

    out = _out(ctx, output, json_, jq, engine_url)
    poll_s = duration(poll, "--poll", low=0.01, high=DAY / 24, example="500ms")
    engine = Engine.connect(config.engine_url(current()), home=config.home_path(), concurrency=concurrency)
    previous: dict[Any, Any] = {}
    try:
        if forever:
            def drain(signum: int, frame: Any) -> None:
                if engine._stopping and signum == signal.SIGINT:
                    raise KeyboardInterrupt  # a second Ctrl-C: stop now
                engine.request_stop()

            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, drain)
            out.info(f"worker {engine.owner} on {engine.store.describe()}, up to {concurrency} requests at once"
                     " (SIGTERM or Ctrl-C to stop)")
        stats = engine.work(forever=forever, poll=poll_s)
        next_due = engine.next_due()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        engine.close()
    counts = stats.as_dict()
    result: dict[str, Any] = {**counts, "next_due": next_due.isoformat() if next_due else None}
    if out.mode == "table":
        out.info(
            f"fired {plural(counts['timers_fired'], 'timer')}, recovered {plural(counts['recovered'], 'run')}, "
            f"sent {plural(counts['http_requests'], 'HTTP request')}"
            + (f"; next timer due {result['next_due']}" if next_due else "; no timers pending")
        )
    else:
        out.data(result, ids=lambda r: [])  # no run IDs to print: -o id prints nothing


@engine_app.command("status")
def engine_status(
    ctx: typer.Context,
    output: OutputOpt = None,
    json_: JsonOpt = False,
    jq: JqOpt = None,
    engine_url: EngineUrlOpt = None,
) -> None:
    """The store (its URL, never a password), the live workers, runs by status, due
    timers and pending deliveries. Reads only: it moves no run."""
    out = _out(ctx, output, json_, jq, engine_url)
    engine = open_engine(work=False)
    try:
        status = engine.status()
    finally:
        engine.close()

    def view(st: dict[str, Any]) -> Any:
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        from autorun_cli.render import safe

        head = Table.grid(padding=(0, 2))
        head.add_column(style="bold")
        head.add_column()
        head.add_row("Store", safe(st["store"]))
        runs = ", ".join(f"{n} {s}" for s, n in sorted(st["runs"].items())) or "none"
        head.add_row("Runs", safe(runs))
        head.add_row("Due timers", str(st["due_timers"]))
        head.add_row("Pending deliveries", str(st["pending_deliveries"]))
        parts: list[Any] = [head, Text("")]
        if st["workers"]:
            t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title="Workers", title_justify="left",
                      title_style="bold")
            for col in ("ID", "HOST", "PID", "LAST SEEN"):
                t.add_column(col, overflow="fold")
            for w in st["workers"]:
                t.add_row(safe(w["id"]), safe(w["host"]), str(w["pid"]), safe(w["last_seen"]))
            parts.append(t)
        else:
            parts.append(Text("no live workers (start one with `autorun engine work --forever`)", style="dim"))
        return Group(*parts)

    out.data(status, view, ids=lambda st: [w["id"] for w in st["workers"]])


@engine_app.command("migrate")
def engine_migrate(
    ctx: typer.Context,
    output: OutputOpt = None,
    json_: JsonOpt = False,
    jq: JqOpt = None,
    engine_url: EngineUrlOpt = None,
) -> None:
    """Create or upgrade the store's schema to this version of autorun (also done on
    first use); safe to run again."""
    out = _out(ctx, output, json_, jq, engine_url)
    engine = open_engine(work=False)
    try:
        applied = sorted(engine.store.migrate() + list(engine.store.applied_on_open))
        result: dict[str, Any] = {"store": engine.store.describe(), "applied": applied,
                                  "schema_version": engine.store.schema_version()}
    finally:
        engine.close()
    if out.mode == "table":
        done = ", ".join(str(v) for v in applied)
        out.info(f"{result['store']}: schema version {result['schema_version']}"
                 + (f" (applied migration {done})" if done else " (already up to date)"))
    else:
        out.data(result, ids=lambda r: [])


def _register_draft() -> None:
    from autorun_cli.cli.commands.draft import draft_cmd

    automations_app.command("draft")(common(draft_cmd))


_register_draft()


def register(app: typer.Typer, name: str) -> None:
    if name in ("demo", "trigger"):
        app.command(name)(common(demo_cmd if name == "demo" else trigger_cmd))
    else:
        app.add_typer({"automations": automations_app, "engine": engine_app}[name], name=name)
