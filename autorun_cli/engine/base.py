"""What every part of the engine shares: its settings, the transaction wrapper and
the definitions it has loaded. The parts (execution, scheduling, delivery,
recovery, reads) are mixins over this base; :class:`~autorun_cli.engine.core.Engine`
combines them."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from autorun_cli.engine.clock import Clock, RealClock
from autorun_cli.engine.records import HttpJob, LoadResult, RunRecord, WorkStats
from autorun_cli.engine.store import Store
from autorun_cli.engine.util import iso
from autorun_cli.errors import NotFoundError

if TYPE_CHECKING:
    # Imported where used: reading runs needs no definition models (start-up time).
    from autorun_cli.engine.definition import Definition

# os.uname, not socket.gethostname: the same name, without importing socket at start-up.
HOST = os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "localhost")


class EngineBase:
    """One engine over one store. Not thread-safe: give each thread its own Engine
    (on the same database), as separate processes would."""

    def __init__(
        self,
        store: Store,
        clock: Clock | None = None,
        *,
        sandbox: bool = False,
        lease_seconds: float = 30.0,
        owner: str | None = None,
        batch_size: int = 500,
        crash_hook: Callable[[str], None] | None = None,
        sandbox_http: Callable[[str, str, int], str | None] | None = None,
        concurrency: int = 8,
    ):
        self.store = store
        self.clock = clock or RealClock()
        self.sandbox = sandbox
        # With sandbox: (run id, step key, attempt) → an error for that HTTP attempt,
        # or None for success. Replay answers with what the recorded run's endpoint did.
        self.sandbox_http = sandbox_http
        self.lease_seconds = lease_seconds
        # HTTP requests in flight at once (each on a thread of a pool); the store is
        # only ever touched from the engine's own thread.
        self.concurrency = max(1, int(concurrency))
        self._pool: Any = None
        self.owner = owner or f"{HOST}:{os.getpid()}:{os.urandom(4).hex()}"
        self.batch_size = batch_size
        # Test hook: called with "before_commit:<label>" / "after_commit:<label>".
        self._hook = crash_hook
        self._defs: dict[tuple[str, int], Definition] = {}
        self._depth = 0
        self._jobs: list[HttpJob] = []  # reached by committed transactions, not sent yet
        self._inflight: dict[Any, HttpJob] = {}  # future of the send -> its job
        # Requests answered, not recorded yet (the worker's next claim records them).
        self._done: list[tuple[HttpJob, tuple[bool, str | None, str | None]]] = []
        self._last_renew = 0.0
        self._http: Any = None
        self._stats = WorkStats()
        self._stopping = False
        self._claims_http = False
        self._claimed = 0  # timers this engine has claimed (popped), ever
        self._last_beat = 0.0
        self._working = False  # inside work(forever=True): heartbeats while draining too
        self._fields: dict[str, list[str]] = {}
        self._fields_count = -1

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._http is not None:
            self._http.close()
            self._http = None
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- transactions -----------------------------------------------------------
    @contextmanager
    def _tx(self, label: str) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.store.begin()
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self.store.rollback()
            self._jobs.clear()
            raise
        self._depth = 0
        try:
            if self._hook:
                self._hook("before_commit:" + label)
            self.store.commit()
        except BaseException:
            self.store.rollback()  # e.g. the disk is full: the transaction never happened
            self._jobs.clear()
            raise
        if self._hook:
            self._hook("after_commit:" + label)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group several operations into one transaction (one commit).

        HTTP requests that the batch reaches are sent after the commit."""
        with self._tx("batch"):
            yield
        self._drain()

    # -- definitions ------------------------------------------------------------
    def load(self, source: str | Path | Definition | Iterable[Definition]) -> list[LoadResult]:
        """Store definitions (a file, a folder, or parsed ones). Loading an unchanged
        definition again stores nothing; a changed one becomes a new version, which
        new runs use while existing runs keep the version they started on."""
        from autorun_cli.engine.definition import Definition, load_definitions

        if isinstance(source, (str, Path)):
            defs = load_definitions(source)
        elif isinstance(source, Definition):
            defs = [source]
        else:
            defs = list(source)
        out = []
        with self._tx("load"):
            now = self.clock.time()
            for d in defs:
                digest = d.digest()
                latest = self.store.latest_definition(d.id)
                if latest is not None and latest["digest"] == digest:
                    out.append(LoadResult(d.id, latest["version"], False, d.source_path))
                    continue
                version = (latest["version"] + 1) if latest else 1
                source_text = None
                if d.source_path:
                    try:
                        source_text = Path(d.source_path).read_text(encoding="utf-8")
                    except OSError:
                        source_text = None
                self.store.insert_definition({
                    "id": d.id, "version": version, "name": d.name, "trigger_event": d.trigger,
                    "digest": digest, "spec": json.dumps(d.spec()), "source": source_text,
                    "source_path": d.source_path, "loaded_at": now,
                })
                self._defs[(d.id, version)] = d
                out.append(LoadResult(d.id, version, True, d.source_path))
        return out

    def definitions(self, all_versions: bool = False) -> list[dict[str, Any]]:
        """Stored automations (latest version of each unless ``all_versions``)."""
        return [self._definition_dict(r) for r in self.store.list_definitions(all_versions)]

    def definition(self, def_id: str, version: int | None = None) -> dict[str, Any]:
        row = (self.store.get_definition(def_id, version) if version is not None
               else self.store.latest_definition(def_id))
        if row is None:
            known = ", ".join(r["id"] for r in self.store.list_definitions()) or "none loaded"
            raise NotFoundError(
                f"no automation {def_id!r}" + (f" version {version}" if version is not None else ""),
                hint=f"known automations: {known}; load one with `autorun automations load FILE`",
            )
        return self._definition_dict(row)

    def definition_model(self, def_id: str, version: int | None = None) -> Definition:
        d = self.definition(def_id, version)
        return self._def(d["id"], d["version"])

    def _definition_dict(self, row: dict) -> dict[str, Any]:
        spec = json.loads(row["spec"])
        return {
            "id": row["id"], "version": row["version"], "name": row["name"],
            "trigger": row["trigger_event"], "digest": row["digest"], "loaded_at": iso(row["loaded_at"]),
            "source_path": row["source_path"], "source": row["source"], "spec": spec,
            "identity": spec.get("identity"),
            "steps": [{"key": s["key"], "type": s["type"], "name": s.get("name")} for s in spec["steps"]],
        }

    def _wait_fields(self, event: str) -> list[str]:
        """Payload fields that waits on ``event`` match on, from every stored
        definition version (so a lookup never scans the open waits)."""
        count = self.store.definition_count()
        if count != self._fields_count:
            fields: dict[str, set[str]] = {}
            for row in self.store.list_definitions(all_versions=True):
                d = self._def(row["id"], row["version"])
                for st in d.steps:
                    if st.type == "wait_for_event":
                        fields.setdefault(st.event, set()).add(st.match.field or d.identity.from_)
            self._fields = {k: sorted(v) for k, v in fields.items()}
            self._fields_count = count
        return self._fields.get(event, [])

    def _def(self, def_id: str, version: int) -> Definition:
        d = self._defs.get((def_id, version))
        if d is None:
            row = self.store.get_definition(def_id, version)
            if row is None:
                raise NotFoundError(f"automation {def_id!r} version {version} is not in the store",
                                    hint="load it again with `autorun automations load FILE`")
            from autorun_cli.engine.definition import from_spec

            d = from_spec(json.loads(row["spec"]))
            self._defs[(def_id, version)] = d
        return d

    # -- what the parts call on each other (defined in their mixins) -------------
    if TYPE_CHECKING:
        def _drain(self) -> None: ...
        def _pump(self, wait_s: float, record: bool = True) -> None: ...
        def _record_locked(self, results: list[tuple[HttpJob, tuple[bool, str | None, str | None]]]) -> None: ...
        def _advance(self, run: RunRecord) -> None: ...
        def _load(self, run_id: str) -> RunRecord | None: ...
        def _require(self, run_id: str) -> RunRecord: ...
        def _save(self, run: RunRecord) -> None: ...
        def _log(self, run: RunRecord, now: float, level: str, message: str, defn: Definition | None,
                 step_key: str | None) -> None: ...
        def _move(self, run: RunRecord, defn: Definition, step: Any, target: str | None) -> None: ...
        def _finish(self, run: RunRecord, defn: Definition, status: str, now: float) -> None: ...
        def _failed(self, run: RunRecord, defn: Definition, step: Any, now: float, error: str,
                    step_row: int, retry: bool = True) -> bool: ...
        def _close_open(self, run: RunRecord, now: float, status: str) -> None: ...
        def _fire_wait_timeout(self, wait_id: str, now: float, timed_out: dict[str, dict] | None = None) -> bool: ...
        def _recover(self) -> int: ...
        def _soonest_lease_expiry(self) -> float | None: ...
        def _process_due(self) -> int: ...
        def _beat(self, force: bool = False) -> None: ...
