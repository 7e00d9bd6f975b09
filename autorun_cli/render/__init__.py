"""Pure functions from normalized runs to Rich renderables.

Text from an API is data: it is always wrapped in ``rich.text.Text`` (never parsed
as markup) and control characters are shown as visible escapes, so a run named
``[bold]x[/] \\x1b[31m`` prints exactly those characters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.text import Text

from autorun_cli.errors import replay_locally
from autorun_cli.model import LogEntry, Run, Step
from autorun_cli.render.layout import Col, FitTable, wrap_words
from autorun_cli.textsafe import clean, readable_info
from autorun_cli.timeutil import fmt_time, human_duration, parse_ts

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

STATUS_STYLE = {
    "completed": ("✓", "green"),
    "running": ("●", "cyan"),
    "pending": ("○", "dim"),
    "waiting": ("◷", "yellow"),
    "failed": ("✗", "red"),
    "cancelled": ("⊘", "magenta"),
    "timed_out": ("⌛", "red"),
    "skipped": ("–", "dim"),
    "received": ("✓", "green"),
    "unknown": ("?", "bright_black"),
}


def safe(value: Any, style: str = "") -> Text:
    return Text(clean(value), style=style)


def status_text(status: str | None) -> Text:
    symbol, style = STATUS_STYLE.get(status or "unknown", STATUS_STYLE["unknown"])
    return Text(f"{symbol} {status or 'unknown'}", style=style)


def _short_iso(value: Any) -> str:
    """ISO 8601 in UTC to the second: the human view's "iso" (JSON keeps the API's text)."""
    dt = parse_ts(value)
    if dt is None:
        return clean(value)
    try:
        return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except OverflowError:
        # At the calendar's edge (9999-12-31T23:59:59-14:00 is in year 10000 in UTC):
        # shown as given.
        return clean(value)


def _offset(value: Any, start: datetime | None) -> str:
    """``+1m30s`` from the run's start: how a timeline reads best."""
    dt = parse_ts(value)
    if dt is None or start is None:
        return ""
    ms = int(round((dt - start).total_seconds() * 1000))
    return ("+" if ms >= 0 else "-") + (human_duration(abs(ms)) if ms else "0s")


def _start(run: Run) -> datetime | None:
    return parse_ts(run.started_at) or parse_ts(run.created_at) or parse_ts(run.trigger.occurred_at if run.trigger else None)


def _t(value: Any, time_format: str, now: datetime | None) -> str:
    if value is not None and time_format == "iso":
        return _short_iso(value)
    return clean(fmt_time(value, time_format, now))


def runs_table(runs: Iterable[Run], time_format: str = "iso", now: datetime | None = None, width: int | None = None) -> FitTable:
    """One line per run. Short of room, TRIGGER goes first, then TOOK; then NAME moves
    under the run. ``width`` is unused: the table fits the width it is drawn at."""
    table = FitTable(
        Col("ID"),
        Col("STATUS", priority=2),
        Col("NAME", "fold", min_width=12, label="", comfort=24),
        Col("TRIGGER", optional=True, priority=0),
        Col("CREATED", priority=1),
        Col("TOOK", justify="right", optional=True, priority=1),
    )
    for run in runs:
        table.add_row(
            safe(run.id, "bold"),
            status_text(run.status),
            safe(run.name),
            safe(run.trigger.event if run.trigger else None),
            Text(_t(run.created_at or run.started_at, time_format, now)),
            Text(human_duration(run.duration_ms)),
        )
    return table


def _kv(rows: list[tuple[str, Text | str]]) -> FitTable:
    grid = FitTable(Col("", style="bold"), Col("", "fold", min_width=16, label=""), show_header=False)
    for key, value in rows:
        grid.add_row(key, value if isinstance(value, Text) else safe(value))
    return grid


def _step_detail(step: Step) -> Text:
    out = Text()
    info = readable_info(step.info)
    if info:
        out.append(clean(info))
    if step.branch:
        if out:
            out.append("  ")
        out.append(f"→ {clean(step.branch)}", style="cyan")
    if step.error:
        if out:
            out.append("  ")
        out.append(clean(step.error), style="red")
    return out


def _previous_attempt(previous: dict[str, Any]) -> Text:
    """What a retried execution still carries from the attempt before (tenant)."""
    out = Text("the previous attempt", style="dim")
    index = previous.get("failed_action_index")
    if isinstance(index, int) and index >= 0:
        out.append(f" failed at action {index + 1}", style="dim")
    if previous.get("error_message"):
        out.append(": ")
        out.append(clean(previous["error_message"]), style="red")
    logs = previous.get("logs")
    if isinstance(logs, int) and logs:
        out.append(f"; its {logs} log entr{'y is' if logs == 1 else 'ies are'} marked below", style="dim")
    return out


def run_header(run: Run, time_format: str, now: datetime | None) -> FitTable:
    status = status_text(run.status) + (Text(f"  ({clean(run.provider_status)})", style="dim") if run.provider_status not in (None, run.status) else Text(""))
    if run.extra.get("dry_run") is True:
        status.append("  dry run: no action ran", style="yellow")
    rows: list[tuple[str, Text | str]] = [
        ("Run", safe(run.id, "bold")),
        ("Name", safe(run.name)),
        ("Provider", safe(run.provider)),
        ("Status", status),
    ]
    previous = run.extra.get("previous_attempt")
    if isinstance(previous, dict):
        rows.append(("Retried", _previous_attempt(previous)))
    if run.automation_id:
        rows.append(("Automation", safe(run.automation_id)))
    if run.trigger:
        trig = Text(clean(run.trigger.event or ""))
        if run.trigger.payload:
            trig.append("  " + clean(json.dumps(run.trigger.payload, ensure_ascii=False, default=str)), style="dim")
        rows.append(("Trigger", trig))
    if run.identity and (run.identity.value or run.identity.name):
        ident = Text(clean(run.identity.value or run.identity.name))
        if run.identity.type:
            ident.append(f"  ({clean(run.identity.type)})", style="dim")
        rows.append(("Identity", ident))
    for label, value in (("Created", run.created_at), ("Started", run.started_at), ("Finished", run.finished_at)):
        if value:
            rows.append((label, Text(_t(value, time_format, now))))
    if run.duration_ms is not None:
        rows.append(("Duration", human_duration(run.duration_ms)))
    if run.current_step and run.status not in ("completed", "failed", "cancelled", "timed_out"):
        rows.append(("Current step", safe(run.current_step)))
    return _kv(rows)


def step_label(step: Step) -> str:
    """The key people know a step by; a UUID key (generic) gives way to the name."""
    if step.key and step.name and _UUID.match(step.key):
        return step.name
    return step.key or step.name or step.id or "?"


def steps_table(run: Run, time_format: str, now: datetime | None) -> RenderableType:
    """The step timeline, with a waterfall column when the steps have start times:
    laid out for the width it is drawn at (a terminal, a CI log, an SVG export)."""
    from autorun_cli.render.waterfall import Waterfall

    fall = Waterfall(run, now)
    return _StepsView(run, fall) if fall.drawable else _steps_fit_table(run, None, 0)


# Waterfall widths tried, widest first; INFO should keep this much room beside it.
_BAR_WIDTHS = (40, 36, 32, 28, 24, 20, 16, 12)
_INFO_ROOM = 28


class _StepsView:
    """Picks the waterfall's width at render time: as wide as fits with every column
    inline and INFO still readable; else INFO moves under each row (FitTable's
    detaching) and the bar keeps its room; at the narrowest, the bar goes."""

    def __init__(self, run: Run, fall: Any):
        self.run, self.fall = run, fall

    def table_for(self, width: int) -> FitTable:
        # About a fifth of the width: 16 cells in an 80-column CI log, 24 at 120.
        most = max(_BAR_WIDTHS[-1], min(_BAR_WIDTHS[0], width // 5))
        tables = [_steps_fit_table(self.run, self.fall, w) for w in _BAR_WIDTHS if w <= most]
        for table in tables:  # everything inline, INFO readable
            inline, detached, widths = table.layout(width)
            if not detached and len(inline) == len(table.columns) and widths[len(table.columns) - 1] >= _INFO_ROOM:
                return table
        for table in tables:  # INFO under the rows, every other column inline
            inline, detached, widths = table.layout(width)
            if set(range(len(table.columns) - 1)) <= set(inline):
                return table
        return _steps_fit_table(self.run, self.fall, _BAR_WIDTHS[-1], optional_bar=True)

    def __rich_console__(self, console: Any, options: Any) -> Any:
        yield self.table_for(options.max_width)

    def __rich_measure__(self, console: Any, options: Any) -> Any:
        return self.table_for(options.max_width).__rich_measure__(console, options)


def _steps_fit_table(run: Run, fall: Any, bar_width: int, optional_bar: bool = False) -> FitTable:
    start = _start(run)
    cols = [
        Col("#", justify="right", style="dim"),
        Col("STEP", "fold", min_width=12, priority=3),
        Col("STATUS", priority=2),
        Col("AT", justify="right", priority=1),
        Col("TOOK", justify="right", priority=1),
    ]
    if fall is not None:
        # The shared time axis: 0 on the left, the run's whole time on the right.
        cols.append(Col(fall.header(bar_width), optional=optional_bar, priority=0))
    cols.append(Col("INFO", "fold", min_width=16, label="", ratio=3))
    table = FitTable(*cols, title="Steps")
    for i, step in enumerate(run.steps, 1):
        label = safe(step_label(step))
        if step.attempt and step.attempt > 1:
            label.append(f" #{step.attempt}", style="yellow")
        second = [x for x in (step.name if step.name != step_label(step) else None, step.type) if x]
        if second:
            label.append("\n" + " · ".join(clean(x) for x in second), style="dim")
        cells: list[Text] = [
            Text(str(i)),
            label,
            status_text(step.status),
            Text(_offset(step.started_at, start), style="dim"),
            Text(human_duration(step.duration_ms)),
        ]
        if fall is not None:
            bar = fall.bar(i - 1, step, bar_width)
            bar.append(" " * (bar_width - bar.cell_len))  # every row as wide as the axis
            cells.append(bar)
        cells.append(_step_detail(step))
        table.add_row(*cells)
    return table


def waits_table(run: Run, time_format: str, now: datetime | None) -> FitTable:
    start = _start(run)
    table = FitTable(
        Col("STEP"),
        Col("EVENT", priority=2),
        Col("STATUS", priority=2),
        Col("DEADLINE", priority=1),
        Col("OUTCOME", "fold", min_width=16, label=""),
        title="Waits",
    )
    for wait in run.waits:
        if wait.status == "received":
            by = wait.resumed_by_event or {}
            outcome = Text(f"resumed {_offset(wait.resumed_at, start) or _t(wait.resumed_at, time_format, now)}")
            if by:
                outcome.append(f" by {clean(by.get('event_name') or by.get('event') or '')} {clean(by.get('id') or '')}".rstrip(), style="dim")
        elif wait.status == "timed_out":
            outcome = Text(f"timed out {_offset(wait.timed_out_at or wait.timeout_at, start) or _t(wait.timed_out_at or wait.timeout_at, time_format, now)}", style="red")
        elif wait.status in ("waiting", "unknown"):
            outcome = Text("waiting", style="yellow")
        else:
            outcome = Text(clean(wait.status), style=STATUS_STYLE.get(wait.status, ("", ""))[1])
        if wait.branch:
            outcome.append(f"  → {clean(wait.branch)}", style="cyan")
        table.add_row(
            safe(wait.step_key),
            safe(wait.event),
            status_text(wait.status),
            Text(_t(wait.timeout_at, time_format, now)),
            outcome,
        )
    return table


def messages_table(run: Run, time_format: str, now: datetime | None) -> FitTable:
    start = _start(run)
    table = FitTable(
        Col("CHANNEL"),
        Col("STEP", priority=2),
        Col("TITLE", "fold", min_width=12, priority=1),
        Col("STATUS", priority=2),
        Col("AT", justify="right", priority=1),
        Col("ID", style="dim", priority=0),
        title="Messages",
    )
    for msg in run.messages:
        table.add_row(
            safe(msg.channel),
            safe(msg.step_key),
            safe(msg.title),
            safe(msg.status),
            Text(_offset(msg.created_at, start) or _t(msg.created_at, time_format, now), style="dim"),
            safe(msg.id),
        )
    return table


LEVEL_STYLE = {"error": "red", "warn": "yellow", "warning": "yellow", "debug": "dim"}


def _log_message(log: LogEntry, details: bool) -> Text:
    out = Text()
    if log.previous_attempt:
        out.append("previous attempt · ", style="dim")
    out.append(clean(log.message))
    if details and log.metadata not in (None, {}, []):
        out.append("\n" + clean(json.dumps(log.metadata, ensure_ascii=False, default=str)), style="dim")
    return out


def logs_table(run: Run, time_format: str, now: datetime | None, details: bool = False) -> FitTable:
    """The run's logs; ``details`` (-v, --raw) adds each entry's metadata."""
    start = _start(run)
    table = FitTable(
        Col("AT", justify="right"),
        Col("LEVEL", priority=1),
        Col("STEP", justify="right", priority=1),
        Col("MESSAGE", "fold", min_width=20, label=""),
        title="Logs",
    )
    for log in run.logs:
        level = (log.level or "").lower()
        table.add_row(
            # An earlier attempt's entry is timed on its own: an offset from this
            # attempt's start would read "-176d".
            Text((None if log.previous_attempt else _offset(log.timestamp, start)) or _t(log.timestamp, time_format, now), style="dim"),
            safe(log.level, LEVEL_STYLE.get(level, "")),
            "" if log.step_index is None else str(log.step_index + 1),
            _log_message(log, details),
        )
    return table


_MISSING_PATH = re.compile(r"payload has no ([\w.-]+)")


def trigger_command(run: Run, missing: str | None = None) -> str | None:
    """``autorun trigger EVENT --payload '…'``: a new local run from the same event and
    payload (with ``missing``, a dotted path, set to a placeholder to fill in)."""
    import shlex

    if run.trigger is None or not run.trigger.event:
        return None
    payload: Any = dict(run.trigger.payload or {})
    if missing:
        node = payload
        *parents, leaf = missing.split(".")
        for key in parents:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, dict) else {}
            node = node[key]
        node[leaf] = leaf.upper()
    body = json.dumps(payload, ensure_ascii=False, default=str)
    return f"autorun trigger {shlex.quote(clean(run.trigger.event))} --payload {shlex.quote(clean(body))}"


def _local_failure_hint(run: Run) -> str | None:
    """A local run that failed for a reason a retry repeats (the payload has no
    identity, a step that is not an HTTP call failed): what can work instead."""
    failed = next((s for s in reversed(run.steps) if s.status == "failed"), None)
    message = run.error.message if run.error is not None and run.error.message else ""
    missing = _MISSING_PATH.search(message)
    if missing or (failed is None and run.error is not None and not run.steps):
        # Retried, it resumes with the same payload and fails again: start a run
        # whose payload carries the identity.
        return trigger_command(run, missing.group(1) if missing else None)
    if failed is not None and failed.type not in (None, "http_request"):
        # Decided by the definition and the payload, not by a service that may come
        # back: see what the step needs.
        return f"autorun automations show {run.automation_id}" if run.automation_id else None
    return None


def next_command_hint(run: Run) -> str | None:
    """What to run next for a run in this state: a command that can succeed."""
    if run.status == "failed" or run.status == "timed_out" or run.status == "cancelled":
        if run.provider == "tenant":
            # Alga retries only failed executions (and then links `retry`): name retry
            # only where it can succeed.
            offered = run.extra.get("retryable")
            if offered or (offered is None and run.status == "failed"):
                return f"autorun retry {run.id}"
            return replay_locally(run.id)
        if run.provider == "local" and run.status == "failed":
            instead = _local_failure_hint(run)
            if instead:
                return instead
        if run.links.get("retry") or run.provider in ("generic", "local"):
            return f"autorun retry {run.id}"
        return replay_locally(run.id)
    if run.status in ("running", "pending", "waiting"):
        return f"autorun watch {run.id}"
    return None


class _ErrorBox:
    """The error in a red box, and its hint — a command, never broken over lines so it
    pastes whole. Unboxed when a word or the hint is too long for the box (a box would
    cut it); drawn for the width at render time."""

    def __init__(self, body: Text, hint: str | None):
        self.body = body
        self.hint = Text.assemble(("hint: ", "bold"), hint) if hint else None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from autorun_cli.render.layout import longest_word

        room = options.max_width - 4
        if longest_word(self.body) <= room and (self.hint is None or self.hint.cell_len <= room):
            yield Panel(self.body + Text("\n") + self.hint if self.hint else self.body,
                        title="Error", title_align="left", border_style="red", expand=False)
            return
        yield Text("Error", style="bold red")
        lines = wrap_words(self.body, options.max_width - 2) + ([self.hint] if self.hint else [])
        for line in lines:
            if line.cell_len + 2 <= options.max_width:
                line = Text("  ") + line
            line.no_wrap, line.overflow = True, "ignore"  # too long: runs past the edge, whole
            yield line


def error_panel(run: Run) -> RenderableType:
    err = run.error
    body = Text()
    if err is not None:
        if err.step:
            body.append("step ", style="dim")
            body.append(clean(err.step), style="bold")
            body.append("\n")
        body.append(clean(err.message or "failed"), style="red")
        if err.detail:
            detail = clean(err.detail)
            lines = detail.splitlines() or [detail]
            body.append("\n" + "\n".join(lines[:8]), style="dim")
            if len(lines) > 8:
                body.append(f"\n… {len(lines) - 8} more lines (see -o json)", style="dim")
    hint = next_command_hint(run)
    return _ErrorBox(body, clean(hint) if hint else None)


def run_view(run: Run, time_format: str = "iso", now: datetime | None = None, details: bool = False) -> RenderableType:
    """The full human view of one run: header, timeline, waits, messages, logs, error.

    ``details`` (``-v`` or ``--raw``) adds what is only worth a glance when digging:
    the logs' structured metadata."""
    parts: list[RenderableType] = [run_header(run, time_format, now)]
    if run.steps:
        parts += [Text(""), steps_table(run, time_format, now)]
    if run.waits:
        parts += [Text(""), waits_table(run, time_format, now)]
    if run.messages:
        parts += [Text(""), messages_table(run, time_format, now)]
    if run.logs:
        parts += [Text(""), logs_table(run, time_format, now, details)]
    if run.error is not None or run.status in ("failed", "timed_out"):
        parts += [Text(""), error_panel(run)]
    else:
        hint = next_command_hint(run)
        if hint:
            # A command: one line, never broken (it must paste whole).
            parts += [Text(""), Text.assemble(("next: ", "dim"), (clean(hint), "dim"), no_wrap=True, overflow="ignore")]
    return Group(*parts)
