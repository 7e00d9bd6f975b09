"""The human views at 60, 80 and 120 columns: IDs, event names and URLs stay whole.

At 80 columns (a piped CI log) Rich's tables used to split message IDs over two
lines, cut the waits' OUTCOME mid-word and fold step INFO URLs. Each view is drawn
at each width and every such token must appear whole on one line, and no line may
be wider than the width.
"""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from autorun_cli.cli.app import app
from autorun_cli.model import Run
from autorun_cli.render import run_view, runs_table
from autorun_cli.render.layout import Col, FitTable, wrap_words

WIDTHS = (60, 80, 120)
URL = re.compile(r"https?://\S+?(?=[:\s]|$)")
runner = CliRunner()

# A run with the long values that broke: a 25-character message ID, a wait resumed
# by an event with a long ID, URLs in step info and errors, long event names.
RUN = Run.model_validate(
    {
        "id": "run_1a2342d70193f8fc1fcc27",
        "provider": "local",
        "name": "Invoice webhook with a rather long descriptive name for the accounting team",
        "automation_id": "invoice_webhook",
        "status": "failed",
        "trigger": {"event": "sendrealm.contact.subscribed", "payload": {"id": 1}},
        "started_at": "2026-06-08T14:00:00Z",
        "created_at": "2026-06-08T14:00:00Z",
        "duration_ms": 63000,
        "steps": [
            {"id": "s1", "key": "send_welcome_email", "name": "Send the welcome email", "type": "send_email_template",
             "status": "completed", "started_at": "2026-06-08T14:00:00Z", "duration_ms": 12,
             "info": "email to olivia.longname@example.com: Your receipt for order ord_1001"},
            {"id": "s2", "key": "wait_for_open", "type": "wait_for_event", "status": "completed",
             "started_at": "2026-06-08T14:00:00Z", "duration_ms": 63000, "branch": "received",
             "info": "received sendrealm.mail.open (evt_01HZX3K9Q7R2M8N4P6S5T1V0W)"},
            {"id": "s3", "key": "notify_accounting", "type": "http_request", "status": "failed",
             "started_at": "2026-06-08T14:01:03Z", "duration_ms": 51,
             "info": "POST https://hooks.accounting.example.com/v1/invoices/paid?tenant=acme",
             "error": "POST https://hooks.accounting.example.com/v1/invoices/paid?tenant=acme: ConnectError: refused"},
        ],
        "waits": [
            {"id": "w1", "step_key": "wait_for_open", "event": "sendrealm.mail.open", "status": "received",
             "timeout_at": "2026-06-08T14:30:00Z", "resumed_at": "2026-06-08T14:01:03Z", "branch": "received",
             "resumed_by_event": {"id": "evt_01HZX3K9Q7R2M8N4P6S5T1V0W", "event": "sendrealm.mail.open"}},
        ],
        "messages": [
            {"id": "msg_1a2342d70193f8fc1fcc27", "channel": "email", "step_key": "send_welcome_email",
             "title": "Welcome aboard, we are glad to have you", "status": "sent", "created_at": "2026-06-08T14:00:00Z"},
        ],
        "logs": [
            {"timestamp": "2026-06-08T14:01:03Z", "level": "error", "step_index": 2,
             "message": "step notify_accounting failed: POST https://hooks.accounting.example.com/v1/invoices/paid?tenant=acme"},
        ],
        "error": {"message": "step notify_accounting failed after 3 attempts", "step": "notify_accounting",
                  "detail": "POST https://hooks.accounting.example.com/v1/invoices/paid?tenant=acme: refused"},
    }
)
WHOLE = [
    "run_1a2342d70193f8fc1fcc27",
    "msg_1a2342d70193f8fc1fcc27",
    "evt_01HZX3K9Q7R2M8N4P6S5T1V0W",
    "sendrealm.mail.open",
    "sendrealm.contact.subscribed",
    "https://hooks.accounting.example.com/v1/invoices/paid?tenant=acme",
    "olivia.longname@example.com:",
    "send_welcome_email",
    "notify_accounting",
    "resumed +1m03s",
    "2026-06-08T14:30:00Z",
]


def draw(renderable, width: int) -> list[str]:
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, legacy_windows=False).print(renderable, crop=False)
    return buf.getvalue().splitlines()


def assert_whole(lines: list[str], tokens: list[str], width: int) -> None:
    for token in tokens:
        assert any(token in line for line in lines), f"{token!r} is not whole at {width} columns:\n" + "\n".join(lines)
    # Only a single word longer than the whole width may run past it, alone on its line.
    too_wide = [line for line in lines if cell_len(line) > width and not (len(line.split()) == 1 and line == line.strip())]
    assert not too_wide, f"lines wider than {width}: {too_wide}"


@pytest.mark.parametrize("width", WIDTHS)
def test_show_view_keeps_ids_events_and_urls_whole(width):
    lines = draw(run_view(RUN, "iso"), width)
    assert_whole(lines, WHOLE, width)
    # Nothing is dropped: every word of the folded values is there.
    words = set(" ".join(lines).split())
    for word in "Welcome aboard, we are glad to have you Steps Waits Messages Logs ConnectError: refused Error".split():
        assert word in words, word
    # The error keeps its URL whole too, boxed where the box is wide enough for it.
    error_at = next(i for i, line in enumerate(lines) if line.strip() == "Error" or line.startswith("╭─ Error"))
    assert any("paid?tenant=acme: refused" in line or "paid?tenant=acme:" in line for line in lines[error_at:])
    assert ("╭─ Error" in lines[error_at]) == (width >= 72)


@pytest.mark.parametrize("width", WIDTHS)
def test_list_view_keeps_ids_whole_and_shows_every_name(width):
    lines = draw(runs_table([RUN, RUN.model_copy(update={"id": "run_short", "status": "timed_out"})], "iso"), width)
    assert_whole(lines, ["run_1a2342d70193f8fc1fcc27", "run_short", "✗ failed", "⌛ timed_out", "2026-06-08T14:00:00Z"], width)
    words = " ".join(lines).split()
    for word in "Invoice webhook with a rather long descriptive name for the accounting team".split():
        assert words.count(word) >= 2, word


def test_wide_list_has_one_line_per_run_and_narrow_moves_the_name_under_it():
    wide = draw(runs_table([RUN], "iso"), 200)
    assert len(wide) == 3 and "sendrealm.contact.subscribed" in wide[2]  # header, rule, the run
    narrow = draw(runs_table([RUN], "iso"), 60)
    assert narrow[2].startswith("run_1a2342d70193f8fc1fcc27")
    assert narrow[3].startswith("  Invoice webhook")


def test_a_word_longer_than_the_width_is_printed_whole_not_cut():
    table = FitTable(Col("ID"), Col("URL", "fold"))
    url = "https://example.com/" + "x" * 70
    table.add_row("run_1", "see " + url)
    lines = draw(table, 40)
    assert any(url in line for line in lines), lines


def test_wrap_words_breaks_at_spaces_only():
    from rich.text import Text

    pieces = [p.plain for p in wrap_words(Text("resumed +1m30s by email.opened demo-open-1001 → received"), 16)]
    assert pieces == ["resumed +1m30s", "by email.opened", "demo-open-1001 →", "received"]


# -- through the CLI, on the demo's runs ------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    base = tmp_path_factory.mktemp("widths")
    env = {"AUTORUN_CONFIG": str(base / "config.toml"), "AUTORUN_HOME": str(base / "home")}
    for var in ("AUTORUN_PROVIDER", "AUTORUN_PROFILE", "AUTORUN_OUTPUT", "AUTORUN_BASE_URL"):
        env[var] = ""
    result = runner.invoke(app, ["demo", "-o", "json"], env=env)
    assert result.exit_code == 0, result.stderr
    return env, [r["run"] for r in json.loads(result.stdout)["runs"]]


def _tokens(run: dict) -> list[str]:
    found = [run["id"], *(m["id"] for m in run["messages"]), *(w["event"] for w in run["waits"])]
    found += [s["key"] for s in run["steps"]]
    for step in run["steps"]:
        found += URL.findall(step.get("info") or "")
    if run["trigger"]:
        found.append(run["trigger"]["event"])
    return [t for t in found if t]


@pytest.mark.parametrize("width", WIDTHS)
def test_cli_show_and_list_at_each_width(demo, width):
    env, runs = demo
    env = {**env, "COLUMNS": str(width)}
    for run in runs:
        result = runner.invoke(app, ["show", run["id"], "--time-format", "iso"], env=env)
        assert result.exit_code in (0,), result.stderr
        assert_whole(result.stdout.splitlines(), _tokens(run), width)
    listed = runner.invoke(app, ["list"], env=env)
    assert listed.exit_code == 0, listed.stderr
    assert_whole(listed.stdout.splitlines(), [r["id"] for r in runs], width)


def test_a_run_name_reads_on_one_line_before_the_optional_trigger_is_shown():
    run = RUN.model_copy(update={"name": "Invoice webhook"})
    at_100 = draw(runs_table([run], "iso"), 100)
    assert "TRIGGER" not in at_100[0] and "Invoice webhook" in at_100[2]
    at_120 = draw(runs_table([run], "iso"), 120)
    assert "TRIGGER" in at_120[0] and "Invoice webhook" in at_120[2] and "sendrealm.contact.subscribed" in at_120[2]
