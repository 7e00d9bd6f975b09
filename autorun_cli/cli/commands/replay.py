"""``autorun replay SOURCE``: re-execute recorded runs locally and find where they diverge."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from autorun_cli.cli.options import Opts, common
from autorun_cli.cli.session import Session

if TYPE_CHECKING:
    from autorun_cli.engine import Definition
    from autorun_cli.model import Run
    from autorun_cli.replay.compare import Report


def _recorded(s: Session, source: str) -> list[Run]:
    from autorun_cli.replay.source import recorded_runs

    return _in_full(s, recorded_runs(source, lambda: s.provider, s.settings.automation))


def _in_full(s: Session, runs: list[Run]) -> list[Run]:
    """Runs of the current API that came without steps (a list that holds summaries,
    as Sendrealm's does) are read in full first, concurrently, so that
    `autorun list -o ndjson | autorun replay -` compares what the runs did."""
    if s.settings.provider == "local":
        return runs
    thin = [i for i, run in enumerate(runs) if not run.steps and run.provider == s.settings.provider]
    if not thin:
        return runs
    from autorun_cli.errors import AutorunError
    from autorun_cli.fetch import concurrency, map_bounded

    provider = s.provider

    def one(i: int) -> Run | AutorunError:
        try:
            return provider.get_run(runs[i].id)
        except AutorunError as exc:
            return exc

    from autorun_cli.cli.progress import Progress

    full = list(runs)
    # Seconds of requests for a long history: counted on stderr (a terminal only).
    with Progress("reading runs", total=len(thin), color=s.out.color) as progress:
        for i, got in zip(thin, progress.track(map_bounded(one, thin, concurrency())), strict=True):
            if isinstance(got, AutorunError):
                raise got
            full[i] = got
    s.out.info(f"read {len(thin)} of {len(runs)} runs in full: the list held summaries without steps", style="dim")
    return full


def _definitions(path: str | None, recorded: list[Run]) -> list[tuple[Definition, list[int]]]:
    """The automation each recorded run is replayed against, with the runs' positions.

    ``--definition`` names it for every run; without it, a local run follows the
    stored version it ran on.
    """
    from autorun_cli.engine import load_definitions
    from autorun_cli.errors import UsageError

    everyone = list(range(len(recorded)))
    if path:
        defs = load_definitions(path)
        if len(defs) == 1:
            return [(defs[0], everyone)]
        groups: dict[str, tuple[Definition, list[int]]] = {}
        for i, run in enumerate(recorded):
            keys = {run.automation_id, run.trigger.event if run.trigger else None}
            matching = [d for d in defs if d.id in keys or d.trigger in keys]
            if len(matching) != 1:
                raise UsageError(
                    f"{path} holds {len(defs)} automations and {'none' if not matching else 'several'} match run {run.id}",
                    hint="pass the one TOML file to replay against: --definition FILE",
                )
            groups.setdefault(matching[0].id, (matching[0], []))[1].append(i)
        return list(groups.values())
    not_local = [r for r in recorded if r.provider != "local" or not r.automation_id]
    if not_local:
        raise UsageError(
            f"replaying a {not_local[0].provider} run needs the automation it should follow",
            hint="pass --definition FILE (an automation in the local engine's TOML format; see `autorun automations validate`)",
        )
    from autorun_cli.cli.commands.local_engine import open_engine

    engine = open_engine()
    try:
        versions: dict[tuple[str, Any], tuple[Definition, list[int]]] = {}
        for i, run in enumerate(recorded):
            key = (run.automation_id or "", (run.extra or {}).get("definition_version"))
            if key not in versions:
                versions[key] = (engine.definition_model(*key), [])
            versions[key][1].append(i)
        return list(versions.values())
    finally:
        engine.close()


def _report_view(report: Report):
    from rich.console import Group
    from rich.text import Text

    from autorun_cli.render import safe
    from autorun_cli.render.layout import Col, FitTable
    from autorun_cli.textsafe import clean

    def cell(facts: dict[str, Any] | None, name: str) -> str:
        if facts is None:
            return "—"
        value = facts.get(name)
        if isinstance(value, list):
            return ", ".join(value) or "—"
        return "—" if value is None else str(value)

    t = FitTable(
        Col("STEP"),
        Col("FIELD", priority=2),
        Col("RECORDED", "fold", priority=1),
        Col("REPLAYED", "fold", priority=1),
        Col("", priority=2),
        title=f"Replay of {clean(report.run_id)}",
    )
    for row in report.steps:
        names = ["status", "branch", "wait", "messages"]
        if "step" in row.diverged:
            t.add_row(safe(row.key), "step", "ran" if row.recorded else "did not run", "ran" if row.replayed else "did not run", Text("✗", style="red"))
            continue
        shown = [n for n in names if cell(row.recorded, n) != "—" or cell(row.replayed, n) != "—"] or ["status"]
        for i, name in enumerate(shown):
            bad = name in row.diverged
            t.add_row(
                safe(row.key) if i == 0 else Text(""),
                Text(name, style="dim"),
                Text(cell(row.recorded, name)),
                Text(cell(row.replayed, name), style="red" if bad else ""),
                Text("✗", style="red") if bad else Text("✓", style="green"),
            )
    verdict = Text()
    if report.match:
        verdict.append("✓ match", style="green bold")
        verdict.append(f": the replay took the same path and ended {report.replayed_status}")
    else:
        d = report.first_divergence
        assert d is not None
        verdict.append("✗ diverged", style="red bold")
        verdict.append(" at " + (f"step {d.step}" if d.step else "the run's final status"))
        verdict.append(f": {d.field} was {d.recorded!r} when recorded, {d.replayed!r} on replay")
    parts: list[Any] = [t, verdict]
    for note in report.notes:
        parts.append(Text("note: " + note, style="yellow"))
    return Group(*parts)


def _divergence_hint(source: str, definition: str | None, first: Report, many: bool = False) -> str:
    """Where to compare the automation with what the run did — a command that works
    where the run came from: a run ID of this provider can be shown; a run read from
    a file or stdin may exist on no provider, so the report itself shows each step."""
    import shlex

    from autorun_cli.replay.source import looks_like_file

    if not looks_like_file(source):
        return f"compare the automation with what the run did: autorun show {first.run_id}"
    where = "the recorded and replayed values of each step"
    if source == "-":
        return f"see {where}: pipe the same runs to `autorun replay - {'-d ' + shlex.quote(definition) + ' ' if definition else ''}-o json`"
    command = f"autorun replay {shlex.quote(source)}" + (f" -d {shlex.quote(definition)}" if definition else "")
    import json

    step = first.first_divergence.step if first.first_divergence else None
    program = ".steps[]" + (f" | select(.key == {json.dumps(step)})" if step else "")
    if many:  # {"results": [...]}: the first run that diverged
        program = f".results[] | select(.run_id == {json.dumps(first.run_id)}) | {program}"
    return f"see {where}: {command} -o json | jq {shlex.quote(program)}"


def replay_cmd(
    opts: Opts,
    source: Annotated[str, typer.Argument(metavar="SOURCE", help="A run ID of the current provider, a JSON file from `show -o json` (with or without --raw), a vendor's run document, or - for ndjson on stdin.")],
    definition: Annotated[str | None, typer.Option("--definition", "-d", metavar="FILE", help="The automation to replay against (TOML). Default for local runs: the version they ran.", show_default=False)] = None,
) -> None:
    """Re-execute recorded runs on the local engine on a virtual clock, with their
    recorded trigger, identity and inbound events, and report the first step where
    the replay diverges. Nothing leaves the machine. Exit 1 on a divergence."""
    from autorun_cli.replay.runner import iter_replays

    with Session(opts) as s:
        from autorun_cli.replay.runner import paused_gc

        with paused_gc():
            recorded = _recorded(s, source)
        from autorun_cli.cli.progress import Progress

        by_position: dict[int, Report] = {}
        groups = _definitions(definition, recorded)
        # A bar on stderr (a terminal only) while many runs replay; results print after.
        with Progress("replaying runs", total=len(recorded), color=s.out.color) as progress:
            for defn, positions in groups:
                reports_of = progress.track(iter_replays([recorded[i] for i in positions], defn), close=False)
                for i, report in zip(positions, reports_of, strict=True):
                    by_position[i] = report
        reports = [by_position[i] for i in range(len(recorded))]
        many = len(reports) > 1 or source == "-"
        _print(s, reports, many=many, hint=lambda first: _divergence_hint(source, definition, first, many))


def summary(reports: list[Report]) -> dict[str, int]:
    diverged = sum(1 for r in reports if not r.match)
    return {"replayed": len(reports), "match": len(reports) - diverged, "diverge": diverged}


def summary_line(counts: dict[str, int]) -> str:
    """``200 replayed: 196 match, 4 diverge``."""
    return f"{counts['replayed']} replayed: {counts['match']} match, {counts['diverge']} diverge"


def _print(s: Session, reports: list[Report], *, many: bool, hint: Callable[[Report], str]) -> None:
    """One report in full; many (a history: ``-`` or a file of runs) as one line each
    and a summary, or -o json ``{"results": [...], "summary": {...}}``. Exit 1 when
    any run diverged."""
    from autorun_cli.errors import RunFailedError

    out = s.out
    counts = summary(reports)
    if out.mode == "json":
        out.print_json({"results": [r.to_json() for r in reports], "summary": counts} if many else reports[0].to_json())
    elif out.mode == "ndjson":
        out.data([r.to_json() for r in reports])
    elif out.mode == "id":
        out.data([r.run_id for r in reports if not r.match], ids=lambda ids: ids)
    elif not many:
        out.out.print(_report_view(reports[0]))
    else:
        from rich.text import Text

        from autorun_cli.textsafe import clean

        width = max(len(clean(r.run_id)) for r in reports)
        for r in reports:
            line = Text("✓ " if r.match else "✗ ", style="green" if r.match else "red")
            line.append(clean(r.run_id).ljust(width), style="bold")
            if r.match:
                line.append(f"  match ({clean(r.replayed_status)})")
            else:
                d = r.first_divergence
                line.append("  diverged at " + (clean(d.describe()) if d else "the run's end"), style="red")
            out.out.print(line, soft_wrap=True)
        out.out.print(Text(summary_line(counts), style="bold"), soft_wrap=True)
    diverged = [r for r in reports if not r.match]
    if diverged:
        first = diverged[0]
        err = RunFailedError(
            f"{len(diverged)} of {len(reports)} replayed runs diverged; first: {first.run_id}, {first.first_divergence.describe() if first.first_divergence else ''}",
            hint=hint(first),
            code="diverged",
        )
        if out.mode in ("json", "ndjson"):
            # The report is the one JSON document on stdout; the verdict goes to stderr.
            from autorun_cli.cli.output import report_error

            report_error(err, "table")
            raise typer.Exit(err.exit_code)
        raise err
    if out.mode == "table" and not many:
        out.info("1 run replayed, it matches")


def register(app: typer.Typer, name: str = "replay") -> None:
    app.command("replay")(common(replay_cmd))
