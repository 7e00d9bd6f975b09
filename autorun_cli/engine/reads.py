"""Read projections: store rows → the run, step, wait and message dicts the engine
returns (the shape is in the package docstring). Nothing here writes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from autorun_cli.engine.base import EngineBase
from autorun_cli.engine.clock import _to_epoch
from autorun_cli.engine.records import TERMINAL
from autorun_cli.engine.util import iso
from autorun_cli.errors import NotFoundError


class Reads(EngineBase):
    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run in full (see the package docstring for the shape). NotFoundError (exit 3)."""
        row = self.store.get_run(run_id)
        if row is None:
            raise NotFoundError(f"no local run {run_id!r}", hint="list local runs with `autorun list`")
        return self._run_dict(row, full=True)

    def list_runs(self, *, statuses: Iterable[str] | None = None, automation: str | None = None,
                  since: datetime | float | str | None = None, until: datetime | float | str | None = None,
                  ids: Iterable[str] | None = None, event_id: str | None = None, sort: str = "-created_at",
                  limit: int | None = None, offset: int = 0, full: bool = False) -> list[dict[str, Any]]:
        """Runs, newest first by default; ``sort`` is created_at, updated_at, status,
        name, started_at or finished_at with an optional leading ``-``. ``full`` adds
        steps, waits, messages and logs to every run."""
        rows = self.store.query_runs(
            statuses=list(statuses) if statuses else None, automation=automation,
            since=_to_epoch(since) if since is not None else None,
            until=_to_epoch(until) if until is not None else None,
            ids=list(ids) if ids else None, event_id=event_id, sort=sort, limit=limit, offset=offset,
        )
        if not full or len(rows) <= 1:
            return [self._run_dict(r, full=full) for r in rows]
        # A page in full: one statement per table for the whole page, not per run.
        ids = [r["id"] for r in rows]
        pages: dict[str, dict[str, list[dict]]] = {}
        for table in ("steps", "waits", "outbox", "logs", "leases"):
            by_run: dict[str, list[dict]] = {}
            for child in self.store.rows_for_runs(table, ids):
                by_run.setdefault(child["run_id"], []).append(child)
            pages[table] = by_run
        return [self._run_dict(r, full=True, page=pages) for r in rows]

    def status(self, live_within: float = 15.0) -> dict[str, Any]:
        """What ``autorun engine status`` prints: the store (no password), the workers
        seen within ``live_within`` seconds, runs by status, timers due now, and HTTP
        deliveries pending (leased: queued or in flight on some worker)."""
        now = self.clock.time()
        return {
            "store": self.store.describe(),
            "workers": [{"id": w["id"], "host": w["host"], "pid": w["pid"], "last_seen": iso(w["last_seen"])}
                        for w in self.store.workers(now - live_within)],
            "runs": dict(sorted(self.store.count_runs().items())),
            "due_timers": self.store.count_timers(due_by=now),
            "pending_deliveries": len(self.store.leases()),
        }

    def count_runs(self) -> dict[str, int]:
        """Number of runs per status."""
        return self.store.count_runs()

    def outbox(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Messages the engine delivered (every run's, or one run's), oldest first."""
        return [_message_dict(m) for m in self.store.messages(run_id)]

    def event(self, event_id: str) -> dict[str, Any] | None:
        """A recorded inbound event (trigger or event) and the runs it started/resumed."""
        row = self.store.get_event(event_id)
        if row is None:
            return None
        return {
            "id": row["id"], "kind": row["kind"], "event": row["name"],
            "payload": json.loads(row["payload"]) if row["payload"] else {},
            "identity": row["identity"], "occurred_at": row["occurred_at"], "received_at": iso(row["received_at"]),
            "run_ids": json.loads(row["run_ids"]) if row["run_ids"] else [],
        }

    def _run_dict(self, row: dict, *, full: bool, page: dict[str, dict[str, list[dict]]] | None = None) -> dict[str, Any]:
        """``page``: the children of a page of runs read at once (list_runs), by table and run."""
        status = row["status"]
        start, end = row["started_at"], row["finished_at"]
        out: dict[str, Any] = {
            "id": row["id"],
            "automation_id": row["definition_id"],
            "definition_version": row["definition_version"],
            "name": row["name"],
            "status": status,
            "current_step": None if status in TERMINAL else row["cursor"],
            "attempt": row["attempt"],
            "trigger": {
                "event": row["trigger_event"], "id": row["trigger_event_id"],
                "payload": json.loads(row["trigger_payload"]) if row["trigger_payload"] else {},
                "occurred_at": row["trigger_occurred_at"],
            },
            "identity": {"type": row["identity_type"], "value": row["identity_value"]},
            "created_at": iso(row["created_at"]),
            "updated_at": iso(row["updated_at"]),
            "started_at": iso(start),
            "finished_at": iso(end),
            "duration_ms": int(round((end - start) * 1000)) if start is not None and end is not None else None,
            "error": ({"message": row["error_message"], "step": row["error_step"], "detail": row["error_detail"]}
                      if row["error_message"] else None),
        }
        if not full:
            return out
        run_id = row["id"]
        if page is None:
            steps, waits = self.store.steps_for(run_id), self.store.waits_for(run_id)
            messages, logs, lease = self.store.messages(run_id), self.store.logs_for(run_id), self.store.get_lease(run_id)
        else:
            steps, waits = page["steps"].get(run_id, []), page["waits"].get(run_id, [])
            messages, logs = page["outbox"].get(run_id, []), page["logs"].get(run_id, [])
            leases = page["leases"].get(run_id)
            lease = leases[0] if leases else None
        out["steps"] = [_step_dict(s) for s in steps]
        out["waits"] = [_wait_dict(w) for w in waits]
        out["messages"] = [_message_dict(m) for m in messages]
        out["logs"] = [
            {"timestamp": iso(lg["ts"]), "level": lg["level"], "message": lg["message"],
             "step_key": lg["step_key"], "step_index": lg["step_index"]}
            for lg in logs
        ]
        out["lease"] = ({"owner": lease["owner"], "epoch": lease["epoch"], "expires_at": iso(lease["expires_at"])}
                        if lease else None)
        if page is None:
            out["definition_steps"] = self._definition_steps(row["definition_id"], row["definition_version"])
        else:
            # Each version's steps read once per page, not once per run.
            known = page.setdefault("definitions", {})
            version_key = f"{row['definition_id']}\x00{row['definition_version']}"
            if version_key not in known:
                known[version_key] = self._definition_steps(row["definition_id"], row["definition_version"])
            out["definition_steps"] = [dict(d) for d in known[version_key]]
        return out

    def _definition_steps(self, def_id: str, version: int) -> list[dict[str, Any]]:
        """The automation's steps from its stored spec, read as plain JSON: showing
        a run must not pay for building the pydantic definition models."""
        key = (def_id, version)
        if key in self._defs:
            return [{"key": s.key, "type": s.type, "name": s.name} for s in self._defs[key].steps]
        row = self.store.get_definition(def_id, version)
        if row is None:
            return []
        return [{"key": s.get("key"), "type": s.get("type"), "name": s.get("name")} for s in json.loads(row["spec"]).get("steps", [])]


def _step_dict(s: dict) -> dict[str, Any]:
    start, end = s["started_at"], s["finished_at"]
    return {
        "id": f"step_{s['id']}", "key": s["key"], "name": s["name"], "type": s["type"],
        "index": s["step_index"], "status": s["status"], "attempt": s["attempt"],
        "started_at": iso(start), "finished_at": iso(end),
        "duration_ms": int(round((end - start) * 1000)) if start is not None and end is not None else None,
        "info": s["info"], "error": s["error"], "branch": s["branch"],
    }

def _wait_dict(w: dict) -> dict[str, Any]:
    by = json.loads(w["resumed_by"]) if w["resumed_by"] else None
    return {
        "id": w["id"], "step_key": w["step_key"], "event": w["event"], "status": w["status"],
        "match": {"field": w["match_field"], "equals": w["match_equals"], "value": w["match_value"]},
        "created_at": iso(w["created_at"]), "timeout_at": iso(w["timeout_at"]),
        "resumed_at": iso(w["resumed_at"]), "timed_out_at": iso(w["timed_out_at"]),
        "branch": w["branch"], "resumed_by_event": by,
    }

def _message_dict(m: dict) -> dict[str, Any]:
    return {
        "id": m["id"], "channel": m["channel"], "step_key": m["step_key"], "run_id": m["run_id"],
        "to": m["recipient"], "title": m["title"], "body": m["body"], "template": m["template"],
        "status": m["status"], "created_at": iso(m["created_at"]), "idempotency_key": m["idempotency_key"],
        "detail": json.loads(m["detail"]) if m["detail"] else None,
    }
