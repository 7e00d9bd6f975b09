"""Start-up cost: `autorun --help` and `autorun show ID -o json` (local) against a
hello-world Typer app, measured in one run, printed as ratios. Goal ≤ 1.1×.

    python benchmarks/startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HELLO = '''
import typer
app = typer.Typer()

@app.command()
def show(run_id: str, output: str = "table"):
    """Show a run."""
    print("{}")

@app.command()
def other():
    """Another command, so Typer builds a group like autorun's."""

if __name__ == "__main__":
    app()
'''


def _once(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"{cmd} failed: {proc.stderr.decode()[-500:]}")
    return elapsed


def paired(a: list[str], b: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """Median times of ``a`` and ``b``, run alternately so drift in machine load hits both."""
    sa, sb = [], []
    for _ in range(runs):
        sa.append(_once(a, env))
        sb.append(_once(b, env))
    return statistics.median(sa), statistics.median(sb)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        hello = Path(tmp) / "hello.py"
        hello.write_text(HELLO)
        env = {**os.environ, "AUTORUN_HOME": str(Path(tmp) / "home"), "AUTORUN_CONFIG": str(Path(tmp) / "c.toml")}
        env.pop("AUTORUN_PROVIDER", None)
        # Measure what an installed user runs: pip compiles bytecode at install time,
        # so both apps start from .pyc files (some sandboxes set PYTHONDONTWRITEBYTECODE,
        # which would make only the editable-installed autorun recompile every run).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        import autorun_cli

        subprocess.run([py, "-m", "compileall", "-q", str(Path(autorun_cli.__file__).parent), str(hello)], env=env, check=True)
        # A real local run to show: the demo makes some.
        subprocess.run([py, "-m", "autorun_cli", "demo"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ids = subprocess.run([py, "-m", "autorun_cli", "list", "-o", "id", "-n", "1"], env=env, capture_output=True, text=True).stdout.split()
        run_id = ids[0] if ids else None
        hello_help, auto_help = [py, str(hello), "--help"], [py, "-m", "autorun_cli", "--help"]
        paired(hello_help, auto_help, env, 3)  # warm the page cache
        h_help, a_help = paired(hello_help, auto_help, env, args.runs)
        print(f"median of {args.runs} runs each, alternating (python {sys.version.split()[0]})")
        print(f"--help        hello-world {h_help*1000:7.1f} ms   autorun {a_help*1000:7.1f} ms   ratio {a_help/h_help:.2f}x")
        if run_id:
            h_show, a_show = paired(
                [py, str(hello), "show", "x", "--output", "json"], [py, "-m", "autorun_cli", "show", run_id, "-o", "json"], env, args.runs
            )
            print(f"show -o json  hello-world {h_show*1000:7.1f} ms   autorun {a_show*1000:7.1f} ms   ratio {a_show/h_show:.2f}x")
        else:
            print("show -o json  skipped: `autorun demo` made no local run to show")
        mods = subprocess.run(
            [py, "-X", "importtime", "-m", "autorun_cli", "--help"], env=env, capture_output=True, text=True
        ).stderr
        heavy = sorted({line.split("|")[-1].strip().split(".")[0] for line in mods.splitlines() if "|" in line} & {"httpx", "pydantic", "rich", "sqlite3", "autorun_cli"})
        print("top-level packages imported by --help:", ", ".join(heavy))


if __name__ == "__main__":
    main()
