"""Replay throughput: N recorded runs, each with a 30-minute wait, replayed in one
process on the virtual clock. Goal: 10,000 runs in ≤ 2 s (≥ 5,000 runs/s).

Half the recorded runs were opened after a random delay inside the 30 minutes, half
timed out; every one is replayed against the matching definition and must match.

    python benchmarks/replay.py [--runs 10000] [--cli]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "tests" / "fixtures" / "seeds" / "sendrealm_run.json"
DEFINITION = ROOT / "tests" / "fixtures" / "replay" / "order_receipt.toml"


def recorded_docs(n: int, seed: int = 7) -> list[dict]:
    """Vendor documents like Sendrealm's example, varied in time, identity and outcome."""
    rng = random.Random(seed)
    base = json.loads(SEED.read_text())["data"]
    t0 = datetime(2026, 6, 8, 14, 15, tzinfo=UTC)
    out = []
    for i in range(n):
        doc = copy.deepcopy(base)
        start = t0 + timedelta(seconds=i * 7)
        email = f"user{i}@example.com"
        doc.update(id=f"run_{i:06d}", resolved_identity_value=email)
        doc["trigger_event"].update(id=f"evt_{i}", occurred_at=start.isoformat())
        wait = doc["waits"][0]
        wait.update(resolved_identity_value=email, timeout_at=(start + timedelta(minutes=30)).isoformat())
        if i % 2 == 0:
            opened = start + timedelta(seconds=rng.randint(5, 29 * 60))
            wait.update(status="received", resumed_at=opened.isoformat(), outcome_branch="received",
                        resumed_by_event={"id": f"evt_open_{i}", "event_name": "sendrealm.mail.open", "occurred_at": opened.isoformat()})
        else:
            wait.update(status="timed_out", resumed_at=None, outcome_branch="timed_out", resumed_by_event=None,
                        timed_out_at=(start + timedelta(minutes=30)).isoformat())
            doc["steps"] = doc["steps"][:2]
            doc["steps"][1].update(branch_taken="timed_out")
            doc["sent_push_notifications"] = []
        doc["steps"][1]["waits"] = [wait]
        out.append(doc)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--cli", action="store_true", help="also time `autorun replay FILE` as a subprocess")
    args = ap.parse_args()

    from autorun_cli.engine import load_definition
    from autorun_cli.replay.runner import paused_gc, replay_runs
    from autorun_cli.replay.source import to_run

    docs = recorded_docs(args.runs)
    t = time.perf_counter()
    with paused_gc():  # as `autorun replay` does while it reads its source
        recorded = [to_run(d, "bench") for d in docs]
    t_map = time.perf_counter() - t
    definition = load_definition(DEFINITION)
    t = time.perf_counter()
    reports = replay_runs(recorded, definition)
    t_replay = time.perf_counter() - t
    matched = sum(r.match for r in reports)
    print(f"replay: {args.runs} recorded runs with a 30-minute wait (half opened, half timed out)")
    print(f"  map vendor documents   {t_map:6.2f} s")
    print(f"  replay + compare       {t_replay:6.2f} s   {args.runs / t_replay:8.0f} runs/s   (goal ≤ 2 s for 10,000)")
    print(f"  in all                 {t_map + t_replay:6.2f} s")
    print(f"  matched                {matched}/{len(reports)}")
    if matched != len(reports):
        first = next(r for r in reports if not r.match)
        print("  first divergence:", first.run_id, first.first_divergence)
    if args.cli:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "runs.ndjson"
            path.write_text("".join(json.dumps({"data": d}) + "\n" for d in docs))
            env = {**os.environ, "AUTORUN_HOME": tmp, "AUTORUN_CONFIG": str(Path(tmp) / "c.toml")}
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "autorun_cli", "replay", str(path), "--definition", str(DEFINITION), "-o", "id"],
                                  env=env, capture_output=True, text=True)
            print(f"  CLI end to end         {time.perf_counter() - t:6.2f} s   exit {proc.returncode}")


if __name__ == "__main__":
    main()
