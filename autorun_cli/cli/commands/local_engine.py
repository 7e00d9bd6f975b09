"""Commands of the local engine: ``demo``, ``trigger``, ``automations …``, ``engine work``.

These always use the local engine in ``$AUTORUN_HOME``, whatever provider is selected:
they create and move runs, which only the local engine does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from autorun_cli.cli.options import JqOpt, JsonOpt, Opts, OutputOpt, common, set_current

if TYPE_CHECKING:
    from autorun_cli.cli.output import Output
    from autorun_cli.engine import Engine

automations_app = typer.Typer(help="Automation definitions of the local engine (TOML).", no_args_is_help=True)
engine_app = typer.Typer(help="Run the local engine's due work.", no_args_is_help=True)


def _out(ctx: typer.Context, output: Any = None, json_: Any = False, jq: str | None = None) -> Output:
    from autorun_cli.cli.output import output_for

    return output_for(ctx, output, json_, jq)


def open_engine() -> Engine:
    """The engine on ``$AUTORUN_HOME``, with due timers and retries fired."""
    from autorun_cli import config
    from autorun_cli.engine import Engine

    engine = Engine.open(config.home_path())
    engine.work()
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
    payload: Annotated[str | None, typer.Option("--payload", help="JSON object, @file.json, or @- for stdin.", show_default=False)] = None,
    event_id: Annotated[str | None, typer.Option("--id", help="Event ID; the same ID twice starts nothing new.", show_default=False)] = None,
    occurred_at: Annotated[str | None, typer.Option("--occurred-at", help="When the event happened (ISO 8601).", show_default=False)] = None,
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
) -> None:
    """List the automations loaded into the local engine."""
    out = _out(ctx, output, json_, jq)
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
    automation_id: Annotated[str, typer.Argument(help="Automation ID.")],
    version: Annotated[int | None, typer.Option("--version", metavar="N", help="A stored version (default: the latest).", min=1, max=2**31 - 1, show_default=False)] = None,
    output: OutputOpt = None,
    json_: JsonOpt = False,
    jq: JqOpt = None,
) -> None:
    """Show one automation: its trigger, identity and steps, and its TOML source."""
    out = _out(ctx, output, json_, jq)
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
    paths: Annotated[list[str], typer.Argument(help="TOML files or folders to check.")],
    output: OutputOpt = None,
    json_: JsonOpt = False,
    jq: JqOpt = None,
) -> None:
    """Check definitions without loading them; a bad one exits 2 naming the field."""
    from autorun_cli.engine import load_definitions

    out = _out(ctx, output, json_, jq)
    checked = []
    for path in paths:
        for d in load_definitions(path):
            checked.append({"id": d.id, "name": d.name, "trigger": d.trigger, "steps": len(d.steps), "path": d.source_path})
    if out.mode == "table":
        for c in checked:
            out.info(f"valid: {c['path']}: {c['id']} ({c['steps']} steps, trigger {c['trigger']})")
    else:
        out.data(checked)


@automations_app.command("load")
def automations_load(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(help="TOML files or folders to load.")],
    output: OutputOpt = None,
    json_: JsonOpt = False,
    jq: JqOpt = None,
) -> None:
    """Load definitions into the local engine; a changed one becomes a new version."""
    from autorun_cli.engine import load_definitions

    out = _out(ctx, output, json_, jq)
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


# -- engine work ----------------------------------------------------------------------------

@engine_app.command("work")
def engine_work(
    ctx: typer.Context,
    forever: Annotated[bool, typer.Option("--forever", help="Keep running as a worker until Ctrl-C.")] = False,
    poll: Annotated[str, typer.Option("--poll", metavar="DURATION", help="With --forever: time between checks when idle: seconds, or 500ms, 5s (10ms to 1h).")] = "1",
    output: OutputOpt = None,
    json_: JsonOpt = False,
    jq: JqOpt = None,
) -> None:
    """Fire due timers, retries and timeouts, and take over runs whose worker died;
    until idle, or with --forever as a long-lived worker."""
    from autorun_cli import config
    from autorun_cli.cli.output import plural
    from autorun_cli.cli.values import DAY, duration
    from autorun_cli.engine import Engine

    out = _out(ctx, output, json_, jq)
    poll_s = duration(poll, "--poll", low=0.01, high=DAY / 24, example="500ms")
    engine = Engine.open(config.home_path())
    try:
        if forever:
            out.info(f"working on {config.home_path()} (Ctrl-C to stop)")
        stats = engine.work(forever=forever, poll=poll_s)
        next_due = engine.next_due()
    finally:
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


def _register_draft() -> None:
    from autorun_cli.cli.commands.draft import draft_cmd

    automations_app.command("draft")(common(draft_cmd))


_register_draft()


def register(app: typer.Typer, name: str) -> None:
    if name in ("demo", "trigger"):
        app.command(name)(common(demo_cmd if name == "demo" else trigger_cmd))
    else:
        app.add_typer({"automations": automations_app, "engine": engine_app}[name], name=name)
