"""Crash (os._exit in a process of its own) at every commit point of a run, then resume.

The scenario (crash_scenario.py) goes through every kind of transaction the engine
commits: trigger (with an email and an HTTP step started), HTTP result (503, then a
retry timer; 200), timers (retry, delay, wait timeout), event. The subprocess is
killed just before or just after the Nth commit, for every N; then the scenario is
run again (a client retrying with the same IDs) and everything must end exactly as
without a crash: both runs finished, every message sent once, every completed step
executed once, the webhook always called with the same Idempotency-Key per run.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from pathlib import Path

import crash_scenario as scenario
from engine_helpers import HookServer

# Each scenario runs in a process of its own that really dies (os._exit) at its crash
# point; the processes are forked from a server that has already imported the engine
# and what a run uses, so each costs a fork rather than an interpreter start (~0.5 s
# of CPU, 30 times per test). The fork server exits with this test process.
_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload(["crash_scenario", "autorun_cli.engine.definition", "httpx", "concurrent.futures"])


def _spawn(db: Path, url: str, crash_at: int, record: Path | None = None) -> int:
    args = [str(db), url, str(crash_at)] + ([str(record)] if record else [])
    proc = _FORKS.Process(target=scenario.main, args=(args,))
    proc.start()
    proc.join(60)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
        raise AssertionError(f"the scenario {args} did not end within 60 s")
    return proc.exitcode


def _check(db: Path, server: HookServer, where: str, resends: int = 0) -> None:
    engine = scenario.run(str(db), server.url)  # resume, in this process
    runs = {r["trigger"]["payload"]["order_id"]: engine.get_run(r["id"]) for r in engine.list_runs()}
    assert sorted(runs) == ["A", "B"], where
    for name, run in runs.items():
        assert run["status"] == "completed", (where, name, run["status"], run["logs"])
        sent = [m["step_key"] for m in run["messages"]]
        assert sent == scenario.EXPECTED[name], (where, name, sent)
        completed = [s["key"] for s in run["steps"] if s["status"] == "completed"]
        assert len(completed) == len(set(completed)), (where, name, completed)
        assert [w["status"] for w in run["waits"]] == ["received" if name == "A" else "timed_out"], where
        assert run["lease"] is None
    # Every request counted (never folded into a set): each webhook is sent twice (503,
    # then 200); a crash between a send and its result's commit may add one resend.
    sends = Counter(req["key"] for req in server.requests)
    assert set(sends) == {f"{runs['A']['id']}:webhook", f"{runs['B']['id']}:webhook"}, (where, sends)
    assert all(n >= 2 for n in sends.values()), (where, sends)
    assert sum(n - 2 for n in sends.values()) <= resends, (where, sends)
    assert engine.store.count_timers() == 0
    engine.close()


def test_crash_at_every_commit_point_then_resume(tmp_path: Path) -> None:
    server = HookServer(fail_first=1)
    server.start()
    try:
        record = tmp_path / "labels.txt"
        assert _spawn(tmp_path / "clean.db", server.url, 0, record) == 0
        labels = record.read_text().split("\n")
        kinds = {label.split(":", 1)[1] for label in labels}
        assert {"trigger", "http_result", "timers", "event"} <= kinds
        _check(tmp_path / "clean.db", server, "no crash")
        for n, label in enumerate(labels, start=1):
            server.requests.clear()
            db = tmp_path / f"crash{n}.db"
            assert _spawn(db, server.url, n) == scenario.CRASH_EXIT, f"crash point {n} ({label}) not reached"
            # Only a crash before an HTTP result's commit leaves a sent request unrecorded.
            _check(db, server, f"crash at hook {n}: {label}", resends=1 if label == "before_commit:http_result" else 0)
    finally:
        server.stop()


def test_crash_again_while_recovering(tmp_path: Path) -> None:
    """Killed during an HTTP step, then killed again while taking the run over."""
    server = HookServer(fail_first=1)
    server.start()
    try:
        record = tmp_path / "labels.txt"
        assert _spawn(tmp_path / "clean.db", server.url, 0, record) == 0
        labels = record.read_text().split("\n")
        first = labels.index("before_commit:http_result") + 1
        for second in range(1, 5):
            server.requests.clear()
            db = tmp_path / f"twice{second}.db"
            assert _spawn(db, server.url, first) == scenario.CRASH_EXIT
            assert _spawn(db, server.url, second) == scenario.CRASH_EXIT
            _check(db, server, f"crash at hook {first}, then at hook {second} of the recovery", resends=2)
    finally:
        server.stop()
