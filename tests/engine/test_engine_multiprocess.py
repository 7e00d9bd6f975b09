"""Several autorun processes on one store at once (real SQLite file, real clock)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import multiprocess_scenario
from engine_helpers import HookServer

from autorun_cli.engine import Engine

SCRIPT = str(Path(multiprocess_scenario.__file__).resolve())


def test_two_processes_share_one_store(tmp_path: Path, hook_server: HookServer) -> None:
    db = tmp_path / "engine.db"
    n = 30
    procs = [
        subprocess.Popen([sys.executable, SCRIPT, str(db), hook_server.url, name, str(n)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name in ("alpha", "beta")
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]

    engine = Engine.open(tmp_path)
    runs = engine.list_runs(full=True)
    events = Counter(r["trigger"]["id"] for r in runs)
    # each shared event started exactly one run although both processes sent it
    assert len(runs) == 3 * n and set(events.values()) == {1}
    for run in runs:
        assert run["status"] == "completed", (run["id"], run["logs"])
        assert [m["step_key"] for m in run["messages"]] == ["welcome", "tip"]
        done = [s["key"] for s in run["steps"] if s["status"] == "completed"]
        assert done == ["welcome", "crm", "pause", "tip"]
    keys = Counter(req["key"] for req in hook_server.requests)
    assert len(keys) == 3 * n and set(keys.values()) == {1}  # no process sent another's request
    assert engine.store.count_timers() == 0 and engine.store.leases() == []
