"""``autorun replay SOURCE``: re-execute recorded runs locally and find where they diverge."""

from __future__ import annotations

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

    return recorded_runs(source, lambda: s.provider, s.settings.automation)


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


def replay_cmd(
    opts: Opts,
    source: Annotated[str, typer.Argument(metavar="SOURCE", help="A run ID of the current provider, a JSON file from `show -o json` (with or without --raw), a vendor's run document, or - for ndjson on stdin.")],
    definition: Annotated[str | None, typer.Option("--definition", "-d", help="The automation to replay against (TOML). Default for local runs: the version they ran.", show_default=False)] = None,
) -> None:
    """Re-execute recorded runs on the local engine on a virtual clock, with their
    recorded trigger, identity and inbound events, and report the first step where
    the replay diverges. Nothing leaves the machine. Exit 1 on a divergence."""
    from autorun_cli.errors import RunFailedError
    from autorun_cli.replay.runner import replay_runs

    with Session(opts) as s:
        from autorun_cli.replay.runner import paused_gc

        with paused_gc():
            recorded = _recorded(s, source)
        by_position: dict[int, Report] = {}
        for defn, positions in _definitions(definition, recorded):
            for i, report in zip(positions, replay_runs([recorded[i] for i in positions], defn), strict=True):
                by_position[i] = report
        reports = [by_position[i] for i in range(len(recorded))]
        out = s.out
        if out.mode == "json":
            out.print_json(reports[0].to_json() if len(reports) == 1 and source != "-" else [r.to_json() for r in reports])
        elif out.mode == "ndjson":
            out.data([r.to_json() for r in reports])
        elif out.mode == "id":
            out.data([r.run_id for r in reports if not r.match], ids=lambda ids: ids)
        elif len(reports) == 1:
            out.out.print(_report_view(reports[0]))
        else:
            from rich.text import Text

            from autorun_cli.render import safe
            from autorun_cli.render.layout import Col, FitTable

            t = FitTable(Col("RUN"), Col("RESULT", priority=1), Col("FIRST DIVERGENCE", "fold", min_width=20, label=""))
            for r in reports:
                t.add_row(
                    safe(r.run_id),
                    Text("✓ match", style="green") if r.match else Text("✗ diverged", style="red"),
                    safe(r.first_divergence.describe() if r.first_divergence else ""),
                )
            out.out.print(t)
        diverged = [r for r in reports if not r.match]
        if diverged:
            first = diverged[0]
            err = RunFailedError(
                f"{len(diverged)} of {len(reports)} replayed runs diverged; first: {first.run_id}, {first.first_divergence.describe() if first.first_divergence else ''}",
                hint="compare the automation with what the run did: autorun show " + first.run_id,
                code="diverged",
            )
            if out.mode in ("json", "ndjson"):
                # The report is the one JSON document on stdout; the verdict goes to stderr.
                from autorun_cli.cli.output import report_error

                report_error(err, "table")
                raise typer.Exit(err.exit_code)
            raise err
        if out.mode == "table":
            from autorun_cli.cli.output import plural

            out.info(f"{plural(len(reports), 'run')} replayed, " + ("all match" if len(reports) > 1 else "it matches"))


def register(app: typer.Typer, name: str = "replay") -> None:
    app.command("replay")(common(replay_cmd))
