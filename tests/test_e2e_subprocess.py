"""End-to-end in a real process: ``python -m autorun_cli`` against the test API server.

The in-process tests (test_e2e_cli.py) cover the behaviour; these few check that a real
interpreter start — real stdout/stderr pipes, real exit status, real sleeps — gives
the same exit codes with no traceback and no token in anything the process printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from apiserver import TENANT_SEED_ID, ApiServer

BAD_TOKEN = "wrong-token-subprocess-3f8e"


def autorun(server: ApiServer, tmp_path: Path, provider: str, *args: str, token: str | None = None,
            automation: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTORUN_") and k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update(server.env(provider, token=token, automation=automation))
    env.update(AUTORUN_CONFIG=str(tmp_path / "config.toml"), AUTORUN_HOME=str(tmp_path / "home"), COLUMNS="250")
    return subprocess.run([sys.executable, "-m", "autorun_cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def assert_clean(proc: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for stream in (proc.stdout, proc.stderr):
        assert "Traceback" not in stream
        for secret in secrets:
            assert secret not in stream


def error_lines(proc: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    lines = proc.stderr.splitlines()
    errors = [ln for ln in lines if ln.startswith("error: ")]
    hints = [ln for ln in lines if ln.startswith("hint: ")]
    assert len(errors) == 1 and len(hints) == 1, proc.stderr
    return errors[0], hints[0]


def test_show_succeeds_in_a_real_process(api_server: ApiServer, tmp_path: Path) -> None:
    proc = autorun(api_server, tmp_path, "sendrealm", "show", "run_123", "-o", "json", "-v")
    assert proc.returncode == 0, proc.stderr
    assert_clean(proc, api_server.token)
    run = json.loads(proc.stdout)
    assert run["id"] == "run_123" and run["duration_ms"] == 91000
    assert run["waits"][0]["status"] == "received"
    assert f"> GET {api_server.url}/automation-runs/run_123" in proc.stderr  # -v request log
    assert [r["headers"]["user-agent"].split("/")[0] for r in api_server.requests] == ["autorun"]


def test_show_table_in_a_real_process_has_no_escape_codes(api_server: ApiServer, tmp_path: Path) -> None:
    proc = autorun(api_server, tmp_path, "tenant", "show", TENANT_SEED_ID)
    assert proc.returncode == 0, proc.stderr
    assert_clean(proc, api_server.token)
    assert "SMTP connection refused" in proc.stdout
    assert "\x1b" not in proc.stdout  # a pipe, not a terminal
    assert proc.stderr == ""


def test_auth_failure_in_a_real_process(api_server: ApiServer, tmp_path: Path) -> None:
    proc = autorun(api_server, tmp_path, "tenant", "list", "-v", "-o", "json", token=BAD_TOKEN)
    assert proc.returncode == 4, proc.stderr
    assert_clean(proc, api_server.token, BAD_TOKEN)
    error, hint = error_lines(proc)
    assert error.startswith("error: authentication refused: Invalid API key")
    assert "AUTORUN_TOKEN" in hint
    assert json.loads(proc.stdout)["error"]["code"] == "unauthorized"


def test_persistent_503_in_a_real_process(api_server: ApiServer, tmp_path: Path) -> None:
    # The one test with real backoff sleeps (jittered, at most 0.5 + 1 + 2 s).
    api_server.faults.error(503)
    proc = autorun(api_server, tmp_path, "plannr", "list")
    assert proc.returncode == 5, proc.stderr
    assert_clean(proc, api_server.token)
    error, _ = error_lines(proc)
    assert "after 3 retries" in error
    assert [r["status"] for r in api_server.requests] == [503] * 4
    assert proc.stdout == ""


def test_html_page_in_a_real_process(api_server: ApiServer, tmp_path: Path) -> None:
    # A login page answering 200 (a wrong base URL): not retried, so no sleeps.
    api_server.faults.html(200)
    proc = autorun(api_server, tmp_path, "generic", "list", automation="3c90c3cc-0d44-4b50-8888-8dd25736052a")
    assert proc.returncode == 5, proc.stderr
    assert_clean(proc, api_server.token)
    error, hint = error_lines(proc)
    assert "HTML page" in error
    assert "base URL" in hint
