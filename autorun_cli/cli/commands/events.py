"""``autorun events send``: deliver an event so waiting runs resume.

On sendrealm it is ``POST /events``; on the local engine the engine matches it to
waiting runs. Either way the provider's ``send_event`` does the work; this module
parses the options and reports the answer.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from autorun_cli.cli.options import Opts, common
from autorun_cli.cli.session import Session

app = typer.Typer(help="Send events that resume waiting runs (sendrealm POST /events, the local engine).", no_args_is_help=True)

CONTACT = "Contact"


def parse_payload(text: str | None) -> dict[str, Any]:
    """``--payload '{"a": 1}'`` or ``--payload @file.json`` (``@-`` reads stdin)."""
    import json

    from autorun_cli import inputs, jsondoc
    from autorun_cli.errors import UsageError

    if text is None:
        return {}
    source = "--payload"
    if text.startswith("@"):
        path = text[1:]
        if not path:
            raise UsageError("--payload @ names no file", hint="pass --payload @payload.json, or @- to read stdin")
        source = "the payload on stdin" if path == "-" else f"payload file {path}"
        try:
            # Bounded: `--payload @/dev/zero` stops at the limit (exit 2).
            text = inputs.read_text(path, what="a payload", hint="save the payload as a UTF-8 JSON object", origin=source)
        except UsageError as exc:
            if exc.message.startswith("cannot read"):
                exc.hint = "check the path, or pass the JSON inline: --payload '{\"key\": \"value\"}'"
            raise
    try:
        # jsondoc: a payload nested 100,000 deep is bad input, not an internal error.
        value = jsondoc.loads(text)
    except ValueError as exc:
        detail = f"line {exc.lineno} column {exc.colno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise UsageError(
            f"{source} is not valid JSON ({detail})",
            hint="quote it for the shell, e.g. --payload '{\"order_id\": 42}', or put it in a file: --payload @payload.json",
        ) from None
    if not isinstance(value, dict):
        raise UsageError(
            f"{source} must be a JSON object, not {type(value).__name__ if value is not None else 'null'}",
            hint="wrap the values in an object, e.g. --payload '{\"order_id\": 42}'",
        )
    return value


def _check_time(text: str | None) -> str | None:
    from autorun_cli.cli.values import iso_time

    return iso_time(text, "--occurred-at")


def _first(doc: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if doc.get(key) is not None:
            return doc[key]
    return None


def summarize(answer: Any) -> dict[str, Any]:
    """What the answer says, whatever its envelope: deduplicated?, resumed run IDs,
    the accepted event's ID and status. Understood keys (top level or in ``data``):
    ``deduplicated``/``duplicate``, ``status``, ``resumed``/``resumed_runs``/``resumed_run_ids``/``runs``
    (IDs or objects with ``id``) or ``resumed_count``, ``id``/``event_id``."""
    doc = answer if isinstance(answer, dict) else {}
    if isinstance(doc.get("data"), dict):
        doc = {**doc, **doc["data"]}
    status = _first(doc, "status", "result")
    status = status if isinstance(status, str) else None
    dedup = _first(doc, "deduplicated", "duplicate", "is_duplicate")
    deduplicated = dedup is True or str(dedup).lower() == "true" or (status or "").lower() in ("duplicate", "deduplicated")
    resumed_raw = _first(doc, "resumed_runs", "resumed", "resumed_run_ids", "runs", "run_ids")
    resumed: list[str] | None = None
    if isinstance(resumed_raw, list):
        resumed = []
        for item in resumed_raw:
            rid = (item.get("id") or item.get("run_id")) if isinstance(item, dict) else item
            if isinstance(rid, (str, int)) and not isinstance(rid, bool):
                resumed.append(str(rid))
    count = _first(doc, "resumed_count", "resumed_runs_count")
    if isinstance(count, bool) or not isinstance(count, int):
        count = len(resumed) if resumed is not None else None
    event_id = _first(doc, "event_id", "id")
    return {
        "deduplicated": deduplicated,
        "resumed": resumed,
        "resumed_count": count,
        "event_id": str(event_id) if isinstance(event_id, (str, int)) and not isinstance(event_id, bool) else None,
        "status": status,
    }


@app.command("send")
@common
def send_cmd(
    opts: Opts,
    event: Annotated[str, typer.Argument(metavar="EVENT", help="Event name, e.g. order.completed.", show_default=False)],
    payload: Annotated[str | None, typer.Option("--payload", metavar="JSON|@FILE", help="Event payload: a JSON object, or @file.json (@- reads stdin).", show_default=False)] = None,
    email: Annotated[str | None, typer.Option("--email", help="The contact the event is about, by email.", rich_help_panel=CONTACT, show_default=False)] = None,
    contact_id: Annotated[str | None, typer.Option("--contact-id", help="The contact, by the provider's contact ID.", rich_help_panel=CONTACT, show_default=False)] = None,
    external_id: Annotated[str | None, typer.Option("--external-id", help="The contact, by your own ID for it.", rich_help_panel=CONTACT, show_default=False)] = None,
    occurred_at: Annotated[str | None, typer.Option("--occurred-at", metavar="TIME", help="When the event happened (ISO 8601); default now, as the provider sees it.", show_default=False)] = None,
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key", metavar="KEY", help="Sending the same key again resumes nothing twice. Default: a fresh key, printed on stderr.", show_default=False)] = None,
    event_id: Annotated[str | None, typer.Option("--id", metavar="EVENT_ID", help="The event's ID: the same as --idempotency-key (the local engine's name for it).", show_default=False)] = None,
) -> None:
    """Send an event so runs waiting for it resume (sendrealm, local).

    Prints the runs it resumed, one ID per line (so `| xargs autorun watch` follows
    them); a repeated idempotency key is reported as a duplicate that resumed nothing.
    """
    from autorun_cli.errors import UsageError
    from autorun_cli.providers.base import EventRequest

    name = event.strip()
    if not name:
        raise UsageError("the event name is empty", hint="e.g. autorun events send order.completed --email a@example.com")
    if idempotency_key and event_id and idempotency_key != event_id:
        raise UsageError(
            "--id and --idempotency-key name the same thing and were given different values",
            hint="pass only one of them",
        )
    body = parse_payload(payload)
    when = _check_time(occurred_at)
    with Session(opts) as s:
        key = idempotency_key or event_id
        made = not key
        if not key:
            import uuid

            key = f"autorun-{uuid.uuid4()}"
        request = EventRequest(
            event=name,
            payload=body,
            email=email,
            contact_id=contact_id,
            external_id=external_id,
            occurred_at=when,
            idempotency_key=key,
        )
        from autorun_cli.errors import AutorunError, NotSupportedError, UsageError

        try:
            answer = s.provider.send_event(request)
        except (UsageError, NotSupportedError):
            raise  # refused before any request: the key was never used
        except (AutorunError, KeyboardInterrupt):
            if made:
                # The API may have taken the event: the same key sends it again safely.
                _print_key(key)
            raise
        if made:
            # Printed so the user can send the same event again without a duplicate.
            _print_key(key)
        facts = summarize(answer)
        mode = s.out.mode
        if mode in ("json", "ndjson"):
            if mode == "json":
                s.out.print_json(answer)
            else:
                s.out.ndjson(answer)
            if facts["deduplicated"]:
                s.out.info("duplicate event: nothing new resumed", style="yellow")
            return
        resumed = facts["resumed"] or []
        if mode == "table":
            if facts["deduplicated"]:
                s.out.info(f"duplicate event: nothing new resumed (idempotency key {key})", style="yellow")
            else:
                what = f"sent {name}"
                if facts["event_id"]:
                    what += f" (event {facts['event_id']})"
                if facts["resumed_count"] is None:
                    what += "; accepted" + (f", status {facts['status']}" if facts["status"] else "")
                elif facts["resumed_count"] == 0:
                    what += "; no waiting run matched"
                else:
                    n = facts["resumed_count"]
                    what += f"; resumed {n} run{'s' if n != 1 else ''}"
                s.out.info(what)
        for rid in resumed:
            s.out.line(rid)


def _print_key(key: str) -> None:
    sys.stderr.write(f"idempotency key: {key}\n")
    sys.stderr.flush()


def register(root: typer.Typer, name: str = "events") -> None:
    root.add_typer(app, name="events")
