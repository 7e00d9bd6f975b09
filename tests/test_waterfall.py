"""The waterfall column of `show`'s step timeline: bars on the run's shared time axis,
long waits compressed into a broken bar with their real duration, readable at 80
columns and in the SVG/HTML export."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from autorun_cli.cli.app import app
from autorun_cli.model import Run, Step
from autorun_cli.render import run_view, steps_table
from autorun_cli.render.waterfall import Waterfall

runner = CliRunner()


def _step(key: str, start: str, end: str | None, status: str = "completed", **kw) -> Step:
    return Step(key=key, status=status, started_at=f"2026-06-01T{start}Z", finished_at=f"2026-06-01T{end}Z" if end else None, **kw)


# 5 s, 200 ms, a 30-minute wait, 2 s, 800 ms: the wait would flatten the rest on a linear axis.
MIXED = Run(id="run_wf", provider="local", status="failed", started_at="2026-06-01T10:00:00Z",
            finished_at="2026-06-01T10:30:08Z", duration_ms=1808000, steps=[
                _step("fetch_order", "10:00:00", "10:00:05", duration_ms=5000),
                _step("send_receipt", "10:00:05", "10:00:05.200", duration_ms=200),
                _step("wait_for_open", "10:00:05.200", "10:30:05.200", duration_ms=1800000, branch="timed_out"),
                _step("send_push", "10:30:05.200", "10:30:07.200", duration_ms=2000),
                _step("notify_crm", "10:30:07.200", "10:30:08", "failed", duration_ms=800, error="502 from crm"),
            ])


def _text(renderable, width: int) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    console.print(renderable)
    return console.file.getvalue()


def test_axis_compresses_only_the_long_wait_and_writes_its_duration():
    fall = Waterfall(MIXED)
    assert fall.total == pytest.approx(1808.0)
    assert fall.compressed.count(True) == 1  # the 30-minute stretch, nothing else
    bars = [fall.bar(i, s, 40).plain for i, s in enumerate(MIXED.steps)]
    assert all(len(b) <= 40 for b in bars)
    fetch, send, wait, push, crm = bars
    # The short steps are visible and in order, not flattened to a tick at one place.
    assert fetch.startswith("█") and fetch.count("█") >= 2
    assert send.index("█") >= len(fetch.rstrip()) - 1
    assert "╱ 30m00s ╱" in wait
    assert wait.index("█") <= wait.index("╱") and wait.rstrip().endswith("█")
    assert push.index("█") >= len(wait.rstrip()) - 1
    assert crm.rstrip().endswith("█") and len(crm.rstrip()) >= len(push.rstrip())
    # Linear would give the 5 s step 5/1808 of the axis: less than one cell of 40.
    assert fetch.count("█") >= 3


def test_header_instants_open_steps_and_steps_without_times():
    fall = Waterfall(MIXED)
    assert fall.header(20) == "0" + " " * 13 + "30m08s"
    instant = Run(id="r", provider="x", status="running", started_at="2026-06-01T10:00:00Z", steps=[
        _step("ping", "10:00:00", "10:00:00", duration_ms=0),
        _step("wait", "10:00:00", None, "waiting"),
        Step(key="later", status="pending"),
    ])
    now = datetime(2026, 6, 1, 10, 5, tzinfo=UTC)
    fall = Waterfall(instant, now)
    assert fall.bar(0, instant.steps[0], 20).plain == "▏"
    open_bar = fall.bar(1, instant.steps[1], 20).plain
    assert open_bar.endswith("▶") and len(open_bar) == 20  # waiting until now: to the right edge
    assert fall.bar(2, instant.steps[2], 20).plain == ""
    assert fall.header(20).endswith("5m00s")


def test_no_times_no_column():
    run = Run(id="r", provider="tenant", status="completed", steps=[Step(key="action_1", status="completed")])
    assert not Waterfall(run).drawable
    out = _text(steps_table(run, "iso", None), 80)
    assert "0 " not in out.splitlines()[1]  # header: no axis column


@pytest.mark.parametrize("width", [80, 100, 120])
def test_show_view_fits_the_width_and_keeps_the_bar(width):
    out = _text(run_view(MIXED, "iso"), width)
    lines = out.splitlines()
    assert all(len(line) <= width for line in lines), [line for line in lines if len(line) > width]
    header = next(line for line in lines if line.startswith("#  STEP"))
    assert "30m08s" in header  # the axis: 0 … total
    wait_row = next(line for line in lines if line.startswith("3  wait_for_open"))
    assert "╱" in wait_row and "30m00s" in wait_row  # TOOK, and the broken bar
    for key in ("fetch_order", "send_receipt", "send_push", "notify_crm"):
        assert "█" in next(line for line in lines if key in line and line[0].isdigit())


def test_svg_and_html_exports_carry_the_waterfall(tmp_path):
    from autorun_cli.render.export import export_runs

    svg, html = tmp_path / "run.svg", tmp_path / "run.html"
    export_runs([MIXED], svg=svg, html=html)
    for path in (svg, html):
        text = path.read_text()
        assert "█" in text and "╱" in text and "30m08s" in text
    # The SVG keeps the bar's colour per status (green completed, red failed).
    assert svg.read_text().count("fill") > 10


def test_show_on_the_local_engine_at_80_columns(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))
    for var in ("AUTORUN_PROVIDER", "AUTORUN_BASE_URL", "AUTORUN_PROFILE", "AUTORUN_OUTPUT", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    shipping = str(Path(__file__).resolve().parent / "fixtures" / "local" / "pack" / "shipping.toml")
    assert runner.invoke(app, ["automations", "load", shipping]).exit_code == 0
    started = runner.invoke(app, ["trigger", "order.shipped", "--payload", json.dumps({"customer": {"email": "a@example.com"}, "order_id": "o1"}), "-o", "json"])
    run_id = json.loads(started.stdout)["runs"][0]
    assert runner.invoke(app, ["events", "send", "shipment.acked", "--email", "a@example.com"]).exit_code == 0
    shown = runner.invoke(app, ["show", run_id], env={"COLUMNS": "80"})
    assert shown.exit_code == 0
    lines = shown.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    header = next(line for line in lines if line.startswith("#  STEP"))
    assert re.search(r"  0 +\S+$", header), header  # the axis, INFO under the rows at 80 columns
    rows = {line.split()[1]: line for line in lines if line[:1].isdigit()}
    assert set(rows) == {"send_notice", "wait_for_ack", "send_thanks"}
    assert all(("▏" in row or "█" in row) for row in rows.values())
