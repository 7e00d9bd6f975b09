"""Dynamic shell completion: run IDs, profile names, providers, statuses, automations.

Typer calls these ``autocompletion=`` functions when the shell asks (the completion
scripts set ``_AUTORUN_COMPLETE``). Importing this module costs nothing: every
function imports what it needs when called.

Run IDs come from the API of the current provider, so they are fetched against a
deadline: a completion never keeps the shell waiting longer than ``BUDGET`` seconds.
Answers of an API are cached for ``TTL`` seconds in ``$XDG_CACHE_HOME/autorun/completion.json``;
when the API is slower than the budget, the shell gets the cached IDs (or none) at
once and a detached process refreshes the cache for the next TAB.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

BUDGET = 0.3  # seconds the shell may wait for an answer, start-up of the process included
ANSWER = 0.03  # kept back from the budget to print the answer and exit
MIN_WAIT = 0.05  # the least a fetch is given, however long start-up took
TTL = 60.0  # a cached list of run IDs is used as is for this long
STALE = 24 * 3600.0  # and, when the API is slow or down, up to this old
LIMIT = 30  # recent runs offered
REFRESH_TIMEOUT = 20.0  # the detached refresher gives up after this long

_IMPORTED = time.monotonic()


def process_age() -> float:
    """Seconds since this process started (Linux: /proc), else since this import."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            # Field 22, after the parenthesised command name: start time in clock ticks since boot.
            start_ticks = int(fh.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/uptime", "rb") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


def _remaining() -> float:
    """How long the fetch may take: until ``BUDGET`` after the process started, and,
    when start-up alone used that up (a loaded machine), a last ``MIN_WAIT`` — enough
    for the local store or a server on the same network."""
    return max(BUDGET - ANSWER - process_age(), MIN_WAIT)


# -- static and file-based ------------------------------------------------------------------


def complete_provider(incomplete: str) -> list[str]:
    from autorun_cli.providers import NAMES

    return [n for n in NAMES if n.startswith(incomplete)]


def complete_status(incomplete: str) -> list[str]:
    """``--status failed,ti`` → ``failed,timed_out``: the last of a comma list."""
    from autorun_cli.status import RUN_STATUSES, UNKNOWN

    done, _, last = incomplete.rpartition(",")
    prefix = done + "," if done else ""
    chosen = set(done.split(",")) if done else set()
    return [prefix + s for s in (*RUN_STATUSES, UNKNOWN) if s.startswith(last) and s not in chosen]


def complete_profile(incomplete: str) -> list[str]:
    """Profile names of the config file, read without checking (a broken profile can
    still be named, to show or remove it)."""
    from autorun_cli import config

    loaded = config.read()
    return [name for name in loaded.profiles if isinstance(name, str) and name.startswith(incomplete)]


# -- the current selection ----------------------------------------------------------------


def _settings(ctx: Any) -> Any:
    """The provider settings the command line typed so far selects (its flags, before
    and after the command, over the environment and the profile). Warnings about a
    broken config file are dropped: stderr is the user's shell prompt here."""
    import contextlib
    import io

    from autorun_cli import config
    from autorun_cli.cli.options import COMMON, Opts

    values: dict[str, Any] = {}
    chain = []
    node = ctx
    while node is not None:
        chain.append(node)
        node = node.parent
    for node in reversed(chain):  # root first: the command's own flags win
        for name in COMMON:
            value = (node.params or {}).get(name)
            if value not in (None, False):
                values[name] = value
    with contextlib.redirect_stderr(io.StringIO()):
        return config.resolve(Opts(**values))


def _local_engine(settings: Any) -> Any:
    """The local engine's store, opened only when it exists (a TAB creates nothing:
    no SQLite file, no PostgreSQL schema) and without firing due timers (a TAB sends
    nothing)."""
    from pathlib import Path

    from autorun_cli.engine import Engine

    url = settings.engine_url
    scheme = url.split(":", 1)[0].lower() if url and "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        from autorun_cli.engine.pgstore import PostgresStore

        return Engine(PostgresStore(url, migrate=False, connect_timeout=max(BUDGET, 1.0)))
    if url:
        rest = url.split("://", 1)[1] if scheme else url
        path = Path(rest[1:] if scheme and rest.startswith("/") else rest)
    else:
        path = Path(settings.home) / "engine.db"
    if not path.exists():
        return None
    return Engine.connect(url, home=settings.home)


def _within_budget(work: Callable[[], Any]) -> Any:
    """``work()``, or None when it did not finish within the budget (or failed)."""
    import threading

    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = work()
        except Exception as exc:  # reported as "no answer": the cache may still help
            box["error"] = exc

    # A daemon thread: when the budget runs out the process answers and exits, and the
    # request dies with it.
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(_remaining())
    return box.get("value")


def complete_automation(ctx: Any, incomplete: str) -> list[tuple[str, str]]:
    """Automation IDs of the local engine (``automations show``, ``--automation`` on
    the local provider); nothing for the other providers, whose automations autorun
    cannot list."""
    try:
        settings = _settings(ctx)
    except Exception:  # a completion never prints an error into the shell
        return []
    if settings.provider != "local":
        return []

    def read() -> list[dict[str, Any]]:
        engine = _local_engine(settings)
        if engine is None:
            return []
        try:
            return list(engine.definitions())
        finally:
            engine.close()

    defs = _within_budget(read) or []
    return [(str(d["id"]), str(d.get("name") or d.get("trigger") or "")) for d in defs if str(d["id"]).startswith(incomplete)]


# -- run IDs --------------------------------------------------------------------------------


def _cache_path() -> Any:
    from pathlib import Path

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "autorun" / "completion.json"


def _cache_key(settings: Any) -> str:
    # Which runs a list would show; never the token.
    parts = (settings.provider, settings.base_url, settings.profile, settings.tenant, settings.account, settings.automation)
    return "|".join("" if p is None else str(p) for p in parts)


def _read_cache() -> dict[str, Any]:
    import json

    try:
        doc = json.loads(_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _write_cache(key: str, runs: list[list[str]]) -> None:
    import json
    import tempfile

    path = _cache_path()
    doc = _read_cache()
    now = time.time()
    doc = {k: v for k, v in doc.items() if isinstance(v, dict) and now - float(v.get("at", 0)) < STALE}
    doc[key] = {"at": now, "runs": runs}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".completion.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written is only slower


def fetch_runs(settings: Any) -> list[list[str]]:
    """[id, status, name] of the newest runs of the selection."""
    if settings.provider == "local":
        engine = _local_engine(settings)
        if engine is None:
            return []
        try:
            rows = engine.list_runs(automation=settings.automation, limit=LIMIT)
        finally:
            engine.close()
        return [[str(r["id"]), str(r.get("status") or ""), str(r.get("name") or "")] for r in rows]
    from autorun_cli.listing import list_runs, parse_sort
    from autorun_cli.providers import make_provider
    from autorun_cli.providers.base import ListQuery

    provider = make_provider(settings)
    try:
        query = ListQuery(sort=parse_sort("-created_at"), limit=LIMIT)
        query.automation = settings.automation
        return [[run.id, run.status or "", run.name or ""] for run in list_runs(provider, query)]
    finally:
        provider.close()


def _fetch_within_budget(settings: Any) -> list[list[str]] | None:
    """The runs, or None when the API did not answer within the budget."""
    result: list[list[str]] | None = _within_budget(lambda: fetch_runs(settings))
    return result


def _spawn_refresh(ctx_args: dict[str, Any]) -> None:
    """Fill the cache in a detached process, so the next TAB has the IDs."""
    import json
    import subprocess

    lock = _cache_path().with_suffix(".refreshing")
    try:
        if lock.exists() and time.time() - lock.stat().st_mtime < REFRESH_TIMEOUT:
            return  # one is already at work
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text(str(os.getpid()))
        subprocess.Popen(
            [sys.executable, "-m", "autorun_cli.cli.completing", json.dumps(ctx_args)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )
    except OSError:
        pass


def complete_run_id(ctx: Any, incomplete: str) -> list[tuple[str, str]]:
    """Recent run IDs of the current provider (and ``@latest``), newest first."""
    try:
        settings = _settings(ctx)
    except Exception:
        return []
    if settings.provider == "local":
        # The store is on this machine and quick to read: always fresh, never cached.
        local = _within_budget(lambda: fetch_runs(settings)) or []
        return _candidates(local, incomplete)
    key = _cache_key(settings)
    entry = _read_cache().get(key)
    age = time.time() - float(entry.get("at", 0)) if isinstance(entry, dict) else None
    runs: list[list[str]] | None = None
    if age is not None and age < TTL and isinstance(entry, dict):
        runs = entry.get("runs")
    else:
        runs = _fetch_within_budget(settings)
        if runs is not None:
            _write_cache(key, runs)
        else:
            _spawn_refresh(_selection(settings))
            if age is not None and age < STALE and isinstance(entry, dict):
                runs = entry.get("runs")
    return _candidates(runs or [], incomplete)


def _candidates(runs: list[list[str]], incomplete: str) -> list[tuple[str, str]]:
    out = [("@latest", "the newest run")] if "@latest".startswith(incomplete) else []
    for row in runs:
        if isinstance(row, list) and row and str(row[0]).startswith(incomplete):
            out.append((str(row[0]), " ".join(str(x) for x in row[1:3] if x)))
    return out


def _selection(settings: Any) -> dict[str, Any]:
    return {k: getattr(settings, k) for k in ("provider", "profile", "base_url", "tenant", "account", "automation")}


def _refresh_main(argv: list[str]) -> None:
    """``python -m autorun_cli.cli.completing '{selection}'``: the detached refresher."""
    import json
    import signal

    from autorun_cli import config
    from autorun_cli.cli.options import Opts

    signal.alarm(int(REFRESH_TIMEOUT))  # never lingers on a server that does not answer
    try:
        selection = json.loads(argv[0])
        settings = config.resolve(Opts(**{k: v for k, v in selection.items() if v is not None}))
        _write_cache(_cache_key(settings), fetch_runs(settings))
    except Exception:
        pass
    finally:
        try:
            _cache_path().with_suffix(".refreshing").unlink()
        except OSError:
            pass


if __name__ == "__main__":
    _refresh_main(sys.argv[1:])
