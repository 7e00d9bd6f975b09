"""Step execution: a run moves from step to step inside the caller's transaction
until it ends or must wait (a wait, a delay, a retry backoff, an HTTP request)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from autorun_cli.engine.base import EngineBase
from autorun_cli.engine.records import CHANNELS, HttpJob, RunRecord, match_key, short
from autorun_cli.engine.util import MissingVariable, compare, dig, iso, new_id, render, render_any
from autorun_cli.errors import NotFoundError

if TYPE_CHECKING:
    from autorun_cli.engine.definition import Definition


class Execution(EngineBase):
    def _new_run(self, defn: Definition, version: int, event: str, event_id: str, payload: dict,
                 occurred_at: str, now: float, identity: str | None = None) -> RunRecord:
        run = RunRecord()
        run.id = new_id("run", now)
        run.definition_id = defn.id
        run.definition_version = version
        run.name = defn.name
        run.cursor = defn.first
        run.attempt = 0
        run.attempt_floor = 0
        run.trigger_event = event
        run.trigger_event_id = event_id
        run.payload = payload
        run.trigger_payload = None
        run.trigger_occurred_at = occurred_at
        run.identity_type = defn.identity.type
        value = identity if identity is not None else dig(payload, defn.identity.from_)
        run.identity_value = None if value is None else str(value)
        run.last = None
        run.last_event = None
        run.created_at = run.updated_at = run.started_at = now
        run.finished_at = None
        run.error_message = run.error_step = run.error_detail = None
        run.status = "running"
        self._log(run, now, "info", f"started by {event} ({event_id})"
                  + (f" for {run.identity_type} {run.identity_value}" if value is not None else ""), defn, None)
        if value is None:
            run.error_message = f"identity not resolved: the payload has no {defn.identity.from_}"
            run.error_step = None
            run.error_detail = f"automation {defn.id} resolves its {defn.identity.type} identity from {defn.identity.from_}"
            self._finish(run, defn, "failed", now)
        return run

    def _load(self, run_id: str) -> RunRecord | None:
        """The run; inside a write transaction, locked until it ends."""
        row = self.store.lock_run(run_id) if self._depth else self.store.get_run(run_id)
        return RunRecord(row) if row is not None else None

    def _require(self, run_id: str) -> RunRecord:
        run = self._load(run_id)
        if run is None:
            raise NotFoundError(f"no local run {run_id!r}", hint="list local runs with `autorun list`")
        return run

    def _save(self, run: RunRecord) -> None:
        run.updated_at = self.clock.time()
        if run.new:
            self.store.insert_run(run.values())
            run.new = False
        else:
            self.store.update_run(run.values())

    def _log(self, run: RunRecord, now: float, level: str, message: str, defn: Definition | None,
             step_key: str | None) -> None:
        index = defn.index(step_key) if (defn is not None and step_key) else None
        self.store.add_log(run.id, now, level, message, step_key, index)

    def _ctx(self, run: RunRecord) -> dict[str, Any]:
        return {
            "payload": run.payload,
            "identity": {"type": run.identity_type, "value": run.identity_value},
            "event": (run.last or {}).get("payload") or {},
            "run": {"id": run.id, "automation_id": run.definition_id},
            "trigger": {"event": run.trigger_event, "id": run.trigger_event_id},
        }

    def _move(self, run: RunRecord, defn: Definition, step: Any, target: str | None) -> None:
        run.cursor = defn.resolve(step, target)
        run.attempt = 0
        run.attempt_floor = 0

    def _finish(self, run: RunRecord, defn: Definition, status: str, now: float) -> None:
        run.status = status
        run.finished_at = now
        if status == "completed":
            run.cursor = None
        self._log(run, now, "error" if status in ("failed", "timed_out") else "info",
                  f"run {status}" + (f": {run.error_message}" if run.error_message and status != "completed" else ""),
                  defn, run.cursor)

    def _advance(self, run: RunRecord) -> None:
        """Execute steps until the run ends or must wait; then save it."""
        defn = self._def(run.definition_id, run.definition_version)
        store = self.store
        while run.status == "running":
            key = run.cursor
            now = self.clock.time()
            if key is None:
                self._finish(run, defn, "completed", now)
                break
            step = defn.step(key)
            kind = step.type
            run.attempt += 1
            idx = defn.index(key)
            if kind in CHANNELS or kind == "http_request":
                try:
                    if kind == "http_request" and not self.sandbox:
                        self._begin_http(run, defn, step, now, idx)
                        break
                    ok, info, error = self._deliver(run, step, now)
                except MissingVariable as exc:
                    # Retrying cannot bring the value: the step fails, the run with it.
                    error = exc.explain()
                    row = store.insert_step((run.id, key, kind, step.name, idx, run.attempt, "failed", now, now,
                                             None, error, None))
                    self._failed(run, defn, step, now, error, row, retry=False)
                    break
                if ok:
                    store.insert_step((run.id, key, kind, step.name, idx, run.attempt, "completed", now, now,
                                       info, None, None))
                    self._move(run, defn, step, None)
                else:
                    row = store.insert_step((run.id, key, kind, step.name, idx, run.attempt, "failed", now, now,
                                             None, error, None))
                    if self._failed(run, defn, step, now, error or "failed", row):
                        break
            elif kind == "wait_for_event":
                self._begin_wait(run, defn, step, now, idx)
            elif kind == "delay":
                row = store.insert_step((run.id, key, kind, step.name, idx, run.attempt, "waiting", now, None,
                                         f"until {iso(now + step.duration)}", None, None))
                store.add_timer(run.id, "delay", str(row), now + step.duration)
                run.status = "waiting"
            elif kind == "condition":
                actual = dig(self._ctx(run), step.field)
                try:
                    result = compare(actual, step.op, step.value)
                except TypeError:
                    result = False
                branch = "true" if result else "false"
                store.insert_step((run.id, key, kind, step.name, idx, run.attempt, "completed", now, now,
                                   f"{step.field} {step.op} {step.value!r}: {actual!r} → {branch}", None, branch))
                self._move(run, defn, step, step.on_true if result else step.on_false)
            elif kind == "fail":
                message = render(step.message, self._ctx(run))
                row = store.insert_step((run.id, key, kind, step.name, idx, run.attempt, "failed", now, now,
                                         None, message, None))
                if self._failed(run, defn, step, now, message, row):
                    break
        self._save(run)

    def _failed(self, run: RunRecord, defn: Definition, step: Any, now: float, error: str, step_row: int,
                retry: bool = True) -> bool:
        """Schedule a retry (True: stop advancing until it is due) or fail the run."""
        used = run.attempt - run.attempt_floor
        if retry and used < step.retry.attempts:
            due = now + step.retry.delay(used)
            self.store.add_timer(run.id, "retry", step.key, due)
            self._log(run, now, "warning",
                      f"step {step.key} attempt {run.attempt} failed: {error}; retry {used + 1}/{step.retry.attempts}"
                      f" in {short(due - now)}", defn, step.key)
            run.status = "running"  # still running: the retry timer resumes it
            return True
        run.error_message = f"step {step.key} failed" + (f" after {used} attempts" if used > 1 else "") + f": {error}"
        run.error_step = step.key
        run.error_detail = error
        self._finish(run, defn, "failed", now)
        return False

    def _deliver(self, run: RunRecord, step: Any, now: float) -> tuple[bool, str | None, str | None]:
        """Messages (and sandboxed HTTP) go to the outbox, keyed by run and step."""
        ctx = self._ctx(run)
        key = f"{run.id}:{step.key}"
        kind = step.type
        values: tuple[Any, ...]
        if kind == "http_request":
            url = render(step.url, ctx, strict=True)
            body = render_any(step.body, ctx, strict=True)
            headers = render_any(step.headers, ctx, strict=True)
            failure = self.sandbox_http(run.id, step.key, run.attempt - run.attempt_floor) if self.sandbox_http else None
            if failure:
                return False, None, f"sandbox: {step.method} {url}: {failure}"
            values = (new_id("msg", now), key, run.id, step.key, "http", url, f"{step.method} {url}",
                      json.dumps(body) if body is not None else None, None, "sandboxed", now,
                      json.dumps({"headers": headers, "Idempotency-Key": key}))
            info = f"sandbox: {step.method} {url} recorded, not sent"
        else:
            to = render(step.to, ctx, strict=True) if step.to else run.identity_value
            if not to:
                return False, None, f"no recipient: {step.to or 'the run identity'} is empty"
            channel = CHANNELS[kind]
            if kind == "send_sms":
                title, body, template = render(step.text, ctx, strict=True), None, None
            else:
                title = render(step.subject if kind == "send_email_template" else step.title, ctx, strict=True)
                body = render(step.body, ctx, strict=True) if step.body else None
                template = step.template
            values = (new_id("msg", now), key, run.id, step.key, channel, to, title, body, template, "sent", now, None)
            info = f"{channel} to {to}: {title}"
        if not self.store.add_message(values):
            info = f"already delivered (idempotency key {key}); not sent again"
        return True, info, None

    def _begin_wait(self, run: RunRecord, defn: Definition, step: Any, now: float, idx: int) -> None:
        match = step.match
        fld = match.field or defn.identity.from_
        if match.equals == "identity":
            expected = run.identity_value
        else:
            value = dig(self._ctx(run), match.equals)
            expected = None if value is None else match_key(value)
        timeout_at = now + step.timeout if step.timeout is not None else None
        info = f"for {step.event} where {fld} = {expected}" + (
            f", until {iso(timeout_at)}" if timeout_at is not None else "")
        row = self.store.insert_step((run.id, step.key, step.type, step.name, idx, run.attempt, "waiting", now,
                                      None, info, None, None))
        wait_id = new_id("wait", now)
        self.store.insert_wait((wait_id, run.id, row, step.key, step.event, fld, match.equals, expected,
                                "waiting", now, timeout_at))
        if timeout_at is not None:
            self.store.add_timer(run.id, "wait_timeout", wait_id, timeout_at)
        run.status = "waiting"

    def _begin_http(self, run: RunRecord, defn: Definition, step: Any, now: float, idx: int) -> None:
        ctx = self._ctx(run)
        url = render(step.url, ctx, strict=True)  # MissingVariable before anything is stored
        headers = render_any(dict(step.headers), ctx, strict=True)
        body = render_any(step.body, ctx, strict=True)
        row = self.store.insert_step((run.id, step.key, step.type, step.name, idx, run.attempt, "running", now,
                                      None, f"{step.method} {url}", None, None))
        # The attempt's step row is the lease's epoch: unique per attempt, so a late
        # result of an earlier attempt (or of another worker) never matches.
        self.store.set_lease(run.id, self.owner, row, now + self.lease_seconds)
        self._jobs.append(HttpJob(run.id, step.key, row, run.attempt, step.method, url, headers, body, step.timeout))

    def _close_open(self, run: RunRecord, now: float, status: str) -> None:
        for w in self.store.open_waits_for(run.id):
            self.store.resolve_wait(w["id"], status, now, None)
        self.store.delete_timers(run.id)
        self.store.interrupt_steps(run.id, ("waiting", "running"), status, now, None)
        self.store.drop_lease(run.id)
