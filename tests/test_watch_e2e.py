"""``watch`` over real HTTP through an outage: 503s, then a server that is gone, then back.

The follower's sleep is where the test changes the world: each poll meets the
server as the script left it. The HTTP layer's own backoff is not slept.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from apiserver import SENDREALM_WAITING_ID, ApiServer
from typer.testing import CliRunner

import autorun_cli.http as http_mod
from autorun_cli.cli import following
from autorun_cli.cli.app import app

runner = CliRunner()
PATH = f"/automation-runs/{SENDREALM_WAITING_ID}"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AUTORUN_PROVIDER", "AUTORUN_BASE_URL", "AUTORUN_TOKEN", "AUTORUN_PROFILE", "AUTORUN_OUTPUT",
                "AUTORUN_AUTOMATION_ID", "AUTORUN_DEBUG", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(http_mod, "sleep", lambda s: None)


def test_watch_survives_503s_and_a_refused_connection_then_sees_the_run_complete(api_server: ApiServer, monkeypatch):
    slept: list[float] = []

    def script(seconds: float) -> None:
        slept.append(seconds)
        step = len(slept)
        if step == 1:
            api_server.faults.error(503, times=None, path=PATH)
        elif step == 2:
            api_server.stop()  # connection refused from now on
        elif step == 3:
            api_server.start()  # the same port again
            api_server.faults.clear()
            api_server.state.materialize("sendrealm", SENDREALM_WAITING_ID)["status"] = "completed"

    monkeypatch.setattr(following, "sleep", script)
    env = api_server.env("sendrealm")
    result = runner.invoke(app, ["watch", SENDREALM_WAITING_ID, "--interval", "1", "--timeout", "60"], env=env)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert slept == [1, 2, 4]  # backoff after each failed poll
    assert result.stdout.splitlines()[-1].endswith(f"{SENDREALM_WAITING_ID} - completed")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2
    assert "polling failed: the service failed" in warnings[0]
    assert warnings[1].startswith("warning: the API answers again, after ")  # real time: a few ms
    assert warnings[1].endswith(" and 2 failed polls")
    answered = [r["status"] for r in api_server.requests if r["path"] == PATH]
    # The first fetch, four 503s (one poll and its HTTP retries), nothing while the
    # server was gone, then the run completed.
    assert answered == [200, 503, 503, 503, 503, 200]
