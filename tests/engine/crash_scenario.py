"""A scenario that passes every kind of commit point, run in a subprocess that may be
killed (os._exit) at the Nth commit hook, then resumed by running it again.

    python crash_scenario.py DB URL CRASH_AT [RECORD_FILE]

(test_engine_crash calls ``main`` in processes forked from a warmed-up one instead:
each still dies by os._exit, without paying for an interpreter start and the imports.)

CRASH_AT = 0 runs to the end. The scenario is a client that retries from the start
with the same event IDs, as a real one would after a crash: triggers and events are
deduplicated by ID, so re-running it is safe.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from autorun_cli.engine import Engine, SQLiteStore, VirtualClock, parse_toml

T0 = 1_800_000_000.0
CRASH_EXIT = 86

DEFINITION = """
id = "crashy"
name = "Crash test"
trigger = "order.completed"
identity = {{ type = "email", from = "customer.email" }}

[[steps]]
key = "receipt"
type = "send_email_template"
template = "receipt"
subject = "Receipt {{{{ payload.order_id }}}}"

[[steps]]
key = "webhook"
type = "http_request"
url = "{url}/orders"
body = {{ order = "{{{{ payload.order_id }}}}" }}
retry = {{ attempts = 3, backoff = "1s" }}

[[steps]]
key = "cool_off"
type = "delay"
duration = "5s"

[[steps]]
key = "wait_for_open"
type = "wait_for_event"
event = "email.opened"
match = {{ field = "email" }}
timeout = "60s"
on_received = "push"
on_timeout = "sms"

[[steps]]
key = "push"
type = "send_push_template"
template = "follow_up"
title = "Thanks for opening"
next = "check"

[[steps]]
key = "sms"
type = "send_sms"
to = "{{{{ payload.customer.phone }}}}"
text = "Your receipt is waiting"

[[steps]]
key = "check"
type = "condition"
field = "payload.total"
op = "gt"
value = 100
on_true = "vip"
on_false = "end"

[[steps]]
key = "vip"
type = "send_email_template"
template = "vip"
subject = "A gift for you"
"""

ORDERS = {
    "A": {"order_id": "A", "total": 250, "customer": {"email": "a@example.com", "phone": "+1555001"}},
    "B": {"order_id": "B", "total": 20, "customer": {"email": "b@example.com", "phone": "+1555002"}},
}
# What must exist at the end: A's receipt was opened (push, then vip), B's timed out (sms).
EXPECTED = {"A": ["receipt", "push", "vip"], "B": ["receipt", "sms"]}


def run(db: str, url: str, hook=None) -> Engine:
    # One request at a time: the commit points are then the same on every run.
    engine = Engine(SQLiteStore(db), VirtualClock(T0), crash_hook=hook, concurrency=1)
    engine.work()  # take over anything a crashed process left, fire what is due
    engine.load(parse_toml(DEFINITION.format(url=url), "crashy"))
    engine.trigger("order.completed", ORDERS["A"], event_id="trigger-A")
    engine.trigger("order.completed", ORDERS["B"], event_id="trigger-B")
    engine.advance_to(T0 + 10)  # the webhook retry (503 first), then the delays
    engine.send_event("email.opened", {"email": "a@example.com"}, event_id="open-A")
    engine.advance_to(T0 + 200)  # B's wait times out
    engine.work()
    return engine


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    db, url, crash_at = argv[0], argv[1], int(argv[2])
    record = argv[3] if len(argv) > 3 else None
    calls = 0
    labels: list[str] = []

    def hook(label: str) -> None:
        nonlocal calls
        calls += 1
        labels.append(label)
        if calls == crash_at:
            os._exit(CRASH_EXIT)

    run(db, url, hook)
    if record:
        Path(record).write_text("\n".join(labels))


if __name__ == "__main__":
    main()
