"""Issue 12 item 26: what the user hands replay (and diff, and event payloads) is read
with a bound, and hostile documents are bad input (exit 2), never an internal error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from autorun_cli import inputs
from autorun_cli.cli.app import app

runner = CliRunner()
FIX = Path(__file__).parent / "fixtures"
DEFINITION = str(FIX / "replay" / "order_receipt.toml")
SEED = json.loads((FIX / "seeds" / "sendrealm_run.json").read_text())
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AUTORUN_PROVIDER", "AUTORUN_PROFILE", "AUTORUN_OUTPUT", "AUTORUN_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))


def bad_input(result: Any) -> str:
    """Exit 2, one error line and a hint, no traceback, nothing on stdout."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), result.stderr
    assert "internal error" not in result.stderr and result.stdout == ""
    return lines[0]


def limited(*args: str, stdin: Any = None) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process with 2 GB of address space and a minute: were the
    bound ever lost, reading /dev/zero fails this test instead of the machine."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    return subprocess.run([sys.executable, "-m", "autorun_cli", *args], stdin=stdin, capture_output=True,
                          text=True, timeout=60, preexec_fn=cap)


def test_replay_of_dev_zero_stops_at_64_mb() -> None:
    proc = limited("replay", "/dev/zero", "--definition", DEFINITION)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[0] == "error: /dev/zero holds more than 64 MB, the most autorun reads of recorded runs"


def test_the_limit_is_64_mb() -> None:
    assert inputs.MAX_INPUT == 64 * 1024 * 1024


def test_a_file_just_over_the_limit_is_refused_and_one_at_it_is_read(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs, "MAX_INPUT", 4096)
    doc = json.dumps(SEED)
    at = tmp_path / "at.json"
    at.write_text(doc + " " * (4096 - len(doc.encode())))
    over = tmp_path / "over.json"
    over.write_text(doc + " " * (4097 - len(doc.encode())))
    assert "holds more than" in bad_input(runner.invoke(app, ["replay", str(over), "--definition", DEFINITION]))
    result = runner.invoke(app, ["replay", str(at), "--definition", DEFINITION, "-o", "json"])
    assert result.exit_code in (0, 1), result.stderr  # read and replayed (match or divergence)
    assert json.loads(result.stdout)


def test_endless_stdin_without_a_newline_stops_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs, "MAX_INPUT", 10_000)
    result = runner.invoke(app, ["replay", "-", "--definition", DEFINITION], input="\0" * 50_000)
    assert bad_input(result) == "error: stdin holds more than 64 MB, the most autorun reads of recorded runs"


def test_dev_zero_on_stdin_of_a_real_process_ends_with_exit_2() -> None:
    with open("/dev/zero", "rb") as zero:
        proc = limited("replay", "-", "--definition", DEFINITION, stdin=zero)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: stdin holds more than 64 MB")


@pytest.mark.parametrize("where", ["file", "stdin"])
def test_json_nested_100k_deep_is_bad_input(tmp_path: Path, where: str) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    if where == "file":
        result = runner.invoke(app, ["replay", str(deep), "--definition", DEFINITION])
        message = bad_input(result)
        assert message == f"error: {deep} is not a run document: the JSON is nested more than 128 levels deep"
    else:
        result = runner.invoke(app, ["replay", "-", "--definition", DEFINITION], input=DEEP + "\n")
        assert "stdin line 1 is not a run document: the JSON is nested more than 128 levels deep" in bad_input(result)


def test_diff_of_a_deep_or_endless_document_is_bad_input(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(SEED))
    assert "nested more than 128 levels" in bad_input(runner.invoke(app, ["diff", str(deep), str(seed)]))
    proc = limited("diff", "/dev/zero", str(seed))
    assert proc.returncode == 2 and "holds more than 64 MB" in proc.stderr, proc.stderr


def with_times(start: str, resumed: str | None = None) -> dict[str, Any]:
    doc = json.loads(json.dumps(SEED))
    run = doc["data"]
    run["started_at"] = run["created_at"] = start
    run["trigger_event"]["occurred_at"] = start
    if resumed is not None:
        for wait in run.get("waits") or []:
            if wait.get("resumed_by_event"):
                wait["resumed_by_event"]["occurred_at"] = resumed
    return doc


@pytest.mark.parametrize("start", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_a_run_at_the_edge_of_the_calendar_is_bad_input(tmp_path: Path, start: str) -> None:
    path = tmp_path / "edge.json"
    path.write_text(json.dumps(with_times(start)))
    message = bad_input(runner.invoke(app, ["replay", str(path), "--definition", DEFINITION]))
    assert message == (f"error: run run_123: its start {start} is outside the dates a replay can run on "
                       "(years 1970 to 9000)")


def test_an_event_at_the_edge_of_the_calendar_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "edge.json"
    path.write_text(json.dumps(with_times("2026-06-08T14:00:00Z", resumed="9999-12-31T23:59:59-14:00")))
    message = bad_input(runner.invoke(app, ["replay", str(path), "--definition", DEFINITION]))
    assert "9999-12-31T23:59:59-14:00 is outside the dates a replay can run on" in message


def test_an_event_payload_from_dev_zero_or_nested_deep_is_bad_input(tmp_path: Path) -> None:
    proc = limited("trigger", "order.completed", "--payload", "@/dev/zero")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[0] == (
        "error: payload file /dev/zero holds more than 64 MB, the most autorun reads of a payload")
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    message = bad_input(runner.invoke(app, ["events", "send", "x", "--payload", f"@{deep}", "--provider", "local"]))
    assert "is not valid JSON (the JSON is nested more than 128 levels deep)" in message
