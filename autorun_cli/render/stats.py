"""The human view of ``autorun stats``: a dashboard of bars and tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from autorun_cli.render import STATUS_STYLE, safe
from autorun_cli.render.diff import row_label
from autorun_cli.render.layout import Col, FitTable
from autorun_cli.timeutil import human_duration

_EIGHTHS = " ▏▎▍▌▋▊▉█"


def bar(fraction: float | None, width: int, style: str = "", *, rest: str = "·") -> Text:
    """A horizontal bar ``width`` cells long, filled to ``fraction`` in eighths; a
    non-zero fraction always shows at least a sliver."""
    if fraction is None:
        return Text(" " * width)
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    if fraction > 0 and eighths == 0:
        eighths = 1
    full, part = divmod(eighths, 8)
    text = Text("█" * full, style=style)
    if part:
        text.append(_EIGHTHS[part], style=style)
    filled = full + (1 if part else 0)
    text.append(rest * (width - filled), style="dim")
    return text


def duration_bar(p50: int | None, p95: int | None, scale: int, width: int) -> Text:
    """p50 solid, p95 lighter beyond it, on the view's shared scale."""
    if p95 is None or scale <= 0:
        return Text(" " * width)
    cells_95 = max(1, round(p95 / scale * width)) if p95 > 0 else 0
    cells_50 = min(cells_95, max(1, round(p50 / scale * width)) if p50 else 0)
    return Text.assemble(("█" * cells_50, "cyan"), ("░" * (cells_95 - cells_50), "cyan"), ("·" * (width - cells_95), "dim"))


def status_bar(by_status: dict[str, int], total: int, width: int) -> Text:
    """Runs by status as one stacked bar, exactly ``width`` cells (largest remainders
    get the rounding); every status present gets at least a cell."""
    if total <= 0:
        return Text("·" * width, style="dim")
    exact = {s: n / total * width for s, n in by_status.items()}
    cells = {s: max(1, int(x)) for s, x in exact.items()}
    for s in sorted(exact, key=lambda k: exact[k] - int(exact[k]), reverse=True):
        if sum(cells.values()) >= width:
            break
        cells[s] += 1
    while sum(cells.values()) > width and max(cells.values()) > 1:
        cells[max(cells, key=lambda k: cells[k])] -= 1
    text = Text()
    for status, n in cells.items():
        text.append("█" * n, style=STATUS_STYLE.get(status, STATUS_STYLE["unknown"])[1])
    return text


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _ms(value: int | None) -> str:
    return human_duration(value) if value is not None else "—"


def stats_view(doc: dict[str, Any], time_format: str = "iso", now: datetime | None = None, width: int = 120) -> RenderableType:
    total = doc["runs"]
    bar_w = 40 if width >= 100 else 24 if width >= 70 else 14
    parts: list[RenderableType] = []

    head = Text(f"{total:,} run{'s' if total != 1 else ''}", style="bold")
    d = doc["duration_ms"]
    if d["p50"] is not None:
        head.append(f"   duration p50 {_ms(d['p50'])} · p95 {_ms(d['p95'])} · max {_ms(d['max'])}", style="")
    parts.append(head)
    parts.append(status_bar(doc["by_status"], total, bar_w * 2 if width >= 100 else min(width - 2, 60)))
    legend = Text()
    for status, n in doc["by_status"].items():
        symbol, style = STATUS_STYLE.get(status, STATUS_STYLE["unknown"])
        if legend:
            legend.append("   ")
        legend.append(f"{symbol} {status}", style=style)
        legend.append(f" {n:,} ({n / total * 100:.0f}%)" if total else f" {n}")
    if legend:
        parts.append(legend)

    if doc["steps"]:
        scale = max((s["p95_ms"] or 0) for s in doc["steps"])
        wide = width >= 100
        # The duration bars need room, and durations to draw.
        medium = width >= 80 and scale > 0
        rate_w = 10 if wide else 5 if medium else 4
        dur_w = 30 if width >= 120 else 20 if wide else 8
        title = "Steps" + (f"   duration bars: p50 █, p95 ░, full width {_ms(scale)}" if medium else "")
        cols = [
            Col("STEP", "fold", min_width=12, priority=3),
            Col("RUNS", justify="right", priority=2),
            Col("FAILED", justify="right", priority=2),
            Col("FAILURE RATE" if wide else "FAIL %", priority=2),
            Col("P50", justify="right", priority=1),
            Col("P95", justify="right", priority=1),
        ]
        if medium:
            cols.append(Col("", optional=True))
        steps = FitTable(*cols, title=title)
        for s in doc["steps"]:
            rate = s["failure_rate"]
            rate_cell = bar(rate, rate_w, "red" if rate else "green")
            rate_cell.append(f" {_pct(rate):>6}")
            cells: list[Any] = [
                safe(row_label(s)), f"{s['runs']:,}", Text(f"{s['failed']:,}", style="red" if s["failed"] else "dim"),
                rate_cell, _ms(s["p50_ms"]), _ms(s["p95_ms"]),
            ]
            if medium:
                cells.append(duration_bar(s["p50_ms"], s["p95_ms"], scale, dur_w))
            steps.add_row(*cells)
        parts += [Text(""), steps]

    if doc["waits"]:
        waits = FitTable(
            Col("STEP", priority=3),
            Col("EVENT", priority=2),
            Col("WAITS", justify="right", priority=2),
            Col("RECEIVED", justify="right", priority=2),
            Col("TIMED OUT" if width >= 80 else "T/O", justify="right", priority=2),
            Col("WAITING", justify="right", priority=2),
            Col("TIMEOUT RATE" if width >= 100 else "T/O %", justify="right", priority=1),
            title="Waits",
        )
        for w in doc["waits"]:
            rate = w["timeout_rate"]
            rate_cell = bar(rate, 8, "red" if rate else "green") + Text(" ") if width >= 100 else Text()
            rate_cell.append(f"{_pct(rate):>6}")
            waits.add_row(
                safe(w["step_key"]), safe(w["event"]), f"{w['waits']:,}",
                Text(f"{w['received']:,}", style="green" if w["received"] else "dim"),
                Text(f"{w['timed_out']:,}", style="red" if w["timed_out"] else "dim"),
                Text(f"{w['waiting']:,}", style="yellow" if w["waiting"] else "dim"),
                rate_cell,
            )
        parts += [Text(""), waits]

    if doc["errors"]:
        shown = doc["errors"][:10]
        title = "Top errors" + (f" (10 of {len(doc['errors'])}; all with -o json)" if len(doc["errors"]) > 10 else "")
        errors = FitTable(
            Col("COUNT", justify="right"),
            Col("MESSAGE", "fold", min_width=20, ratio=3, priority=2),
            *([Col("STEP", "fold", min_width=10, optional=True)] if width >= 100 else []),
            Col("LAST RUN", priority=3, label="last run"),
            title=title,
        )
        for e in shown:
            message = safe(e["message"], "red")
            if width >= 100:
                errors.add_row(f"{e['count']:,}", message, safe(e["step"]), safe(e["last_run_id"]))
            else:
                if e["step"]:
                    message.append(f"  (step {e['step']})", style="dim")
                errors.add_row(f"{e['count']:,}", message, safe(e["last_run_id"]))
        parts += [Text(""), errors]
        if shown and shown[0]["last_run_id"]:
            parts.append(Text.assemble(("next: ", "dim"), (f"autorun show {shown[0]['last_run_id']}", "dim")))
    return Group(*parts)
