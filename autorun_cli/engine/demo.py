"""``autorun demo``: load the bundled automations and produce one run of each ending.

On an empty home this leaves runs that are completed (welcome pack; a receipt that
was opened), waiting (a receipt nobody has opened yet, 30 minutes to go), timed out
(a receipt nobody opened) and failed (a webhook whose endpoint refuses connections,
after 3 attempts).

The receipts are honest about time: the timed-out one is started by an engine on
a :class:`VirtualClock` set 31 minutes in the past, on the same store, which then
moves its clock forward to now and so fires the 30-minute timeout at its due time;
its timeline shows a run that began 31 minutes ago, and nothing waits 30 real
minutes. The opened one is started 5 minutes in the past the same way and its open
event is delivered 90 seconds after the receipt (as in the Sendrealm example). Each
run's ``note`` says so.

Every trigger and event has a fixed ID, so a second demo starts nothing new and
sends nothing twice; it just reports the same runs (the waiting receipt will have
timed out if 30 minutes have passed, as it should).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from autorun_cli.engine.clock import VirtualClock
from autorun_cli.engine.core import Engine

BACKDATE_SECONDS = 31 * 60
OPENED_STARTED_AGO = 5 * 60


def demo_dir() -> Path:
    return Path(str(resources.files("autorun_cli") / "demo"))


# (label, expected status, event, event id, payload)
_TRIGGERS: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("welcome pack", "completed", "user.signed_up", "demo-signup-ada",
     {"user": {"email": "ada@example.com", "first_name": "Ada", "phone": "+15550100"}}),
    ("receipt, opened", "completed", "order.completed", "demo-order-1001",
     {"order_id": "ord_1001", "total": 42.5, "customer": {"email": "olivia@example.com"}}),
    ("receipt, not opened yet", "waiting", "order.completed", "demo-order-1002",
     {"order_id": "ord_1002", "total": 18.0, "customer": {"email": "noah@example.com"}}),
    ("receipt, never opened", "timed_out", "order.completed", "demo-order-1003",
     {"order_id": "ord_1003", "total": 7.25, "customer": {"email": "emma@example.com"}}),
    ("invoice webhook", "failed", "invoice.paid", "demo-invoice-77",
     {"invoice_id": "inv_77", "amount": 120, "customer": {"email": "billing@example.com"}}),
]


NOTES = {
    "receipt, opened": f"started on a virtual clock {OPENED_STARTED_AGO // 60} minutes in the past, opened 90 s later",
    "receipt, never opened": f"started on a virtual clock {BACKDATE_SECONDS // 60} minutes in the past",
}


def run_demo(engine: Engine, *, settle: float = 10.0) -> dict[str, Any]:
    """Load the demo automations into ``engine`` and produce the demo runs.

    Returns ``{"definitions": [...], "runs": [{"label", "run_id", "automation_id",
    "status", "expected", "new", "note"}], "started": N, "store": path}``.
    """
    engine.work()  # anything an earlier demo left due (e.g. the waiting receipt's timeout)
    loaded = engine.load(demo_dir())
    new: set[str] = set()
    by_label = {t[0]: t for t in _TRIGGERS}

    def trigger(label: str, eng: Engine) -> None:
        _, _, event, event_id, payload = by_label[label]
        new.update(eng.trigger(event, payload, event_id=event_id))

    now = engine.clock.time()

    def in_the_past(seconds_ago: float) -> Engine:
        # A second engine on the same store whose clock is behind: its runs start in
        # the past, and moving its clock forward fires their timers at their due times.
        return Engine(engine.store, VirtualClock(now - seconds_ago), sandbox=engine.sandbox, owner=engine.owner)

    trigger("welcome pack", engine)

    # Like the Sendrealm example: the receipt is opened a minute and a half after it was sent.
    past = in_the_past(OPENED_STARTED_AGO)
    trigger("receipt, opened", past)
    past.advance_to(now - OPENED_STARTED_AGO + 90)
    past.send_event("email.opened", {"email": "olivia@example.com"}, event_id="demo-open-1001")

    past = in_the_past(BACKDATE_SECONDS)
    trigger("receipt, never opened", past)
    past.advance_to(now)

    trigger("receipt, not opened yet", engine)
    trigger("invoice webhook", engine)
    engine.work(settle=settle)  # the webhook's retries are due within a second

    runs = []
    for label, expected, _event, event_id, _payload in _TRIGGERS:
        for r in engine.list_runs(event_id=event_id):
            runs.append({
                "label": label, "run_id": r["id"], "automation_id": r["automation_id"],
                "status": r["status"], "expected": expected, "new": r["id"] in new,
                "note": NOTES.get(label),
            })
    return {
        "definitions": [{"id": x.id, "version": x.version, "created": x.created} for x in loaded],
        "runs": runs,
        "started": len(new),
        "store": getattr(engine.store, "path", None),
    }
