"""The local engine: automations defined in TOML, run durably in-process on SQLite
(or PostgreSQL, shared by many workers).

Layout: :mod:`.core` (``Engine``: triggers, events, retry, cancel) combines the parts
:mod:`.execution` (steps), :mod:`.scheduling` (timers, the worker loop),
:mod:`.delivery` (HTTP requests under a lease), :mod:`.recovery` (take-over of runs
whose worker stopped) and :mod:`.reads` (run documents), over :mod:`.base` (settings,
transactions, definitions). Stores implement the protocol in :mod:`.store`:
:mod:`.sqlite`, :mod:`.memstore`.

It imports nothing from the CLI, rich or typer (httpx only when an ``http_request``
step really sends), so providers, ``replay`` and benchmarks can use it directly.

Quick use::

    from autorun_cli.engine import Engine, VirtualClock

    engine = Engine.open(home)            # <home>/engine.db; home=None → default_home()
    engine.work()                          # due timers/retries + crashed runs (do this on open)
    engine.load("automations/")            # a .toml file, a folder, or parsed Definitions
    ids = engine.trigger("order.completed", {"order_id": "o1", "customer": {"email": "a@b.c"}},
                         event_id="evt_1")  # -> Dispatch (a list of run ids; .duplicate, .event_id)
    engine.send_event("email.opened", {"email": "a@b.c"}, event_id="evt_2")  # resumed run ids
    run = engine.get_run(ids[0])           # dict, shape below

Engine API (every error is an ``autorun_cli.errors.AutorunError``)
-------------------------------------------------------------------
``Engine(store, clock=None, *, sandbox=False, lease_seconds=30.0, owner=None, batch_size=500, crash_hook=None, sandbox_http=None, concurrency=8)``
    ``clock`` defaults to :class:`RealClock`. ``sandbox=True``: ``http_request`` steps
    send nothing and are recorded in the outbox (channel ``http``, status
    ``sandboxed``). ``concurrency``: HTTP requests sent at once (threads that touch
    no store). One Engine per thread; any number of processes per store.
``Engine.open(home=None, **kw)``: SQLite ``<home>/engine.db`` (WAL, synchronous=NORMAL,
    busy_timeout 10 s, ``BEGIN IMMEDIATE`` writes); a bad home is a UsageError (exit 2).
``Engine.memory(clock=None, **kw)``: a :class:`MemoryStore` (plain Python, nothing
    kept, same semantics; what replay should use: ~7,000 three-step runs/s with a
    30-minute wait each on a VirtualClock). ``SQLiteStore(":memory:")`` also works.
``close()``; the engine is also a context manager.
``load(source) -> list[LoadResult(id, version, created, path)]``
    Unchanged definitions store nothing; a changed one becomes version N+1. New runs
    use the latest version, a run keeps the version it started on (``definition_version``).
``definitions(all_versions=False) -> list[dict]``, ``definition(id, version=None) -> dict``
    (id, version, name, trigger, digest, loaded_at, source_path, source TOML, spec,
    identity, steps [{key, type, name}]); ``definition_model(id, version=None) -> Definition``.
``trigger(event, payload=None, *, event_id=None, occurred_at=None, automation=None, identity=None) -> Dispatch``
    One run per automation triggered by ``event`` (or just ``automation``); same
    ``event_id`` again → empty, ``.duplicate`` True. Runs execute as far as they can at
    once. ``identity`` sets the identity value instead of resolving it from the payload.
    An event no automation listens to is not recorded (empty, not a duplicate).
``send_event(event, payload=None, *, event_id=None, identity=None, occurred_at=None) -> Dispatch``
    Resumes matching waits (payload field ``match.field`` equal to the expected
    value, or ``identity=`` for identity-matched waits). Duplicate ``event_id`` → empty.
``work(*, forever=False, settle=0.0, poll=1.0, stop=None) -> WorkStats``
    Fires due timers, retries and timeouts, and takes over runs whose worker died.
    ``settle=S`` also sleeps for timers due within S seconds; ``forever`` is a worker loop.
``next_due() -> datetime | None``  (earliest timer)
``advance(seconds)`` / ``advance_to(when)`` (VirtualClock only): fires every timer at its due time.
``batch()``: context manager, one transaction (one commit) around many operations.
``retry(run_id, *, force=False, from_step=None, by=None) -> run_id``
    Failed, cancelled or timed-out runs resume at the step where they stopped with a
    fresh retry budget; completed steps are not executed again. Others: NotAllowedError
    (exit 4) unless ``force`` (restarts the current step of a waiting/running run);
    completed runs never. Unknown id: NotFoundError (exit 3). ``from_step``: start
    again at that step (one the run reached; else UsageError naming them); the steps
    before keep their results, messages already sent are not sent again (outbox key).
    ``by`` (who asked) is written to the run's log.
``cancel(run_id) -> run_id``: a run that has not ended; otherwise NotAllowedError.
``get_run(run_id) -> dict``; ``list_runs(*, statuses=None, automation=None, since=None, until=None,
ids=None, event_id=None, sort="-created_at", limit=None, offset=0, full=False) -> list[dict]``
    ``sort``: created_at, updated_at, status, name, started_at, finished_at, ``-`` for descending.
``count_runs() -> {status: n}``, ``outbox(run_id=None) -> list[message]``, ``event(event_id) -> dict | None``.

Definitions: see :mod:`autorun_cli.engine.definition` for the TOML format (step types
send_email_template, send_push_template, send_sms, http_request, delay,
wait_for_event, condition, fail; ``retry = {attempts, backoff, factor}`` per step);
``load_definition(path)``, ``load_definitions(file_or_dir)``, ``parse_toml(text)``,
``validate(dict)`` raise UsageError (exit 2) naming the file and ``steps[i].field``.

Replay recipe (issue 4)::

    engine = Engine.memory(VirtualClock(recorded_start), sandbox=True)
    engine.load(definition)                                   # a Definition or a path
    [run_id] = engine.trigger(event, payload, identity=recorded_identity,
                              automation=definition.id, event_id=recorded_trigger_id)
    engine.advance_to(recorded_start + offset)                # timers fire at their due times
    engine.send_event(name, payload, identity=recorded_identity, event_id=recorded_event_id)
    engine.advance_to(end)  # or: while engine.next_due(): engine.advance_to(engine.next_due())
    replayed = engine.get_run(run_id)

Run dict (timestamps ISO 8601 UTC with ``+00:00``; missing values ``None``)::

    id, automation_id, definition_version, name, status, current_step, attempt,
    trigger {event, id, payload, occurred_at}, identity {type, value},
    created_at, updated_at, started_at, finished_at, duration_ms,
    error {message, step, detail} | None
    # get_run / full=True add:
    steps     [{id, key, name, type, index, status, attempt, started_at, finished_at,
                duration_ms, info, error, branch}]          # one entry per attempt
    waits     [{id, step_key, event, status, match {field, equals, value}, created_at,
                timeout_at, resumed_at, timed_out_at, branch,
                resumed_by_event {id, event, occurred_at, payload} | None}]
    messages  [{id, channel (email|push|sms|http), step_key, run_id, to, title, body,
                template, status (sent|sandboxed), created_at, idempotency_key, detail}]
    logs      [{timestamp, level, message, step_key, step_index}]
    lease     {owner, epoch, expires_at} | None             # only while an HTTP step runs
    definition_steps [{key, type, name}]                    # the automation's steps in order

Statuses. Runs: ``running`` (executing, or between retry attempts), ``waiting`` (a
``wait_for_event`` or a ``delay``), ``completed``, ``failed`` (a step failed after its
attempts, a ``fail`` step, or the identity was missing from the payload),
``cancelled``, ``timed_out`` (a wait timed out and the step names no ``on_timeout``;
with ``on_timeout`` the run takes that path and can still complete). Steps (per
attempt): ``running``, ``waiting``, ``completed``, ``failed``, ``timed_out``,
``cancelled``; a wait step that took a branch is ``completed`` with ``branch``
``received``/``timed_out``, a condition's branch is ``true``/``false``. Waits:
``waiting``, ``received``, ``timed_out``, and ``cancelled`` when their run was
cancelled or force-retried.

Guarantees (tests/engine prove them):
* At-least-once execution; a completed step is never executed again on resume: a
  step's completion commits in the same transaction as the run's next cursor.
* Side effects carry ``<run id>:<step key>`` as idempotency key: the outbox is
  unique on it, and ``http_request`` sends it as ``Idempotency-Key`` on every attempt.
* A wait resolves exactly once (conditional ``UPDATE … WHERE status='waiting'`` in a
  ``BEGIN IMMEDIATE`` transaction); after a timeout a matching event resumes nothing;
  an event that arrives once the deadline has passed loses to the timeout even if no
  worker fired it yet.
* Timers are absolute due times: after downtime, overdue ones fire once; a delay
  interrupted by a restart waits only its remainder.
* Several processes may share a store: writes are ``BEGIN IMMEDIATE`` with a busy
  timeout. A run whose HTTP step is queued or in flight holds a lease (owner and
  epoch, the attempt's step row): it is renewed in one conditional statement right
  before the send and every ``lease_seconds / 3`` while held, so a live worker never
  loses it; the result commits only if the release of that very lease succeeds (the
  fence). A dead holder's run (expired lease, or a dead pid on this host) is taken
  over by a conditional statement that a renewal cannot also win.
"""

from typing import TYPE_CHECKING, Any

from autorun_cli.engine.clock import Clock, RealClock, VirtualClock
from autorun_cli.engine.core import Dispatch, Engine, LoadResult, WorkStats, default_home
from autorun_cli.engine.sqlite import SQLiteStore
from autorun_cli.engine.store import Store

if TYPE_CHECKING:
    from autorun_cli.engine.definition import Definition, load_definition, load_definitions, parse_toml, validate
    from autorun_cli.engine.memstore import MemoryStore

# Loaded on first use: reading runs (`autorun show`) needs neither the definition
# models (pydantic) nor the in-memory store, and start-up time matters.
_LAZY = {
    "Definition": "autorun_cli.engine.definition",
    "load_definition": "autorun_cli.engine.definition",
    "load_definitions": "autorun_cli.engine.definition",
    "parse_toml": "autorun_cli.engine.definition",
    "validate": "autorun_cli.engine.definition",
    "MemoryStore": "autorun_cli.engine.memstore",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'autorun_cli.engine' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Clock",
    "Definition",
    "Dispatch",
    "Engine",
    "LoadResult",
    "MemoryStore",
    "RealClock",
    "SQLiteStore",
    "Store",
    "VirtualClock",
    "WorkStats",
    "default_home",
    "load_definition",
    "load_definitions",
    "parse_toml",
    "validate",
]
