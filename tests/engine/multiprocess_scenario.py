"""One of several processes sharing a store (run by test_engine_multiprocess.py).

    python multiprocess_scenario.py DB URL NAME N

Triggers N shared events (every process sends the same IDs) and N of its own, then
works until no timer is due within a few seconds. Real clock, short delays.
"""

from __future__ import annotations

import sys

from autorun_cli.engine import Engine, SQLiteStore, parse_toml

DEFINITION = """
id = "shared"
name = "Shared store"
trigger = "signup"
identity = {{ type = "email", from = "email" }}

[[steps]]
key = "welcome"
type = "send_email_template"
template = "welcome"
subject = "Welcome"

[[steps]]
key = "crm"
type = "http_request"
url = "{url}/crm"
body = {{ email = "{{{{ payload.email }}}}" }}

[[steps]]
key = "pause"
type = "delay"
duration = "200ms"

[[steps]]
key = "tip"
type = "send_sms"
to = "+15550000"
text = "A tip"
"""


def main() -> None:
    db, url, name, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    engine = Engine(SQLiteStore(db))
    engine.load(parse_toml(DEFINITION.format(url=url), "shared"))
    for i in range(n):
        engine.trigger("signup", {"email": f"shared{i}@example.com"}, event_id=f"shared-{i}")
        engine.trigger("signup", {"email": f"{name}{i}@example.com"}, event_id=f"{name}-{i}")
        if i % 5 == 0:
            engine.work()
    engine.work(settle=3.0)
    engine.close()


if __name__ == "__main__":
    main()
