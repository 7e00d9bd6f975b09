"""`autorun watch` in a real terminal: tmux runs it, capture-pane reads the screen.

The fake provider (tests/fakes.py, through tests/run_fake_cli.py) plays a run that
goes running → waiting → completed. The live view must redraw in place: the final
screen — and the whole scrollback — shows the run once, not a scroll of frames.
These tests wait for the screen to reach a state (with a generous deadline); they
assert what is on it, never how long it took.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from fakes import SCRIPT_ENV, run_doc

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (CI: apt-get install -y tmux)")

HERE = Path(__file__).resolve().parent
DEADLINE = 30.0

RUNNING = run_doc("r1", "running", [("send_email", "running"), ("wait_open", "pending")])
WAITING = run_doc("r1", "waiting", [("send_email", "completed"), ("wait_open", "waiting")],
                  waits=[{"step_key": "wait_open", "event": "mail.open", "status": "waiting", "timeout_at": "2026-06-08T15:00:00Z"}])
COMPLETED = run_doc("r1", "completed", [("send_email", "completed"), ("wait_open", "completed")],
                    waits=[{"step_key": "wait_open", "event": "mail.open", "status": "received",
                            "timeout_at": "2026-06-08T15:00:00Z", "resumed_at": "2026-06-08T14:10:00Z"}])


class Terminal:
    """One tmux server of our own (-L socket), so no user session is touched."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.socket = f"autorun-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.rc = tmp / "rc"

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True).stdout

    def start(self, script: dict, *args: str) -> None:
        path = self.tmp / "script.json"
        path.write_text(json.dumps(script), encoding="utf-8")
        env = {
            SCRIPT_ENV: str(path),
            "AUTORUN_CONFIG": str(self.tmp / "config.toml"),
            "AUTORUN_HOME": str(self.tmp / "home"),
        }
        cli = [sys.executable, str(HERE / "run_fake_cli.py"), *args, "--provider", "fake"]
        unset = " ".join(f"-u {n}" for n in ("AUTORUN_OUTPUT", "AUTORUN_PROFILE", "AUTORUN_PROVIDER", "NO_COLOR", "AUTORUN_DEBUG"))
        command = (
            f"env {unset} {' '.join(f'{k}={shlex.quote(v)}' for k, v in env.items())} "
            f"{' '.join(shlex.quote(a) for a in cli)}; echo $? > {shlex.quote(str(self.rc))}; sleep 600"
        )
        self.tmux("new-session", "-d", "-s", "watch", "-x", "120", "-y", "40", command)

    def screen(self, history: bool = False) -> str:
        args = ["capture-pane", "-p", "-t", "watch"]
        if history:
            args += ["-S", "-"]
        return self.tmux(*args)

    def wait_for(self, predicate, what: str) -> str:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            screen = self.screen()
            if predicate(screen):
                return screen
            time.sleep(0.05)
        pytest.fail(f"the terminal never showed {what}; last screen:\n{self.screen()}")

    def exit_code(self) -> int:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            if self.rc.exists() and self.rc.read_text().strip():
                return int(self.rc.read_text())
            time.sleep(0.05)
        pytest.fail(f"watch did not exit; last screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def term(tmp_path):
    t = Terminal(tmp_path)
    yield t
    t.close()


def test_live_view_redraws_in_place_and_ends_with_the_final_state(term):
    term.start({"runs": {"r1": [RUNNING] * 3 + [WAITING] * 3 + [COMPLETED]}}, "watch", "r1", "--interval", "0.2")
    # While it runs: the live footer under the timeline.
    live = term.wait_for(lambda s: "watching 1 of 1 run" in s, "the live footer")
    assert "Ctrl-C to stop" in live
    assert term.exit_code() == 0
    final = term.screen()
    history = term.screen(history=True)
    assert "✓ completed" in final
    assert "✓ received" in final  # the wait, resumed
    assert "watching" not in final  # the last frame is the final state, no footer
    # Redrawn in place: one header, one timeline, even counting the scrollback.
    for text in (final, history):
        assert text.count("Status") == 1
        assert text.count("send_email") == 1
        assert text.count("Steps") == 1
    # Nothing above the view: it starts on the first line of the screen.
    assert final.splitlines()[0].startswith("Run ")


def test_ctrl_c_stops_cleanly_with_exit_130(term):
    term.start({"runs": {"r1": [RUNNING]}}, "watch", "r1", "--interval", "0.2")
    term.wait_for(lambda s: "watching 1 of 1 run" in s, "the live footer")
    term.tmux("send-keys", "-t", "watch", "C-c")
    assert term.exit_code() == 130
    screen = term.screen(history=True)
    assert "interrupted" in screen
    assert "Traceback" not in screen
    assert screen.count("Status") == 1


def test_timeout_keeps_the_last_frame_and_exits_6(term):
    term.start({"runs": {"r1": [RUNNING]}}, "watch", "r1", "--interval", "0.1", "--timeout", "0.5")
    assert term.exit_code() == 6
    screen = term.screen(history=True)
    assert "error: --timeout 500ms elapsed and r1 is still running" in screen
    assert "hint: keep following with `autorun watch r1`" in screen
    assert screen.count("Status") == 1
