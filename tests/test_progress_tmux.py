"""Progress bars in a real terminal (tmux), and never a byte of them anywhere else.

The CLI runs in tmux against the loopback test server with added latency, so the
work lasts long enough for the bar to appear (it waits 0.3 s). The bar is on stderr,
only when stderr is a terminal, and transient: once the command ends, neither the
screen nor the scrollback holds it. Piped stdout (or stderr) gets none of it.
These tests wait for a screen state (generous deadline); they never time anything.
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
from apiserver import SENDREALM_AUTOMATION, ApiServer, gen_id

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (CI: apt-get install -y tmux)")

DEADLINE = 30.0
N = 40
DEFINITION = Path(__file__).resolve().parent / "fixtures" / "replay" / "order_receipt.toml"


class Terminal:
    """One tmux server of our own (-L socket), so no user session is touched."""

    def __init__(self, tmp: Path, env: dict[str, str]):
        self.tmp = tmp
        self.env = env
        self.socket = f"autorun-progress-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.rc = tmp / "rc"

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True).stdout

    def start(self, args: list[str], redirect: str = "") -> None:
        cli = [sys.executable, "-m", "autorun_cli", *args]
        unset = " ".join(f"-u {n}" for n in ("AUTORUN_OUTPUT", "AUTORUN_PROFILE", "NO_COLOR", "AUTORUN_DEBUG", "AUTORUN_CONCURRENCY"))
        command = (
            f"cd {shlex.quote(str(self.tmp))}; env {unset} {' '.join(f'{k}={shlex.quote(v)}' for k, v in self.env.items())} "
            f"{' '.join(shlex.quote(a) for a in cli)} {redirect}; echo $? > {shlex.quote(str(self.rc))}; sleep 600"
        )
        self.tmux("new-session", "-d", "-s", "p", "-x", "120", "-y", "50", command)

    def screen(self, history: bool = False) -> str:
        return self.tmux("capture-pane", "-p", "-t", "p", *(["-S", "-"] if history else []))

    def wait_for(self, predicate, what: str) -> str:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            screen = self.screen()
            if predicate(screen):
                return screen
            time.sleep(0.03)
        pytest.fail(f"the terminal never showed {what}; last screen:\n{self.screen()}")

    def exit_code(self) -> int:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            if self.rc.exists() and self.rc.read_text().strip():
                return int(self.rc.read_text())
            time.sleep(0.05)
        pytest.fail(f"the command did not exit; last screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def slow_server():
    """sendrealm runs behind 150 ms of latency per request."""
    server = ApiServer(latency_ms=150, seeds=False)
    server.state.generate("sendrealm", N)
    server.start()
    yield server
    server.stop()


def _env(server: ApiServer, tmp: Path) -> dict[str, str]:
    return {**server.env("sendrealm", automation=SENDREALM_AUTOMATION), "AUTORUN_CONFIG": str(tmp / "config.toml"),
            "AUTORUN_HOME": str(tmp / "home"), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}


@pytest.fixture
def term(tmp_path, slow_server):
    t = Terminal(tmp_path, _env(slow_server, tmp_path))
    yield t
    t.close()


def test_stats_shows_a_bar_while_reading_and_leaves_only_the_dashboard(term):
    # Two at a time: about 20 rounds of 150 ms, long enough to see the bar.
    term.env["AUTORUN_CONCURRENCY"] = "2"
    term.start(["stats", "--all"])
    # Runs so far and pages, e.g. "⠋ reading runs 12 runs · 1 page 0:00:01".
    during = term.wait_for(lambda s: "reading runs" in s and " page" in s, "the progress line with the pages read")
    line = next(x for x in during.splitlines() if "reading runs" in x)
    assert line.split("reading runs", 1)[1].split()[1] == "runs"
    assert term.exit_code() == 0
    final, history = term.screen(), term.screen(history=True)
    assert f"{N} runs" in final and "Steps" in final and "Waits" in final
    # Transient: gone from the screen and from the scrollback.
    assert "reading runs" not in history


def test_list_all_piped_to_a_file_shows_progress_on_the_terminal_and_none_in_the_file(term, tmp_path, slow_server):
    slow_server.state.generate("sendrealm", 560)  # 600 runs: six cursor pages of 100, 150 ms each
    term.start(["list", "--all", "-o", "ndjson"], redirect="> out.ndjson")
    term.wait_for(lambda s: "listing runs" in s and " page" in s, "the progress line with the pages read")
    assert term.exit_code() == 0
    data = (tmp_path / "out.ndjson").read_bytes()
    assert b"\x1b" not in data and b"listing runs" not in data
    lines = data.decode().splitlines()
    assert len(lines) == 600 and all(json.loads(line)["id"].startswith("run_g") for line in lines)
    assert "listing runs" not in term.screen(history=True)


def test_show_of_many_ids_with_stderr_to_a_file_has_no_progress_bytes(term, tmp_path):
    term.env["AUTORUN_CONCURRENCY"] = "2"
    ids = [gen_id("sendrealm", i) for i in range(20)]  # 10 rounds of 150 ms: a bar would show
    term.start(["show", *ids, "-o", "json"], redirect="2> err.txt > out.json")
    assert term.exit_code() == 0
    assert (tmp_path / "err.txt").read_bytes() == b""
    assert [r["id"] for r in json.loads((tmp_path / "out.json").read_text())] == ids


def test_show_of_many_ids_on_a_terminal_shows_the_count(term):
    term.env["AUTORUN_CONCURRENCY"] = "2"
    ids = [gen_id("sendrealm", i) for i in range(20)]
    term.start(["show", *ids, "-o", "id"], redirect="> /dev/null")
    during = term.wait_for(lambda s: "reading runs" in s, "the progress line")
    assert "/20" in during  # done/total
    assert term.exit_code() == 0


def _listed_history(server: ApiServer, tmp: Path) -> Path:
    """`list --all -o ndjson` of the server's runs: summaries, which replay reads in full."""
    env = {**os.environ, **_env(server, tmp)}
    done = subprocess.run([sys.executable, "-m", "autorun_cli", "list", "--all", "-o", "ndjson"], env=env,
                          capture_output=True, timeout=60, check=True)
    path = tmp / "runs.ndjson"
    path.write_bytes(done.stdout)
    return path


def test_replay_of_a_listed_history_counts_the_runs_it_reads_in_full(term, tmp_path, slow_server):
    history = _listed_history(slow_server, tmp_path)
    term.env["AUTORUN_CONCURRENCY"] = "2"  # 20 rounds of 150 ms before anything is replayed
    term.start(["replay", str(history), "-d", str(DEFINITION), "-o", "json"], redirect="> out.json")
    during = term.wait_for(lambda s: "reading runs" in s and f"/{N}" in s, "the count of runs read in full")
    assert "replaying runs" not in during
    assert term.exit_code() in (0, 1)  # 1: some generated runs diverge from the definition
    assert json.loads((tmp_path / "out.json").read_text())["summary"]["replayed"] == N
    assert "reading runs" not in term.screen(history=True)


def test_pipes_get_no_progress_at_all(slow_server, tmp_path):
    """No terminal anywhere (CI): stderr is empty, stdout is only data."""
    env = {**os.environ, **_env(slow_server, tmp_path), "AUTORUN_CONCURRENCY": "4"}
    for args in (["stats", "--all"], ["list", "--all"], ["show", *[gen_id("sendrealm", i) for i in range(12)], "-o", "json"]):
        done = subprocess.run([sys.executable, "-m", "autorun_cli", *args], env=env, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stderr == b"", (args, done.stderr)
        assert b"\x1b" not in done.stdout and b"reading runs" not in done.stdout and b"listing runs" not in done.stdout
    # replay of a listed history (read in full, then replayed): its notes on stderr, no bar anywhere.
    history = _listed_history(slow_server, tmp_path)
    done = subprocess.run([sys.executable, "-m", "autorun_cli", "replay", str(history), "-d", str(DEFINITION), "-o", "json"],
                          env=env, capture_output=True, timeout=60)
    assert done.returncode in (0, 1), done.stderr
    assert json.loads(done.stdout)["summary"]["replayed"] == N
    for stream in (done.stdout, done.stderr):
        assert b"\x1b" not in stream and b"reading runs" not in stream and b"replaying runs" not in stream
