#!/usr/bin/env python3
"""A small, real HTTP server on 127.0.0.1 that speaks the four vendor APIs autorun uses.

Used by end-to-end tests (``api_server`` fixture in ``conftest.py``) and by the
benchmarks. Standalone::

    python tests/apiserver.py --port 0 --runs 100000 --latency-ms 20

prints its base URL on the first stdout line and serves until killed.

One process serves every API on the paths of ``cli-contract.md``:

* plannr    ``/api/v1/automation-executions[/{uuid}]``, ``/api/v1/automation-blueprints/{uuid}/executions``
* sendrealm ``/automations/{id}/runs``, ``/automation-runs/{id}``, ``POST /events``
* tenant    ``/api/v1/automation/executions[/{uuid}[/retry]]``
* generic   ``/automations/{automation_id}/sessions/[{id}[/cancel]]``

State lives in memory: the seed documents of ``fixtures/seeds/`` (served unchanged at
their IDs), a few runs whose text holds Rich markup and terminal escapes, and any
number of generated runs per provider. Generated runs are computed from their index
on demand, so 100,000 of them cost almost nothing until a page is asked for.

Faults (``server.faults``) and the request log (``server.requests``) let a test make
the server misbehave and check what reached it.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import math
import re
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

SEEDS_DIR = Path(__file__).resolve().parent / "fixtures" / "seeds"
PROVIDERS = ("plannr", "sendrealm", "tenant", "generic")
DEFAULT_TOKEN = "srv-test-token-5f2c9a"
# Text an API may send that a terminal or Rich must never interpret.
MARKUP_NAME = "[bold red]pwned[/] \x1b[31mred\x1b[0m"
MARKUP_EXTRA = "[link=https://evil.example]click[/link] \x1b]8;;https://evil.example\x07osc\x1b]8;;\x07 \x1b[2J"

# Where generated runs live (one automation / blueprint / rule set per provider).
PLANNR_BLUEPRINT = "b1000000-0000-4000-8000-000000000001"
PLANNR_SEED_BLUEPRINT = "b1000000-0000-4000-8000-000000000000"
PLANNR_CLIENTS = tuple(f"c1000000-0000-4000-8000-00000000000{k}" for k in range(4))
SENDREALM_AUTOMATION = "aut_load"
SENDREALM_SEED_AUTOMATION = "aut_123"
TENANT_ID = "7e000000-0000-4000-8000-000000000001"
TENANT_RULES = tuple(f"7a000000-0000-4000-8000-00000000000{k}" for k in range(3))
GENERIC_AUTOMATION = "6e000000-0000-4000-8000-000000000001"
GENERIC_SEED_AUTOMATION = "3c90c3cc-0d44-4b50-8888-8dd25736052a"

MARKUP_IDS = {
    "plannr": "5ca1ab1e-0000-4000-8000-000000000001",
    "sendrealm": "run_markup",
    "tenant": "5ca1ab1e-0000-4000-8000-000000000003",
    "generic": "5ca1ab1e-0000-4000-8000-000000000004",
}
TENANT_SEED_ID = "8a3f3c52-5b7e-4b7e-9d3a-2f1c6e0b9a41"
SENDREALM_WAITING_ID = "run_waiting"

_GEN_PREFIX = {"plannr": "a0000000", "tenant": "e0000000", "generic": "c0000000"}
_GEN_RE = {p: re.compile(rf"^{pre}-0000-4000-8000-([0-9a-f]{{12}})$") for p, pre in _GEN_PREFIX.items()}
_GEN_RE["sendrealm"] = re.compile(r"^run_g(\d{6,})$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SECRET_HEADERS = frozenset({"authorization", "x-api-key", "cookie", "proxy-authorization"})

BASE_EPOCH = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp())
STEP_SECONDS = 61  # generated run i was created i*61 s before BASE_EPOCH: index order = newest first

STATUSES = {
    "plannr": ("completed", "in_progress", "failed", "completed", "pending", "cancelled"),
    "sendrealm": ("completed", "running", "waiting", "failed", "completed", "timed_out", "cancelled"),
    "tenant": ("completed", "running", "failed", "pending", "completed", "timeout", "cancelled", "skipped"),
    "generic": ("FINISHED", "RUNNING", "FAILED", "NEW", "FINISHED"),
}
NAMES = ("Send client welcome pack", "Annual review reminder", "Chase missing documents",
         "Onboard new adviser", "Birthday card")
TRIGGERS = ("client.created", "review.due", "document.requested")


def gen_id(provider: str, i: int) -> str:
    """The ID of generated run number ``i`` (0 = newest)."""
    if provider == "sendrealm":
        return f"run_g{i:06d}"
    return f"{_GEN_PREFIX[provider]}-0000-4000-8000-{i:012x}"


def _gen_index(provider: str, run_id: str) -> int | None:
    m = _GEN_RE[provider].match(run_id)
    if not m:
        return None
    return int(m.group(1), 10 if provider == "sendrealm" else 16)


def _status(provider: str, i: int) -> str:
    table = STATUSES[provider]
    return table[(i + i // 7) % len(table)]


def iso(epoch: float, style: str = "z") -> str:
    dt = datetime.fromtimestamp(epoch, UTC)
    if style == "ms":
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    if style == "offset":
        return dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.replace(" ", "T"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _split(value: str | None) -> frozenset[str]:
    return frozenset(v.strip() for v in (value or "").split(",") if v.strip())


# -- generated documents -----------------------------------------------------------

def _plannr_step(i: int, k: int, status: str, t: float, info: str | None = None) -> dict:
    return {
        "info": info if info is not None else f"Step {k + 1} of run {i}",
        "name": ("Send SMS", "Send email", "Create task")[k % 3],
        "uuid": f"a1000000-0000-4000-8000-{i * 4 + k:012x}",
        "status": status,
        "created_at": iso(t, "offset"),
        "updated_at": iso(t + 2, "offset"),
        "executed_at": iso(t + 1, "offset"),
    }


def gen_plannr(i: int, detail: bool) -> dict:
    t, st = BASE_EPOCH - i * STEP_SECONDS, _status("plannr", i)
    failed = st == "failed"
    steps = [_plannr_step(i, 0, "completed", t)]
    if st != "pending":
        info = '"[{errors : \\"the account_uuid field is required\\" }]"' if failed else None
        steps.append(_plannr_step(i, 1, "failed" if failed else "completed", t + 5, info))
    doc = {
        "name": f"{NAMES[i % len(NAMES)]} #{i}",
        "uuid": gen_id("plannr", i),
        "steps": steps,
        "status": st,
        "next_step": _plannr_step(i, 2, "pending", t + 10) if st in ("in_progress", "pending") else None,
        "created_at": iso(t, "offset"),
        "updated_at": iso(t + 30, "offset"),
        "triggered_by": TRIGGERS[i % len(TRIGGERS)],
        "previous_step": steps[-1],
    }
    if detail:
        client = PLANNR_CLIENTS[i % len(PLANNR_CLIENTS)]
        doc["account"] = {"uuid": client, "type": "client", "role": "client", "name": f"Client {i % 4}",
                          "email": f"client{i % 4}@example.com", "can_be_deleted": "false"}
    return doc


def gen_sendrealm(i: int) -> dict:
    t, st = BASE_EPOCH - i * STEP_SECONDS, _status("sendrealm", i)
    email = f"user{i}@example.com"
    # A cancelled run was cancelled while it waited: its wait was never resumed.
    wait_status = {"waiting": "waiting", "timed_out": "timed_out", "cancelled": "cancelled"}.get(st, "received")
    wait = {
        "id": f"wait_g{i:06d}", "step_id": f"step_g{i:06d}_2", "step_key": "wait_for_open",
        "step_type": "wait_for_event", "waiting_for_event_name": "sendrealm.mail.open",
        "status": wait_status, "resolved_identity_value": email,
        "timeout_at": iso(t + 1800, "ms"),
        "resumed_at": iso(t + 90, "ms") if wait_status == "received" else None,
        "timed_out_at": iso(t + 1800, "ms") if wait_status == "timed_out" else None,
        "outcome_branch": {"received": "received", "timed_out": "timeout"}.get(wait_status),
        "resumed_by_event": ({"id": f"evt_g{i:06d}_r", "event_name": "sendrealm.mail.open",
                              "occurred_at": iso(t + 90, "ms")} if wait_status == "received" else None),
    }
    steps = [
        {"id": f"step_g{i:06d}_1", "step_key": "send_receipt", "step_type": "send_email_template",
         "status": "failed" if st == "failed" else "completed",
         "linked_emails": [] if st == "failed" else [
             {"id": f"email_g{i:06d}", "subject": "Your receipt", "status": "sent", "last_event": "send",
              "template_version_id": "tmplver_email_123", "contact_id": f"contact_{i}",
              "created_at": iso(t + 1, "ms")}]},
    ]
    if st != "failed":
        steps.append({"id": wait["step_id"], "step_key": "wait_for_open", "step_type": "wait_for_event",
                      "status": {"waiting": "waiting", "cancelled": "cancelled"}.get(st, "completed"),
                      "branch_taken": wait["outcome_branch"], "waits": [dict(wait)]})
    doc = {
        "id": gen_id("sendrealm", i), "automation_id": SENDREALM_AUTOMATION,
        "trigger_event_name": "order.completed", "resolved_identity_type": "email",
        "resolved_identity_value": email, "status": st,
        "trigger_event": {"id": f"evt_g{i:06d}", "event_name": "order.completed",
                          "payload": {"order_id": f"ord_{i}"}, "occurred_at": iso(t, "ms")},
        "created_at": iso(t, "ms"), "updated_at": iso(t + 90, "ms"),
        "steps": steps, "waits": [dict(wait)] if st != "failed" else [],
        "sent_emails": [] if st == "failed" else [
            {"id": f"email_g{i:06d}", "subject": "Your receipt", "status": "sent", "last_event": "send",
             "automation_step_key": "send_receipt", "template_version_id": "tmplver_email_123",
             "created_at": iso(t + 1, "ms")}],
        "sent_push_notifications": [],
    }
    if st == "failed":
        doc["last_error"] = {"code": "template_render_failed", "step_key": "send_receipt",
                             "message": "Template variable 'order.total' is missing"}
    return doc


def gen_tenant(i: int) -> dict:
    t, st = BASE_EPOCH - i * STEP_SECONDS, _status("tenant", i)
    done = st not in ("pending", "running")
    failed = st == "failed"
    logs = [{"timestamp": iso(t, "ms"), "level": "info", "message": "Execution started"},
            {"timestamp": iso(t + 1, "ms"), "level": "info", "message": "Action completed", "action_index": 0}]
    if failed:
        logs.append({"timestamp": iso(t + 2, "ms"), "level": "error", "message": "Webhook returned 502",
                     "action_index": 1, "metadata": {"http_status": 502}})
    return {
        "execution_id": gen_id("tenant", i),
        "automation_rule_id": TENANT_RULES[i % len(TENANT_RULES)],
        "trigger_data": {"event_type": "ticket.created", "ticket_id": f"T-{i}"},
        "status": st,
        "started_at": iso(t, "ms"),
        "completed_at": iso(t + 3, "ms") if done else None,
        "duration_ms": 3000 if done else None,
        "actions_total": 3,
        "actions_successful": 1 if failed else (3 if st == "completed" else 1),
        "actions_failed": 1 if failed else 0,
        "error_message": "Webhook returned 502" if failed else None,
        "error_stack": "Error: Webhook returned 502\n    at WebhookAction.execute (actions/webhook.ts:57:13)" if failed else None,
        "failed_action_index": 1 if failed else None,
        "execution_context": {"source": "api", "attempt": 1},
        "logs": logs,
        "tenant": TENANT_ID,
    }


GENERIC_STEP_DEFS = {"Start": "d3000000-0000-4000-8000-000000000001", "Summarise ticket": "d3000000-0000-4000-8000-000000000002"}


def _generic_step(sid: str, status: str, t: float, name: str, step_type: str,
                  result: str | None = None, error: str | None = None) -> dict:
    return {
        "id": sid, "status": status, "prompt": {"type": "text", "text": f"Run {name}"},
        "result": result, "error": error,
        # A step definition is shared by every session of the automation.
        "step": {"id": GENERIC_STEP_DEFS[name], "name": name, "step_type": step_type,
                 "prompt_template": {"type": "text"}, "created_at": iso(t), "updated_at": iso(t)},
        "created_at": iso(t), "updated_at": iso(t + 1),
    }


def gen_generic(i: int) -> dict:
    t, st = BASE_EPOCH - i * STEP_SECONDS, _status("generic", i)
    base = f"c3000000-0000-4000-8000-{i:09x}"
    steps = []
    if st != "NEW":
        steps.append(_generic_step(base + "001", "FINISHED", t + 1, "Start", "START", result="ok"))
        second = {"FINISHED": "FINISHED", "RUNNING": "RUNNING", "FAILED": "FAILED"}[st]
        steps.append(_generic_step(base + "002", second, t + 2, "Summarise ticket", "LLM",
                                   result="Summary written" if st == "FINISHED" else None,
                                   error="Model timed out after 30 s" if st == "FAILED" else None))
    return {
        "id": gen_id("generic", i), "automation_id": GENERIC_AUTOMATION,
        "inputs": {"ticket": f"T-{i}"}, "error": "Model timed out after 30 s" if st == "FAILED" else None,
        "status": st, "created_at": iso(t), "updated_at": iso(t + 3),
        "steps": steps, "steps_count": len(steps),
        "current_step": steps[-1] if st == "RUNNING" else None,
    }


# -- built-in extra documents ------------------------------------------------------

def _extra_docs() -> list[tuple[str, dict, dict]]:
    """(provider, doc, meta) for the runs that are not vendor seeds."""
    t = BASE_EPOCH + 3600
    plannr_markup = gen_plannr(0, detail=True)
    plannr_markup.update(uuid=MARKUP_IDS["plannr"], name=MARKUP_NAME, created_at=iso(t, "offset"),
                         updated_at=iso(t, "offset"), triggered_by=MARKUP_EXTRA)
    plannr_markup["steps"][0]["info"] = MARKUP_EXTRA
    plannr_markup["steps"][0]["name"] = MARKUP_NAME
    sr_markup = gen_sendrealm(3)  # a failed one: the error text is shown too
    sr_markup.update(id=MARKUP_IDS["sendrealm"], automation_id=SENDREALM_SEED_AUTOMATION,
                     trigger_event_name=MARKUP_NAME, created_at=iso(t, "ms"), updated_at=iso(t, "ms"))
    sr_markup["steps"][0]["step_key"] = MARKUP_NAME
    sr_markup["last_error"]["message"] = MARKUP_EXTRA
    sr_waiting = gen_sendrealm(2)  # waiting for sendrealm.mail.open by olivia@example.com
    sr_waiting.update(id=SENDREALM_WAITING_ID, automation_id=SENDREALM_SEED_AUTOMATION,
                      resolved_identity_value="olivia@example.com", created_at=iso(t - 60, "ms"),
                      updated_at=iso(t - 30, "ms"))
    for w in [*sr_waiting["waits"], *sr_waiting["steps"][1]["waits"]]:
        w["resolved_identity_value"] = "olivia@example.com"
    tenant_markup = gen_tenant(2)
    tenant_markup.update(execution_id=MARKUP_IDS["tenant"], error_message=MARKUP_NAME,
                         error_stack=MARKUP_EXTRA, started_at=iso(t, "ms"))
    tenant_markup["logs"][-1]["message"] = MARKUP_NAME
    tenant_seed = {
        "execution_id": TENANT_SEED_ID, "automation_rule_id": TENANT_RULES[0],
        "trigger_data": {"event_type": "ticket.created", "ticket_id": "T-1001", "priority": "high"},
        "status": "failed", "started_at": "2026-06-08T14:15:00.000Z", "completed_at": "2026-06-08T14:15:02.500Z",
        "duration_ms": 2500, "actions_total": 3, "actions_successful": 1, "actions_failed": 1,
        "error_message": "Action 'send_email' failed: SMTP connection refused",
        "error_stack": "Error: SMTP connection refused\n    at EmailAction.execute (actions/email.ts:42:11)",
        "failed_action_index": 1, "execution_context": {"source": "event_bus"},
        "logs": [
            {"timestamp": "2026-06-08T14:15:00.000Z", "level": "info", "message": "Execution started"},
            {"timestamp": "2026-06-08T14:15:01.000Z", "level": "info", "message": "Ticket assigned", "action_index": 0},
            {"timestamp": "2026-06-08T14:15:02.500Z", "level": "error", "message": "SMTP connection refused",
             "action_index": 1, "metadata": {"host": "smtp.example.com"}},
        ],
        "tenant": TENANT_ID,
    }
    generic_markup = gen_generic(2)  # FAILED
    generic_markup.update(id=MARKUP_IDS["generic"], automation_id=GENERIC_SEED_AUTOMATION, error=MARKUP_NAME,
                          created_at=iso(t), updated_at=iso(t))
    generic_markup["steps"][1]["step"]["name"] = MARKUP_NAME
    generic_markup["steps"][1]["error"] = MARKUP_EXTRA
    return [
        ("plannr", plannr_markup, {"scope": PLANNR_SEED_BLUEPRINT}),
        ("sendrealm", sr_markup, {}), ("sendrealm", sr_waiting, {}),
        ("tenant", tenant_seed, {}), ("tenant", tenant_markup, {}),
        ("generic", generic_markup, {}),
    ]


def load_seeds(directory: Path = SEEDS_DIR) -> list[tuple[str, dict, dict]]:
    """(provider, doc, meta) for every run document among the vendor seed files."""
    out: list[tuple[str, dict, dict]] = []
    for path in sorted(directory.glob("*.json")):
        provider = path.stem.split("_")[0]
        if provider not in PROVIDERS or "error" in path.stem:
            continue
        doc = json.loads(path.read_text())
        if isinstance(doc, dict) and isinstance(doc.get("data"), list):
            docs = doc["data"]
        elif isinstance(doc, dict) and isinstance(doc.get("data"), dict):
            docs = [doc["data"]]
        else:
            docs = [doc]
        for d in docs:
            meta: dict = {"scope": PLANNR_SEED_BLUEPRINT} if provider == "plannr" else {}
            # The list seed's run is served data-wrapped, the detail seed bare: both shapes occur.
            if provider == "plannr" and path.stem.endswith("list"):
                meta["wrapped"] = True
            out.append((provider, d, meta))
    return out


# -- state -------------------------------------------------------------------------

class State:
    """All runs, by provider. Thread-safe through one lock; ``version`` bumps on change."""

    def __init__(self, seeds: bool = True):
        self.lock = threading.RLock()
        self.version = 0
        self.docs: dict[str, dict[str, dict]] = {p: {} for p in PROVIDERS}
        self.order: dict[str, list[str]] = {p: [] for p in PROVIDERS}  # explicit IDs, not materialized ones
        self.meta: dict[str, dict[str, dict]] = {p: {} for p in PROVIDERS}
        self.generated: dict[str, int] = {p: 0 for p in PROVIDERS}
        self.plannr_wrapped: set[str] = set()  # plannr IDs whose GET answers {"data": …}
        self.tenant_nested = False  # tenant lists answer {"data": [[…]]}
        self.tenant_errors = "500"  # "500" (older Alga), "masked" (older, production) or "current" (404/409)
        self.generic_bare = False  # generic lists answer a bare array
        self.forbidden_tokens: set[str] = set()  # authenticate, then 403
        self.events: dict[str, dict] = {}  # sendrealm idempotency_key → first answer
        self.automations: dict[str, set[str]] = {"sendrealm": {SENDREALM_SEED_AUTOMATION},
                                                 "generic": {GENERIC_SEED_AUTOMATION},
                                                 "plannr": {PLANNR_SEED_BLUEPRINT}}
        self._cache: dict[tuple, list] = {}
        if seeds:
            for provider, doc, meta in [*load_seeds(), *_extra_docs()]:
                self.add(provider, doc, **meta)

    # -- building
    def add(self, provider: str, doc: dict, *, scope: str | None = None, wrapped: bool = False) -> str:
        """Add one explicit run (deep-copied); returns its ID."""
        doc = copy.deepcopy(doc)
        rid = str(doc.get(_ID_KEY[provider]))
        with self.lock:
            if rid not in self.docs[provider]:
                self.order[provider].append(rid)
            self.docs[provider][rid] = doc
            if scope:
                self.meta[provider].setdefault(rid, {})["scope"] = scope
            if wrapped:
                self.plannr_wrapped.add(rid)
            s = scope or self._doc_scope(provider, doc)
            if s and provider in self.automations:
                self.automations[provider].add(s)
            self.version += 1
        return rid

    def generate(self, provider: str, n: int) -> list[str]:
        """Add ``n`` generated runs (varied statuses, names, times); returns the first IDs (≤ 1000)."""
        with self.lock:
            start = self.generated[provider]
            self.generated[provider] = start + n
            if provider in self.automations:
                self.automations[provider].add(_GEN_SCOPE[provider])
            self.version += 1
        return [gen_id(provider, i) for i in range(start, min(start + n, start + 1000))]

    # -- reading
    def get(self, provider: str, rid: str, detail: bool = True) -> dict | None:
        with self.lock:
            doc = self.docs[provider].get(rid)
            if doc is not None:
                return doc
            i = _gen_index(provider, rid)
            if i is None or i >= self.generated[provider]:
                return None
        return _GEN[provider](i, detail)

    def materialize(self, provider: str, rid: str) -> dict | None:
        """The stored doc for ``rid``, turning a generated run into a stored one to mutate it."""
        with self.lock:
            doc = self.get(provider, rid)
            if doc is not None and rid not in self.docs[provider]:
                self.docs[provider][rid] = doc
            self.version += 1
            return doc

    def _doc_scope(self, provider: str, doc: dict) -> str | None:
        key = {"sendrealm": "automation_id", "generic": "automation_id", "tenant": "automation_rule_id"}.get(provider)
        return doc.get(key) if key else None

    def _attrs(self, provider: str, ref: str | int) -> dict:
        if isinstance(ref, int):
            rid = gen_id(provider, ref)
            if rid not in self.docs[provider]:
                # Cheap facts of a generated run, without building its document.
                t = BASE_EPOCH - ref * STEP_SECONDS
                return {"id": rid, "created": t, "updated": t + 30, "status": _status(provider, ref),
                        "name": f"{NAMES[ref % len(NAMES)]} #{ref}" if provider == "plannr" else rid,
                        "scope": _GEN_SCOPE[provider] if provider != "tenant" else TENANT_RULES[ref % 3],
                        "client": PLANNR_CLIENTS[ref % 4], "tenant": TENANT_ID}
            ref = rid
        doc = self.docs[provider][ref]
        meta = self.meta[provider].get(ref, {})
        created = doc.get("created_at") or doc.get("started_at") or (doc.get("trigger_event") or {}).get("occurred_at")
        account = doc.get("account") if isinstance(doc.get("account"), dict) else {}
        return {"id": ref, "created": parse_ts(created) or 0.0, "updated": parse_ts(doc.get("updated_at")) or 0.0,
                "status": doc.get("status"), "name": str(doc.get("name") or ref),
                "scope": meta.get("scope") or self._doc_scope(provider, doc),
                "client": account.get("uuid"), "tenant": doc.get("tenant")}

    def select(self, provider: str, where: tuple[tuple[str, frozenset], ...] = (),
               since: float | None = None, until: float | None = None, sort: str = "-created") -> list:
        """Refs (IDs or generated indexes) matching every ``(attr, allowed)``, sorted; cached per state version."""
        key = (provider, where, since, until, sort, self.version)
        with self.lock:
            hit = self._cache.get(key)
            if hit is not None:
                return hit
            field_, desc = sort.lstrip("-"), sort.startswith("-")
            rows = []
            for ref in [*self.order[provider], *range(self.generated[provider])]:
                a = self._attrs(provider, ref)
                if any(a.get(k) not in allowed for k, allowed in where):
                    continue
                if (since is not None and a["created"] < since) or (until is not None and a["created"] > until):
                    continue
                rows.append((a[field_], a["id"], ref))
            rows.sort(key=lambda r: (r[0], r[1]), reverse=desc)
            refs = [r[2] for r in rows]
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[key] = refs
            return refs

    def doc(self, provider: str, ref: str | int, detail: bool = False) -> dict:
        rid = gen_id(provider, ref) if isinstance(ref, int) else ref
        doc = self.get(provider, rid, detail)
        assert doc is not None
        return doc


_ID_KEY = {"plannr": "uuid", "sendrealm": "id", "tenant": "execution_id", "generic": "id"}
_GEN: dict[str, Callable[[int, bool], dict]] = {
    "plannr": gen_plannr,
    "sendrealm": lambda i, detail: gen_sendrealm(i),
    "tenant": lambda i, detail: gen_tenant(i),
    "generic": lambda i, detail: gen_generic(i),
}
_GEN_SCOPE = {"plannr": PLANNR_BLUEPRINT, "sendrealm": SENDREALM_AUTOMATION, "tenant": None,
              "generic": GENERIC_AUTOMATION}


# -- faults ------------------------------------------------------------------------

@dataclass
class Fault:
    kind: str  # "status" | "malformed" | "html" | "body"
    status: int
    remaining: int | None  # None: every matching request, until cleared
    path: str | None = None  # only requests whose path contains this
    retry_after: str | None = None
    every: int = 1  # answer only every Nth matching request (the others pass)
    method: str | None = None  # only requests with this method
    seen: int = 0
    body: bytes | None = None  # kind "body": sent as is, as application/json


class Faults:
    """Thread-safe fault injection. The first matching rule answers a request instead of the API."""

    def __init__(self, latency_ms: float = 0):
        self._lock = threading.Lock()
        self._rules: list[Fault] = []
        self.latency_ms = latency_ms

    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self._rules.append(fault)
        return fault

    def rate_limit(self, times: int | None = 1, retry_after: int | str | None = 1, path: str | None = None,
                   *, every: int = 1, method: str | None = None) -> Fault:
        """429 with ``Retry-After`` (seconds or an HTTP date; None: no header) for the next
        ``times`` matching requests (None: until cleared); with ``every=N`` only every
        Nth matching request is refused, the others are served."""
        return self._add(Fault("status", 429, times, path, None if retry_after is None else str(retry_after),
                               every=every, method=method))

    def error(self, status: int = 503, times: int | None = None, path: str | None = None,
              retry_after: int | str | None = None, *, method: str | None = None) -> Fault:
        """An error status in the vendor's error shape; ``times=None`` means persistent."""
        return self._add(Fault("status", status, times, path, None if retry_after is None else str(retry_after),
                               method=method))

    def malformed_json(self, status: int = 200, times: int | None = None, path: str | None = None) -> Fault:
        """A truncated JSON body labelled application/json."""
        return self._add(Fault("malformed", status, times, path))

    def html(self, status: int = 502, times: int | None = None, path: str | None = None) -> Fault:
        """A text/html page (a proxy's error page, or a login page with 200)."""
        return self._add(Fault("html", status, times, path))

    def body(self, data: bytes, status: int = 200, times: int | None = None, path: str | None = None) -> Fault:
        """Exactly these bytes as an application/json answer (hostile documents)."""
        return self._add(Fault("body", status, times, path, body=data))

    def clear(self) -> None:
        """Remove every rule and the added latency."""
        with self._lock:
            self._rules.clear()
            self.latency_ms = 0

    def take(self, path: str, method: str = "GET") -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.remaining == 0 or (rule.path and rule.path not in path):
                    continue
                if rule.method and rule.method != method:
                    continue
                rule.seen += 1
                if rule.seen % rule.every:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                return rule
        return None


# -- HTTP plumbing -----------------------------------------------------------------

@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: Any
    base: str  # http://host:port, as the client addressed us

    def arg(self, name: str, default: str | None = None) -> str | None:
        vals = self.query.get(name)
        return vals[-1] if vals else default

    def int_arg(self, name: str, default: int, lo: int = 1) -> int:
        raw = self.arg(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise BadParam(name, raw) from None
        if value < lo:
            raise BadParam(name, raw)
        return value


class BadParam(Exception):
    def __init__(self, name: str, value: str):
        super().__init__(name)
        self.name, self.value = name, value


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "application/json"


_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          409: "conflict", 422: "validation_error", 429: "rate_limited", 500: "internal_error",
          502: "bad_gateway", 503: "service_unavailable", 504: "gateway_timeout"}


def vendor_error(provider: str, status: int, message: str, code: str | None = None, details: Any = None,
                 headers: dict[str, str] | None = None) -> Reply:
    """An error in the vendor's own body shape (contract: "Error bodies differ")."""
    code = code or _CODES.get(status, "error")
    if provider == "plannr":
        body: Any = {"message": message}
        if details is not None:
            body["errors"] = details
    elif provider == "sendrealm":
        body = {"status": status, "error": {"code": code, "message": message, "details": details}}
    elif provider == "tenant":
        body = {"error": {"code": code.upper(), "message": message}}
        if details is not None:
            body["error"]["details"] = details
    else:
        body = {"detail": details if details is not None else message}
    return Reply(status, body, headers or {})


_REASONS = {429: "Too Many Attempts.", 500: "Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout"}
HTML_PAGE = ("<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}"
             "</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n</body>\r\n</html>\r\n")


def fault_reply(provider: str, fault: Fault) -> Reply:
    if fault.kind == "body":
        return Reply(fault.status, raw=fault.body or b"", content_type="application/json")
    if fault.kind == "malformed":
        return Reply(fault.status, raw=b'{"data": [{"id": "run_1", "status": "comple', content_type="application/json")
    if fault.kind == "html":
        reason = _REASONS.get(fault.status, "OK" if fault.status == 200 else "Error")
        page = HTML_PAGE.format(status=fault.status, reason=reason)
        return Reply(fault.status, raw=page.encode(), content_type="text/html; charset=utf-8")
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
    return vendor_error(provider, fault.status, _REASONS.get(fault.status, "Error"), headers=headers)


def guess_provider(path: str) -> str:
    if path.startswith("/api/v1/automation/"):
        return "tenant"
    if path.startswith("/api/v1/"):
        return "plannr"
    if path.startswith(("/automation-runs", "/events")) or re.match(r"^/automations/[^/]+/runs", path):
        return "sendrealm"
    return "generic"


# -- the four APIs -----------------------------------------------------------------

class Api:
    def __init__(self, state: State):
        self.state = state
        s = r"(?P<{}>[^/]+)"
        self.routes: list[tuple[str, re.Pattern, str, Callable[..., Reply]]] = [
            ("GET", r"/api/v1/automation-executions", "plannr", self.plannr_list),
            ("GET", r"/api/v1/automation-executions/" + s.format("rid"), "plannr", self.plannr_get),
            ("GET", r"/api/v1/automation-blueprints/" + s.format("bp") + "/executions", "plannr", self.plannr_list),
            ("GET", r"/automations/" + s.format("aid") + "/runs", "sendrealm", self.sendrealm_list),
            ("GET", r"/automation-runs/" + s.format("rid"), "sendrealm", self.sendrealm_get),
            ("POST", r"/events", "sendrealm", self.sendrealm_event),
            ("GET", r"/api/v1/automation/executions", "tenant", self.tenant_list),
            ("GET", r"/api/v1/automation/executions/" + s.format("rid"), "tenant", self.tenant_get),
            ("POST", r"/api/v1/automation/executions/" + s.format("rid") + "/retry", "tenant", self.tenant_retry),
            ("GET", r"/automations/" + s.format("aid") + "/sessions/", "generic", self.generic_list),
            ("POST", r"/automations/" + s.format("aid") + "/sessions/", "generic", self.generic_create),
            ("GET", r"/automations/" + s.format("aid") + "/sessions/" + s.format("rid"), "generic", self.generic_get),
            ("PATCH", r"/automations/" + s.format("aid") + "/sessions/" + s.format("rid") + "/cancel", "generic",
             self.generic_cancel),
        ]
        self.routes = [(m, re.compile(p + "$"), prov, fn) for m, p, prov, fn in self.routes]  # type: ignore[misc]

    def match(self, method: str, path: str) -> tuple[str, Callable[..., Reply] | None, dict, bool]:
        """(provider, handler, path params, path_exists_for_another_method)."""
        other = False
        for m, pattern, provider, fn in self.routes:
            hit = pattern.match(path)
            if hit:
                if m == method:
                    return provider, fn, {k: unquote(v) for k, v in hit.groupdict().items()}, True
                other = True
        return guess_provider(path), None, {}, other

    # -- plannr (Laravel)
    def plannr_list(self, req: Request, bp: str | None = None) -> Reply:
        sort = req.arg("sort") or "name"  # the vendor's documented default
        if sort.lstrip("-") not in ("created_at", "updated_at", "name"):
            return vendor_error("plannr", 400, f"Requested sort(s) `{sort}` is not allowed. "
                                "Allowed sort(s) are `created_at, updated_at, name`.")
        if bp is not None and bp not in self.state.automations["plannr"]:
            return vendor_error("plannr", 404, f"No query results for model [App\\Models\\AutomationBlueprint] {bp}")
        where = []
        if bp is not None:
            where.append(("scope", frozenset({bp})))
        for param, attr in (("filter[uuid]", "id"), ("filter[client_uuids]", "client")):
            if req.arg(param):
                where.append((attr, _split(req.arg(param))))
        page = req.int_arg("page", 1)
        per_page = min(req.int_arg("per_page", 15), 500)
        refs = self.state.select("plannr", tuple(where), sort=sort.replace("_at", ""))
        total = len(refs)
        last = max(1, math.ceil(total / per_page))
        chunk = refs[(page - 1) * per_page: page * per_page]
        items = [self.state.doc("plannr", r) for r in chunk]
        params = [(k, v) for k, vals in req.query.items() if k != "page" for v in vals]

        def link(n: int | None) -> str | None:
            if n is None:
                return None
            return f"{req.base}{req.path}?" + urlencode([*params, ("page", n)])

        frm = (page - 1) * per_page + 1 if items else None
        return Reply(200, {
            "data": items,
            "links": {"first": link(1), "last": link(last), "prev": link(page - 1 if page > 1 else None),
                      "next": link(page + 1 if page < last else None)},
            "meta": {"current_page": page, "from": frm, "last_page": last,
                     "links": [{"url": link(page - 1 if page > 1 else None), "label": "&laquo; Previous", "active": False},
                               {"url": link(page), "label": str(page), "active": True},
                               {"url": link(page + 1 if page < last else None), "label": "Next &raquo;", "active": False}],
                     "path": req.base + req.path, "per_page": per_page,
                     "to": frm + len(items) - 1 if frm else None, "total": total},
        })

    def plannr_get(self, req: Request, rid: str) -> Reply:
        doc = self.state.get("plannr", rid)
        if doc is None:
            return vendor_error("plannr", 404, f"No query results for model [App\\Models\\AutomationExecution] {rid}")
        idx = _gen_index("plannr", rid)
        wrapped = rid in self.state.plannr_wrapped or (idx is not None and idx % 2 == 1)
        return Reply(200, {"data": doc} if wrapped else doc)

    # -- sendrealm (cursor)
    def sendrealm_list(self, req: Request, aid: str) -> Reply:
        if aid not in self.state.automations["sendrealm"]:
            return vendor_error("sendrealm", 404, f"Automation {aid} not found")
        limit = min(req.int_arg("limit", 20), 100)
        offset = 0
        if req.arg("cursor"):
            try:
                offset = int(json.loads(base64.urlsafe_b64decode(req.arg("cursor") + "==").decode())["o"])
            except (ValueError, KeyError, TypeError):
                return vendor_error("sendrealm", 400, "Invalid pagination cursor", code="invalid_cursor")
        where = [("scope", frozenset({aid}))]
        if req.arg("status"):
            where.append(("status", _split(req.arg("status"))))
        refs = self.state.select("sendrealm", tuple(where))
        chunk = refs[offset: offset + limit]
        items = []
        for r in chunk:  # the list holds summaries; the detail adds steps, waits and messages
            doc = self.state.doc("sendrealm", r)
            items.append({k: v for k, v in doc.items() if k not in ("steps", "waits", "sent_emails",
                                                                      "sent_push_notifications")})
        end = offset + len(chunk)
        more = end < len(refs)
        cursor = base64.urlsafe_b64encode(json.dumps({"o": end}).encode()).decode().rstrip("=") if more else None
        return Reply(200, {"data": items, "next_cursor": cursor, "has_more": more})

    def sendrealm_get(self, req: Request, rid: str) -> Reply:
        doc = self.state.get("sendrealm", rid)
        if doc is None:
            return vendor_error("sendrealm", 404, f"Automation run {rid} not found")
        return Reply(200, {"data": doc})

    def sendrealm_event(self, req: Request) -> Reply:
        body = req.body
        if not isinstance(body, dict) or not isinstance(body.get("event"), str) or not body["event"]:
            return vendor_error("sendrealm", 422, "event is required", code="validation_error",
                                details={"field": "event"})
        ident = [body.get(k) for k in ("email", "contact_id", "external_id") if body.get(k)]
        if not ident:
            return vendor_error("sendrealm", 422, "one of email, contact_id or external_id is required",
                                code="validation_error", details={"field": "email"})
        key = body.get("idempotency_key")
        with self.state.lock:
            if key and key in self.state.events:
                first = copy.deepcopy(self.state.events[key])
                first["data"]["deduplicated"] = True
                return Reply(200, first)
            now = iso(time.time(), "ms")
            event = {"id": "evt_" + uuid.uuid4().hex[:16], "event_name": body["event"],
                     "occurred_at": body.get("occurred_at") or now}
            resumed = self._resume_waits(event, set(map(str, ident)), now)
            answer = {"data": {"id": event["id"], "event": body["event"], "idempotency_key": key,
                               "deduplicated": False, "received_at": now, "resumed_run_ids": resumed}}
            if key:
                self.state.events[key] = copy.deepcopy(answer)
        return Reply(202, answer)

    def _resume_waits(self, event: dict, idents: set[str], now: str) -> list[str]:
        st = self.state
        candidates = list(st.docs["sendrealm"])
        for ident in idents:  # a generated run's identity names its index
            m = re.match(r"^user(\d+)@example\.com$", ident)
            if m and int(m.group(1)) < st.generated["sendrealm"]:
                candidates.append(gen_id("sendrealm", int(m.group(1))))
        resumed = []
        for rid in dict.fromkeys(candidates):
            doc = st.get("sendrealm", rid)
            if doc is None or doc.get("status") != "waiting":
                continue
            waits = [*doc.get("waits", []), *(w for s in doc.get("steps", []) for w in s.get("waits", []))]
            hits = [w for w in waits if w.get("status") == "waiting"
                    and w.get("waiting_for_event_name") == event["event_name"]
                    and (w.get("resolved_identity_value") or doc.get("resolved_identity_value")) in idents]
            if not hits:
                continue
            doc = st.materialize("sendrealm", rid)
            assert doc is not None
            ids = {w.get("id") for w in hits}
            for w in [*doc.get("waits", []), *(w for s in doc.get("steps", []) for w in s.get("waits", []))]:
                if w.get("id") in ids:
                    w.update(status="received", resumed_at=now, outcome_branch="received", resumed_by_event=event)
            for s in doc.get("steps", []):
                if any(w.get("id") in ids for w in s.get("waits", [])):
                    s.update(status="completed", branch_taken="received")
            doc.update(status="running", updated_at=now)
            resumed.append(rid)
        if resumed:
            st.version += 1
        return resumed

    # -- tenant (Alga PSA)
    def _tenant_scope(self, req: Request) -> str | None:
        return req.headers.get("x-tenant-id") or None

    def _tenant_links(self, req: Request, doc: dict) -> dict:
        """As Alga's controller builds them: generateResourceLinks (self, edit, patch,
        delete, collection as {href, method, rel}), the rule, and retry only when failed."""
        rid = doc["execution_id"]
        href = f"{req.base}/api/v1/automation/executions/{rid}"
        links: dict[str, Any] = {
            rel: {"href": href if rel != "collection" else f"{req.base}/api/v1/automation/executions",
                  "method": method, "rel": name}
            for rel, method, name in (("self", "GET", "self"), ("edit", "PUT", "edit"), ("patch", "PATCH", "partial-update"),
                                      ("delete", "DELETE", "delete"), ("collection", "GET", "collection"))
        }
        links["rule"] = f"{req.base}/api/v1/automation/rules/{doc.get('automation_rule_id')}"
        if doc.get("status") == "failed":
            idx = _gen_index("tenant", rid)
            # Both shapes of a link occur: an object and a plain URL string.
            links["retry"] = href + "/retry" if idx is not None and idx % 2 == 1 else {"href": href + "/retry",
                                                                                     "method": "POST"}
        return links

    def _tenant_lookup(self, req: Request, rid: str) -> tuple[dict | None, Reply | None]:
        if not UUID_RE.match(rid):
            return None, vendor_error("tenant", 400, "Invalid execution ID format", code="VALIDATION_ERROR",
                                      details=[{"path": ["id"], "message": "Invalid uuid"}])
        doc = self.state.get("tenant", rid)
        tenant = self._tenant_scope(req)
        if doc is None or (tenant and doc.get("tenant") != tenant):
            return None, self._tenant_error(404, "Automation execution not found")
        return doc, None

    def _tenant_error(self, status: int, message: str) -> Reply:
        """Alga's NotFoundError (404) / ConflictError (409) in the server's dialect:
        ``current`` answers them as such; ``500`` is the older servers' generic Error
        (500 with the message); ``masked`` is an older production server, which hides
        the message."""
        dialect = self.state.tenant_errors
        if dialect == "current":
            return vendor_error("tenant", status, message, code="NOT_FOUND" if status == 404 else "CONFLICT")
        if dialect == "masked":
            return vendor_error("tenant", 500, "An unexpected error occurred", code="INTERNAL_ERROR")
        return vendor_error("tenant", 500, message, code="INTERNAL_ERROR")

    def tenant_list(self, req: Request) -> Reply:
        page = req.int_arg("page", 1)
        limit = min(req.int_arg("limit", 20), 100)  # the vendor caps limit at 100
        bounds = []
        for name in ("started_from", "started_to"):
            raw = req.arg(name)
            value = parse_ts(raw) if raw else None
            if raw and value is None:
                return vendor_error("tenant", 400, f"Invalid {name}: expected an ISO 8601 date-time",
                                    code="VALIDATION_ERROR", details=[{"path": [name], "message": "Invalid datetime"}])
            bounds.append(value)
        where = []
        for param, attr in (("status", "status"), ("automation_rule_id", "scope")):
            if req.arg(param):
                where.append((attr, _split(req.arg(param))))
        if self._tenant_scope(req):
            where.append(("tenant", frozenset({self._tenant_scope(req)})))
        refs = self.state.select("tenant", tuple(where), since=bounds[0], until=bounds[1])
        total = len(refs)
        pages = math.ceil(total / limit)
        items = [self.state.doc("tenant", r) for r in refs[(page - 1) * limit: page * limit]]
        nested = self.state.tenant_nested or req.arg("_nested") in ("1", "true")
        return Reply(200, {"data": [items] if nested else items,
                           "pagination": {"page": page, "limit": limit, "total": total, "totalPages": pages,
                                          "hasNext": page < pages, "hasPrev": page > 1}})

    def tenant_get(self, req: Request, rid: str) -> Reply:
        doc, err = self._tenant_lookup(req, rid)
        if err:
            return err
        assert doc is not None
        return Reply(200, {"data": doc if "_links" in doc else {**doc, "_links": self._tenant_links(req, doc)}})

    def tenant_retry(self, req: Request, rid: str) -> Reply:
        doc, err = self._tenant_lookup(req, rid)
        if err:
            return err
        with self.state.lock:
            doc = self.state.materialize("tenant", rid)
            assert doc is not None
            if doc.get("status") != "failed":
                return self._tenant_error(409, "Only failed executions can be retried")
            # AutomationService.retryAutomationExecution: the same execution, pending, a
            # new started_at; failed_action_index and the logs stay as they were.
            doc.update(status="pending", started_at=iso(time.time(), "ms"), completed_at=None, duration_ms=None,
                       error_message=None, error_stack=None, actions_successful=0, actions_failed=0)
            doc.pop("_links", None)
        rule = f"{req.base}/api/v1/automation/rules/{doc.get('automation_rule_id')}"
        return Reply(200, {"data": {**doc, "_links": {"execution": f"{req.base}/api/v1/automation/executions/{rid}",
                                                      "rule": rule}}})

    # -- generic (TrueState, FastAPI)
    def _generic_check(self, aid: str, rid: str | None = None) -> Reply | None:
        for name, value in (("automation_id", aid), ("session_id", rid)):
            if value is not None and not UUID_RE.match(value):
                return vendor_error("generic", 422, "", details=[{
                    "type": "uuid_parsing", "loc": ["path", name],
                    "msg": "Input should be a valid UUID, invalid character: expected an optional prefix of "
                           "`urn:uuid:` followed by [0-9a-fA-F-]", "input": value}])
        if aid not in self.state.automations["generic"]:
            return vendor_error("generic", 404, "Automation not found")
        return None

    def generic_list(self, req: Request, aid: str) -> Reply:
        err = self._generic_check(aid)
        if err:
            return err
        refs = self.state.select("generic", (("scope", frozenset({aid})),))
        if self.state.generic_bare:
            return Reply(200, [self.state.doc("generic", r) for r in refs])
        offset = req.int_arg("offset", 0, lo=0)
        limit = min(req.int_arg("limit", 50), 100)
        items = [self.state.doc("generic", r) for r in refs[offset: offset + limit]]
        return Reply(200, {"items": items, "total": len(refs), "limit": limit, "offset": offset})

    def _generic_session(self, aid: str, rid: str) -> tuple[dict | None, Reply | None]:
        err = self._generic_check(aid, rid)
        if err:
            return None, err
        doc = self.state.get("generic", rid)
        if doc is None or doc.get("automation_id") != aid:
            return None, vendor_error("generic", 404, "Session not found")
        return doc, None

    def generic_get(self, req: Request, aid: str, rid: str) -> Reply:
        doc, err = self._generic_session(aid, rid)
        return err or Reply(200, doc)

    def generic_create(self, req: Request, aid: str) -> Reply:
        err = self._generic_check(aid)
        if err:
            return err
        body = req.body
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), dict):
            return vendor_error("generic", 422, "", details=[{"type": "missing", "loc": ["body", "inputs"],
                                                              "msg": "Field required", "input": body}])
        now = iso(time.time())
        doc = {"id": str(uuid.uuid4()), "automation_id": aid, "inputs": body["inputs"], "error": None,
               "status": "NEW", "created_at": now, "updated_at": now, "steps": [], "steps_count": 0,
               "current_step": None}
        self.state.add("generic", doc)
        return Reply(201, doc)

    def generic_cancel(self, req: Request, aid: str, rid: str) -> Reply:
        with self.state.lock:
            doc, err = self._generic_session(aid, rid)
            if err:
                return err
            assert doc is not None
            if doc.get("status") not in ("NEW", "RUNNING"):
                return vendor_error("generic", 409, f"Session is already {doc.get('status')}")
            doc = self.state.materialize("generic", rid)
            assert doc is not None
            doc.update(status="FAILED", error="Session cancelled", current_step=None, updated_at=iso(time.time()))
        return Reply(200, doc)


# -- auth --------------------------------------------------------------------------

def check_auth(provider: str, req: Request, token: str, forbidden: set[str]) -> Reply | None:
    if provider == "tenant":
        given = req.headers.get("x-api-key")
    else:
        auth = req.headers.get("authorization", "")
        given = auth[7:] if auth.lower().startswith("bearer ") else None
    if given and given in forbidden:
        msg = {"plannr": "This action is unauthorized.", "sendrealm": "This token may not read automation runs",
               "tenant": "Permission denied: Cannot read automation", "generic": "Not enough permissions"}[provider]
        return vendor_error(provider, 403, msg, code="FORBIDDEN" if provider == "tenant" else "forbidden")
    if given == token:
        return None
    # Never echo what was sent: a wrong token may be a real one for another service.
    if provider == "plannr":
        return vendor_error("plannr", 401, "Unauthenticated.")
    if provider == "sendrealm":
        return vendor_error("sendrealm", 401, "Invalid or missing API token")
    if provider == "tenant":
        return vendor_error("tenant", 401, "Invalid API key" if given else "API key required", code="UNAUTHORIZED")
    return vendor_error("generic", 401, "Not authenticated" if not given else "Invalid authentication credentials",
                        headers={"WWW-Authenticate": "Bearer"})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real API
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stalls
    server_version = "apiserver/1.0"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read server.requests instead
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        owner = self.server.owner
        if owner._httpd is not self.server:
            # Stopped (or restarted): a kept-alive connection of the old server is
            # dropped without an answer, as a server that went away drops it.
            self.close_connection = True
            return
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = json.loads(raw) if raw else None
            bad_json = False
        except ValueError:
            body, bad_json = None, True
        host = headers.get("host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        req = Request(method, split.path, parse_qs(split.query, keep_blank_values=True), headers, body,
                      f"http://{host}")
        entry = {"method": method, "path": req.path, "query": req.query,
                 "headers": {k: ("[redacted]" if k in SECRET_HEADERS else v) for k, v in headers.items()},
                 "body": body, "status": None}
        owner._record(entry)
        reply = self._dispatch(owner, req, bad_json)
        entry["status"] = reply.status
        self._send(reply)

    def _dispatch(self, owner: ApiServer, req: Request, bad_json: bool) -> Reply:
        latency = owner.faults.latency_ms
        if latency:
            time.sleep(latency / 1000)
        provider, handler, params, exists = owner.api.match(req.method, req.path)
        fault = owner.faults.take(req.path, req.method)
        if fault is not None:
            return fault_reply(provider, fault)
        if handler is None:
            if provider == "generic":  # FastAPI redirects to the path with/without the trailing slash
                alt = req.path[:-1] if req.path.endswith("/") else req.path + "/"
                if owner.api.match(req.method, alt)[1] is not None:
                    q = urlsplit(self.path).query
                    return Reply(307, b"", {"Location": alt + ("?" + q if q else "")}, raw=b"")
            if exists:
                return vendor_error(provider, 405, "Method Not Allowed")
            return vendor_error(provider, 404, "Not Found")
        denied = check_auth(provider, req, owner.token, owner.state.forbidden_tokens)
        if denied:
            return denied
        if bad_json:
            return vendor_error(provider, 422 if provider in ("plannr", "generic") else 400, "Malformed JSON body")
        try:
            return handler(req, **params)
        except BadParam as exc:
            status = 422 if provider in ("plannr", "generic") else 400
            return vendor_error(provider, status, f"Invalid value for {exc.name}: {exc.value!r}",
                                details=[{"loc": ["query", exc.name], "msg": "invalid integer", "input": exc.value}]
                                if provider == "generic" else None)

    def _send(self, reply: Reply) -> None:
        if reply.raw is not None:
            data = reply.raw
        else:
            data = json.dumps(reply.body, ensure_ascii=False).encode()
        self.send_response(reply.status)
        if data or reply.status != 307:
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 drops SYNs when a client opens many connections at once
    owner: ApiServer


class ApiServer:
    """The test server. ``start()`` binds and serves in a thread; ``stop()`` shuts it down.

    Knobs: ``faults`` (see :class:`Faults`), ``state`` (runs, ``generate(provider, n)``,
    ``plannr_wrapped``, ``tenant_nested``, ``generic_bare``, ``forbidden_tokens``).
    ``requests`` is the request log: method, path, query, headers (secrets redacted),
    JSON body and the status answered.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, token: str = DEFAULT_TOKEN,
                 latency_ms: float = 0, seeds: bool = True, runs: int = 0, log_limit: int = 10_000):
        self.host, self.port, self.token = host, port, token
        self.state = State(seeds=seeds)
        for provider in PROVIDERS if runs else ():
            self.state.generate(provider, runs)
        self.faults = Faults(latency_ms)
        self.api = Api(self.state)
        self._log: deque[dict] = deque(maxlen=log_limit)
        self._log_lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> str:
        self._httpd = _HTTPServer((self.host, self.port), _Handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="apiserver", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ApiServer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- helpers for tests
    def env(self, provider: str, *, automation: str | None = None, token: str | None = None,
            **extra: str) -> dict[str, str]:
        """AUTORUN_* variables that point the CLI at this server."""
        out = {"AUTORUN_PROVIDER": provider, "AUTORUN_BASE_URL": self.url,
               "AUTORUN_TOKEN": self.token if token is None else token}
        if automation:
            out["AUTORUN_AUTOMATION_ID"] = automation
        out.update(extra)
        return out

    def _record(self, entry: dict) -> None:
        with self._log_lock:
            self._log.append(entry)

    @property
    def requests(self) -> list[dict]:
        with self._log_lock:
            return list(self._log)

    def requests_to(self, path_part: str, method: str | None = None) -> list[dict]:
        return [r for r in self.requests if path_part in r["path"] and (method is None or r["method"] == method)]

    def clear_requests(self) -> None:
        with self._log_lock:
            self._log.clear()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default=DEFAULT_TOKEN)
    ap.add_argument("--runs", type=int, default=0, help="generated runs per provider")
    ap.add_argument("--latency-ms", type=float, default=0)
    ap.add_argument("--no-seeds", action="store_true", help="serve generated runs only")
    ap.add_argument("--rate-limit-every", type=int, default=0, metavar="N",
                    help="answer every Nth request 429 (a rate-limit storm)")
    ap.add_argument("--retry-after", default="1", help="Retry-After of those 429s (seconds or an HTTP date)")
    args = ap.parse_args(argv)
    server = ApiServer(host=args.host, port=args.port, token=args.token, latency_ms=args.latency_ms,
                       seeds=not args.no_seeds, runs=args.runs, log_limit=1000)
    if args.rate_limit_every:
        server.faults.rate_limit(times=None, retry_after=args.retry_after, every=args.rate_limit_every)
    server.start()
    print(server.url, flush=True)
    print(f"apiserver: {args.runs} generated runs per provider; plannr blueprint {PLANNR_BLUEPRINT}, "
          f"sendrealm automation {SENDREALM_AUTOMATION}, generic automation {GENERIC_AUTOMATION}",
          file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
