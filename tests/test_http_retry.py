"""The retry policy over real sockets: 429 retried for POST and PATCH too, failures
never repeat a POST, a Retry-After pauses every thread of the client, and a storm of
429s across many concurrent requests does not exhaust the budget."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from apiserver import GENERIC_AUTOMATION, ApiServer, gen_id
from typer.testing import CliRunner

import autorun_cli.http as http_mod
from autorun_cli.cli.app import app
from autorun_cli.http import HttpClient
from autorun_cli.http.retry import MAX_RATE_LIMIT_RETRIES, PauseGate

runner = CliRunner()
SESSIONS = f"/automations/{GENERIC_AUTOMATION}/sessions/"
FAILED_RUN = gen_id("generic", 2)  # generated run 2 is FAILED, run 1 RUNNING (apiserver.STATUSES)
RUNNING_RUN = gen_id("generic", 1)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AUTORUN_PROFILE", "AUTORUN_OUTPUT", "AUTORUN_DEBUG", "AUTORUN_CONCURRENCY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AUTORUN_HOME", str(tmp_path / "home"))


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(http_mod, "sleep", slept.append)
    return slept


@pytest.fixture
def generic(api_server: ApiServer) -> ApiServer:
    api_server.state.generate("generic", 5)
    return api_server


def cli(server: ApiServer, *args: str) -> Any:
    env = server.env("generic", automation=GENERIC_AUTOMATION, COLUMNS="200")
    return runner.invoke(app, list(args), env=env)


def statuses(server: ApiServer, method: str) -> list[int]:
    return [r["status"] for r in server.requests if r["method"] == method]


# -- item 10: POST and PATCH are retried on 429 --------------------------------------


def test_retry_post_is_sent_again_after_429(generic: ApiServer, sleeps: list[float]) -> None:
    generic.faults.rate_limit(times=2, retry_after=3, path=SESSIONS, method="POST")
    result = cli(generic, "retry", FAILED_RUN)
    assert result.exit_code == 0, result.stderr
    new_id = result.stdout.strip()
    assert new_id and new_id != FAILED_RUN
    assert statuses(generic, "POST") == [429, 429, 201]
    assert sleeps == [3.0, 3.0]
    assert f"retried {FAILED_RUN} → {new_id}" in result.stderr


def test_cancel_patch_is_sent_again_after_429(generic: ApiServer, sleeps: list[float]) -> None:
    generic.faults.rate_limit(times=1, retry_after=2, path="/cancel", method="PATCH")
    result = cli(generic, "cancel", RUNNING_RUN, "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert statuses(generic, "PATCH") == [429, 200]
    assert sleeps == [2.0]


def test_post_429_without_retry_after_backs_off_and_succeeds(generic: ApiServer, sleeps: list[float]) -> None:
    generic.faults.rate_limit(times=1, retry_after=None, path=SESSIONS, method="POST")
    result = cli(generic, "retry", FAILED_RUN, "-o", "id")
    assert result.exit_code == 0, result.stderr
    assert statuses(generic, "POST") == [429, 201]
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.5


def test_post_is_never_repeated_after_a_5xx(generic: ApiServer, sleeps: list[float]) -> None:
    generic.faults.error(503, times=1, path=SESSIONS, method="POST")
    result = cli(generic, "retry", FAILED_RUN)
    assert result.exit_code == 5
    assert result.stderr.startswith("error: the service failed")
    assert statuses(generic, "POST") == [503]  # the server may have acted: not sent twice
    assert sleeps == []


def test_post_429_asking_too_long_is_an_error_naming_the_wait(generic: ApiServer, sleeps: list[float]) -> None:
    generic.faults.rate_limit(times=1, retry_after=120, path=SESSIONS, method="POST")
    result = cli(generic, "retry", FAILED_RUN)
    assert result.exit_code == 5
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: rate limited by the API")
    assert lines[1] == "hint: slow down and try again later; it asks to wait 120 s"
    assert statuses(generic, "POST") == [429] and sleeps == []


# -- the budget: rate limits are counted apart from failures ---------------------------


def test_rate_limits_have_their_own_budget(api_server: ApiServer, sleeps: list[float]) -> None:
    # Five 429s in a row outlast the 3 retries meant for failures, not the rate-limit budget.
    api_server.faults.rate_limit(times=5, retry_after=1)
    http = HttpClient(api_server.url, headers={"Authorization": f"Bearer {api_server.token}"})
    assert http.get_json("/automation-runs/run_123")["data"]["id"] == "run_123"
    assert [r["status"] for r in api_server.requests] == [429] * 5 + [200]
    assert sleeps == [1.0] * 5
    http.close()


def test_the_rate_limit_budget_ends(api_server: ApiServer, sleeps: list[float]) -> None:
    from autorun_cli.errors import ServiceError

    api_server.faults.rate_limit(times=None, retry_after=0)
    http = HttpClient(api_server.url, headers={"Authorization": f"Bearer {api_server.token}"})
    with pytest.raises(ServiceError, match=f"rate limited by the API \\(after {MAX_RATE_LIMIT_RETRIES} retries\\)"):
        http.get_json("/automation-runs/run_123")
    assert len(api_server.requests) == MAX_RATE_LIMIT_RETRIES + 1
    http.close()


def test_a_storm_of_429s_across_concurrent_posts_fails_none(generic: ApiServer, sleeps: list[float]) -> None:
    # The bulk case: many POSTs at once while every 4th request is refused with 429.
    generic.faults.rate_limit(times=None, retry_after=0, every=4)
    http = HttpClient(generic.url, headers={"Authorization": f"Bearer {generic.token}"})

    def create(n: int) -> str:
        return http.send_json("POST", SESSIONS, {"inputs": {"n": n}})["id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(create, range(120)))
    http.close()
    assert len(set(created)) == 120
    answered = statuses(generic, "POST")
    assert answered.count(201) == 120 and answered.count(429) == len(answered) // 4
    assert answered.count(429) >= 30


# -- the pause gate: one Retry-After holds every thread of the client -----------------


def test_a_retry_after_seen_by_one_thread_holds_the_others(api_server: ApiServer) -> None:
    # Real sleeps: thread A is told to wait 0.8 s; thread B, starting its request while
    # A waits, must not reach the server before the pause is over.
    api_server.faults.rate_limit(times=1, retry_after="0.8", path="/automation-runs/run_123")
    http = HttpClient(api_server.url, headers={"Authorization": f"Bearer {api_server.token}"})
    a = threading.Thread(target=http.get_json, args=("/automation-runs/run_123",))
    t0 = time.monotonic()
    a.start()
    while http.retry.gate._until == 0.0:  # until A's 429 has closed the gate
        assert time.monotonic() - t0 < 10, "A never got its 429"
        time.sleep(0.005)
    http.get_json("/automation-runs/run_waiting")
    held = time.monotonic() - t0
    a.join()
    http.close()
    assert held >= 0.75, f"B was answered {held:.2f} s after A's 429 asked for 0.8 s"


def test_pause_gate_with_a_patched_sleep_is_slept_once(sleeps: list[float]) -> None:
    gate = PauseGate()
    gate.pause(5.0)
    assert sleeps == [5.0]
    assert gate.wait() == 0.0 and sleeps == [5.0]  # over once its sleeper woke


def test_pause_gate_holds_other_threads_for_the_rest_of_the_pause(sleeps: list[float]) -> None:
    gate = PauseGate()
    started = threading.Event()
    release = threading.Event()

    def long_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        started.set()
        release.wait(5)

    http_mod.sleep = long_sleep  # restored by the fixture's monkeypatch
    pauser = threading.Thread(target=gate.pause, args=(10.0,))
    pauser.start()
    started.wait(5)
    http_mod.sleep = sleeps.append
    waited = gate.wait()  # while the pauser sleeps
    release.set()
    pauser.join()
    assert 9.0 <= waited <= 10.0 + 1.0  # the rest of the pause, plus at most 1 s of jitter
    assert sleeps[0] == 10.0 and sleeps[1] == waited
