"""The human view of ``autorun diff``: the verdict on top, then the two runs side by
side, one row per step, changed cells highlighted, duration deltas (``+1m30s``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from autorun_cli.render import _UUID, _t, safe, status_text
from autorun_cli.render.layout import Col, FitTable
from autorun_cli.textsafe import clean
from autorun_cli.timeutil import human_duration

CHANGED = "bold yellow"


def signed_duration(ms: int | None) -> str:
    """``+1m30s`` / ``-2s`` / ``±0``: A's time relative to B's."""
    if ms is None:
        return ""
    if ms == 0:
        return "±0"
    return ("+" if ms > 0 else "-") + human_duration(abs(ms))


def row_label(row: dict[str, Any]) -> str:
    key, name = row.get("key"), row.get("name")
    if key and name and _UUID.match(key):
        return name
    return key or name or "?"


def _value(value: Any) -> str:
    return "—" if value is None else clean(value)


def _step_cell(facts: dict[str, Any] | None, changed: list[str]) -> Text:
    if facts is None:
        return Text("— did not run", style=CHANGED)
    cell = status_text(facts["status"])
    if "status" in changed:
        cell.stylize(CHANGED)
    if facts.get("attempt") and facts["attempt"] > 1:
        cell.append(f" #{facts['attempt']}", style="dim")
    if facts.get("duration_ms") is not None:
        cell.append("  " + human_duration(facts["duration_ms"]), style="dim")
    if facts.get("branch") or "branch" in changed:
        cell.append("\n→ " + _value(facts.get("branch")), style=CHANGED if "branch" in changed else "cyan")
    if facts.get("error") or "error" in changed:
        cell.append("\n" + _value(facts.get("error")), style=CHANGED if "error" in changed else "red")
    return cell


def verdict(doc: dict[str, Any]) -> Text:
    """The first line: same, or where the runs first differ."""
    if doc["same"]:
        line = Text("✓ same", style="green bold")
        line.append(f": both {doc['a']['status']}, the same steps with the same outcomes")
        return line
    first = doc["first_difference"]
    line = Text("✗ different", style="red bold")
    where = f"step {clean(first['step'])}" if first["step"] is not None else "the run"
    field = first["field"]
    if field == "present":
        ran = "A" if first["a"] else "B"
        line.append(f": first at {where}, which only {ran} ran")
    elif field == "order":
        line.append(f": first at {where}, step {first['a']} in A but step {first['b']} in B")
    else:
        line.append(f": first at {where}, {field} {_value(first['a'])} (A) vs {_value(first['b'])} (B)")
    return line


def hint(doc: dict[str, Any]) -> str | None:
    first = doc["first_difference"]
    if first is None:
        return None
    # Look where the runs parted, in the run that has that step.
    side = "b" if first["field"] == "present" and not first["a"] else "a"
    run_id = doc[side]["id"]
    if first["step"] is None:
        return f"autorun show {run_id}"
    return f"autorun show {run_id}  (step {first['step']})"


def diff_view(doc: dict[str, Any], time_format: str = "iso", now: datetime | None = None, width: int = 120) -> RenderableType:
    parts: list[RenderableType] = [verdict(doc)]
    tip = hint(doc)
    if tip:
        parts.append(Text.assemble(("hint: ", "bold"), tip))
    parts.append(Text(""))

    changed_fields = {f["field"] for f in doc["fields"]}
    a, b = doc["a"], doc["b"]
    # The two runs, one line each: IDs, statuses and times are never cut (FitTable).
    runs = FitTable(
        Col("", style="bold"),
        Col("RUN", priority=3),
        Col("STATUS", priority=2),
        Col("CREATED", priority=0),
        Col("TOOK", justify="right", priority=1),
    )
    delta = a["duration_ms"] - b["duration_ms"] if a["duration_ms"] is not None and b["duration_ms"] is not None else None
    for side, run in (("A", a), ("B", b)):
        status = status_text(run["status"])
        if "status" in changed_fields:
            status.stylize(CHANGED)
        took = Text(human_duration(run["duration_ms"]) or "—")
        if side == "A" and delta is not None:
            took.append(f" ({signed_duration(delta)})", style="dim")
        runs.add_row(side, safe(run["id"], "bold"), status, Text(_t(run["created_at"], time_format, now)), took)
    parts.append(runs)

    # The run-level values that differ, side by side.
    values = {f["field"]: f for f in doc["fields"]}
    differing = [name for name in ("error", "trigger.event", "identity.value") if name in values]
    if differing or a["automation_id"] != b["automation_id"]:
        fields = FitTable(Col("FIELD", style="bold"), Col("A", "fold", min_width=12), Col("B", "fold", min_width=12))
        for name in differing:
            fields.add_row(name, Text(_value(values[name]["a"]), style=CHANGED), Text(_value(values[name]["b"]), style=CHANGED))
        if a["automation_id"] != b["automation_id"]:
            fields.add_row("automation", safe(a["automation_id"] or "—", CHANGED), safe(b["automation_id"] or "—", CHANGED))
        parts += [Text(""), fields]

    if doc["steps"]:
        steps = FitTable(
            Col(""),
            Col("STEP", "fold", min_width=10, priority=3),
            # Each side: status, attempt and time taken, then branch and error below.
            Col("A", "fold", min_width=14, priority=2),
            Col("B", "fold", min_width=14, priority=2),
            Col("Δ TOOK", justify="right", priority=1),
            title="Steps",
        )
        for row in doc["steps"]:
            changed = row["changed"]
            mark = Text("≠", style="red bold") if changed else Text(" ")
            label = safe(row_label(row), CHANGED if changed else "")
            if "order" in changed:
                label.append(" (moved)", style="dim")
            fa, fb = row["a"], row["b"]
            d = row["duration_delta_ms"]
            steps.add_row(
                mark,
                label,
                _step_cell(fa, changed),
                _step_cell(fb, changed),
                Text(signed_duration(d), style="dim" if not d else ("yellow" if d > 0 else "cyan")),
            )
        parts += [Text(""), steps]
    return Group(*parts)
