"""A local automation definition (TOML) with the shape of a recorded run of any provider.

One step per recorded step, in order, with its kind; waits with their recorded event
and timeout; the branch the run took. Values the run does not record are guessed,
and every line says which it is (``# recorded: …`` / ``# guessed: …``). The draft is
built so that ``replay`` of the run against it matches: a vendor step the local
engine has no kind for becomes an ``http_request``, whose sandboxed outcome replay
takes from the recorded step (completed or failed), just as it injects the recorded
events. Values are written with tomli-w; the result is checked by the engine's own
loader before it is returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autorun_cli.errors import UsageError
from autorun_cli.model import Run, Step, Wait
from autorun_cli.status import TERMINAL
from autorun_cli.timeutil import parse_ts

KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
MESSAGE_TYPES = {"send_email_template": "email", "send_push_template": "push", "send_sms": "sms"}
LOCAL_TYPES = ("send_email_template", "send_push_template", "send_sms", "http_request", "delay",
               "wait_for_event", "condition", "fail")
# Statuses of a step that never ran.
NOT_RUN = ("pending", "skipped")
# The recipient of a message step that must fail on replay, as the recorded one did.
UNSET_RECIPIENT = "{{ payload.autorun_draft.unset_recipient }}"
HOLD_EVENT = "autorun.draft.hold"


def toml_value(value: Any) -> str:
    """``value`` as TOML, written by tomli-w (an inline table for a dict)."""
    import tomli_w

    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    text = tomli_w.dumps({"v": value})
    return text.split(" = ", 1)[1].rstrip("\n")


def _key(name: str) -> str:
    return name if re.match(r"^[A-Za-z0-9_-]+$", name) else toml_value(name)


def _one_line(text: Any, limit: int = 100) -> str:
    from autorun_cli.textsafe import clean

    flat = " ".join(clean(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def duration_text(seconds: float) -> str:
    """A duration as a definition takes it: the largest unit that holds it exactly
    (30m, 2h, 90s), else milliseconds."""
    ms = max(1, round(seconds * 1000))
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


@dataclass
class Field:
    name: str
    value: Any
    note: str = ""  # "recorded: …" / "guessed: …"


@dataclass
class DraftStep:
    recorded: Step
    key: str
    attempts: int
    fields: list[Field] = field(default_factory=list)
    header: list[str] = field(default_factory=list)

    def add(self, name: str, value: Any, note: str = "") -> None:
        self.fields.append(Field(name, value, note))

    def set(self, name: str, value: Any, note: str = "") -> None:
        for f in self.fields:
            if f.name == name:
                f.value, f.note = value, note
                return
        self.add(name, value, note)


def _ident(step: Step) -> str | None:
    return step.key or step.name or step.id


def last_attempts(run: Run) -> tuple[list[Step], dict[str, int]]:
    """One step per key (its last attempt, where its first stood) and the attempts of each."""
    order: list[str] = []
    last: dict[str, Step] = {}
    counts: dict[str, int] = {}
    for i, step in enumerate(run.steps):
        ident = _ident(step) or f"step_{i + 1}"
        if ident not in last:
            order.append(ident)
        last[ident] = step
        counts[ident] = counts.get(ident, 0) + 1
    return [last[i] for i in order], {i: counts[i] for i in order}


def _slug(text: str, taken: set[str], fallback: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_.\-]+", "_", text).strip("_.-")[:60] or fallback
    if not base[0].isalnum():
        base = "s" + base
    key, n = base, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    return key


def _wait_of(run: Run, step: Step) -> Wait | None:
    found = None
    for wait in run.waits:
        if wait.step_key and wait.step_key in (step.key, step.name):
            found = wait  # the last one: the wait of the last attempt
    return found


def _since(later: str | None, earlier: datetime | None) -> float | None:
    end = parse_ts(later)
    if end is None or earlier is None:
        return None
    return (end - earlier).total_seconds()


class Drafter:
    def __init__(self, run: Run, source: str):
        self.run = run
        self.source = source
        self.t0 = parse_ts(run.started_at) or parse_ts(run.created_at) or (
            parse_ts(run.trigger.occurred_at) if run.trigger else None)
        self.ended = run.status in TERMINAL

    # -- the definition's head ----------------------------------------------------
    def head(self) -> list[Field]:
        run = self.run
        auto = run.automation_id
        if auto and KEY_RE.match(auto):
            id_field = Field("id", auto, "recorded: the run's automation")
        else:
            id_field = Field("id", _slug(auto or run.name or "", set(), "draft"),
                             f"guessed from the run's automation {_one_line(auto)!s}" if auto
                             else "guessed: the run names no automation")
        name = run.name or auto
        fields = [
            id_field,
            Field("name", name or id_field.value, "recorded: the run's name" if run.name else
                  ("recorded: the automation" if auto else "guessed")),
        ]
        event = run.trigger.event if run.trigger else None
        fields.append(Field("trigger", event, "recorded: the event that started the run") if event
                      else Field("trigger", f"{id_field.value}.started", "guessed: the run does not record its trigger event"))
        kind = run.identity.type if run.identity and run.identity.type else None
        value = run.identity.value if run.identity else None
        path = self.identity_path()
        if value is None:
            note = "guessed: the run records no identity; replay uses its run ID as the value"
        else:
            note = (("recorded: the identity type; " if kind else "guessed: the identity type; ")
                    + f"guessed: the payload field it comes from (replay puts the recorded {kind or 'identity'} there)")
        fields.append(Field("identity", {"type": kind or ("email" if value is not None else "id"), "from": path}, note))
        return fields

    def identity_path(self) -> str:
        kind = self.run.identity.type if self.run.identity else None
        if kind and re.match(r"^[A-Za-z0-9_]+$", kind):
            return kind
        return "identity"

    # -- steps ----------------------------------------------------------------------
    def steps(self) -> list[DraftStep]:
        run = self.run
        recorded, attempts = last_attempts(run)
        if not recorded:
            raise UsageError(
                f"run {run.id} recorded no steps: a definition needs at least one, and there is nothing to draft it from",
                hint="draft from a run of the same automation that got further (`autorun list --automation ID`)",
                code="no_steps",
            )
        if self.ended and all(s.status in NOT_RUN for s in recorded):
            raise UsageError(
                f"run {run.id} ended {run.status} without running any of its {len(recorded)} steps (all {recorded[0].status}): "
                "there is nothing to draft a definition from",
                hint="draft from a run of the same automation that ran its steps",
                code="no_steps",
            )
        taken: set[str] = set()
        out: list[DraftStep] = []
        for i, step in enumerate(recorded):
            ident = _ident(step) or f"step_{i + 1}"
            if step.key and KEY_RE.match(step.key) and step.key not in taken:
                key = step.key
            else:
                key = _slug(step.key or step.name or step.id or "", taken, f"step_{i + 1}")
            taken.add(key)
            out.append(DraftStep(step, key, attempts[ident]))
        # A cancelled run whose recording names no interrupted step: a wait holds the
        # run after the last step that ran, until replay delivers the cancellation.
        if run.status == "cancelled" and not any(s.status == "cancelled" for s in recorded):
            ran = [i for i, d in enumerate(out) if d.recorded.status not in NOT_RUN]
            at = ran[-1] + 1 if ran else 0
            hold = Step(key=_slug("cancelled_here", taken, "cancelled_here"), status="cancelled")
            taken.add(hold.key or "")
            holder = DraftStep(hold, hold.key or "cancelled_here", 1)
            holder.header.append("guessed: the run was cancelled after the steps above; this wait holds it "
                                 "here until replay delivers the recorded cancellation")
            out.insert(at, holder)
        for i, d in enumerate(out):
            self.fill(d, out, i)
        return out

    def _next_target(self, steps: list[DraftStep], i: int) -> str | None:
        """Where the run went after step ``i``: None for the following step, a key, or "end".

        In a run that ended, steps that never ran are jumped over (a step that
        ended the run itself, failed or timed out, has nothing to jump)."""
        if not self.ended or steps[i].recorded.status in ("failed", "timed_out", "cancelled"):
            return None
        for j in range(i + 1, len(steps)):
            if steps[j].recorded.status not in NOT_RUN:
                return None if j == i + 1 else steps[j].key
        return None if i + 1 == len(steps) else "end"

    def _following(self, steps: list[DraftStep], i: int) -> str:
        target = self._next_target(steps, i)
        if target is not None:
            return target
        return steps[i + 1].key if i + 1 < len(steps) else "end"

    def fill(self, d: DraftStep, steps: list[DraftStep], i: int) -> None:
        step, run = d.recorded, self.run
        status = step.status
        kind = step.type
        wait = _wait_of(run, step) if step.key or step.name else None
        described = f"step {i + 1} of the run" + (f", {_one_line(_ident(step))!r}" if _ident(step) else "")
        if kind:
            described += f" ({_one_line(kind)})"
        d.header.insert(0, f"recorded: {described}, {status}" + (f" after {d.attempts} attempts" if d.attempts > 1 else ""))
        if step.key and step.key == d.key:
            d.add("key", d.key, "recorded")
        else:
            d.add("key", d.key, f"guessed: a key the local engine accepts for {_one_line(_ident(step))!r}" if _ident(step)
                  else "guessed: the step has no key")
        if step.name:
            d.add("name", step.name, "recorded")
        elif step.key and step.key != d.key:
            d.add("name", step.key, "recorded: the step's key, so replay matches it")
        if wait is not None or kind == "wait_for_event" or status in ("cancelled", "timed_out") and kind not in MESSAGE_TYPES:
            self._wait(d, steps, i, wait)
        elif kind in MESSAGE_TYPES:
            self._message(d, steps, i)
        elif kind == "condition":
            self._condition(d, steps, i)
        elif kind == "delay":
            self._delay(d, steps, i)
        elif kind == "fail":
            d.add("type", "fail", "recorded")
            d.add("message", step.error or "failed on purpose", "recorded: the step's error" if step.error else "guessed")
        else:
            self._http(d, steps, i)

    def _next(self, d: DraftStep, steps: list[DraftStep], i: int) -> None:
        target = self._next_target(steps, i)
        if target is not None:
            d.add("next", target, "recorded: the run went on there (the steps between never ran)")

    def _message(self, d: DraftStep, steps: list[DraftStep], i: int) -> None:
        step = d.recorded
        kind = step.type or ""
        d.add("type", kind, "recorded")
        channel = MESSAGE_TYPES[kind]
        msg = next((m for m in self.run.messages if m.step_key in (step.key, step.name) and m.channel == channel), None)
        title = msg.title if msg and msg.title else None
        if kind == "send_sms":
            d.add("text", title or step.name or d.key, "recorded: the message sent" if title else "guessed")
        else:
            d.add("template", d.key, "guessed: the run records no template name")
            d.add("subject" if kind == "send_email_template" else "title", title or step.name or d.key,
                  "recorded: the message sent" if title else "guessed")
        if step.status == "failed":
            error = _one_line(step.error or (self.run.error.message if self.run.error else None) or "failed")
            d.add("to", UNSET_RECIPIENT, f"guessed: the recorded step failed ({error}); an unset recipient makes "
                  "it fail on replay too — replace it with what really fails")
        self._retry(d)
        self._next(d, steps, i)

    def _condition(self, d: DraftStep, steps: list[DraftStep], i: int) -> None:
        branch = d.recorded.branch
        d.add("type", "condition", "recorded")
        d.add("field", "payload", "guessed: the run records the branch, not the test")
        d.add("op", "not_exists" if branch == "false" else "exists",
              f"guessed: so the {branch or 'true'} branch is taken, as recorded" if branch else "guessed")
        target = self._following(steps, i)
        d.add("on_false" if branch == "false" else "on_true", target, f"recorded: the {branch or 'true'} branch led there")

    def _delay(self, d: DraftStep, steps: list[DraftStep], i: int) -> None:
        step = d.recorded
        d.add("type", "delay", "recorded")
        seconds = step.duration_ms / 1000 if step.duration_ms else _since(step.finished_at, parse_ts(step.started_at))
        if seconds and seconds > 0:
            d.add("duration", duration_text(seconds), "recorded: how long the step took")
        else:
            d.add("duration", "1s", "guessed: the run does not record how long it waited")
        self._next(d, steps, i)

    def _http(self, d: DraftStep, steps: list[DraftStep], i: int) -> None:
        step = d.recorded
        d.add("type", "http_request", "recorded" if step.type == "http_request" else (
            f"guessed: the local engine has no {_one_line(step.type)!r} step; an HTTP request stands in, and replay "
            "answers it as the recorded step ended" if step.type else
            "guessed: the run records no step kind; an HTTP request stands in, and replay answers it as the "
            "recorded step ended"))
        method, url = None, None
        if step.type == "http_request" and isinstance(step.info, str):
            m = re.match(r"^(?:sandbox: )?(GET|POST|PUT|PATCH|DELETE) (https?://\S+)", step.info)
            if m:
                method, url = m.group(1), m.group(2)
        if url:
            d.add("url", url, "recorded")
            d.add("method", method, "recorded")
        else:
            d.add("url", f"https://example.invalid/autorun-draft/{d.key}", "guessed: replace it with the real endpoint")
        self._retry(d)
        self._next(d, steps, i)

    def _retry(self, d: DraftStep) -> None:
        if d.attempts > 1:
            d.add("retry", {"attempts": d.attempts, "backoff": "1s", "factor": 1.0},
                  f"recorded: {d.attempts} attempts; guessed: the backoff between them")

    def _wait(self, d: DraftStep, steps: list[DraftStep], i: int, wait: Wait | None) -> None:
        step = d.recorded
        d.add("type", "wait_for_event", "recorded" if step.type == "wait_for_event" else (
            f"guessed: the step was {step.status} while it waited; a wait stands in for the "
            + (f"{_one_line(step.type)!r} step" if step.type else "step")))
        if wait is not None and wait.event:
            d.add("event", wait.event, "recorded")
        else:
            event = HOLD_EVENT if step.status == "cancelled" else f"{d.key}.done"
            d.add("event", event, "guessed: the run records no event for this step")
        d.add("match", {"field": self.identity_path()}, "guessed: the event's payload field that holds the run's identity")
        start = parse_ts(step.started_at) or self.t0
        seconds = None
        if wait is not None:
            seconds = _since(wait.timeout_at, start) or _since(wait.timed_out_at, start)
        if seconds is not None and seconds > 0:
            d.add("timeout", duration_text(seconds), f"recorded: the deadline {wait.timeout_at or wait.timed_out_at}"
                  if wait else "recorded")
        elif step.status == "timed_out" or (wait is not None and wait.status == "timed_out"):
            took = step.duration_ms / 1000 if step.duration_ms else _since(step.finished_at, start)
            d.add("timeout", duration_text(took if took and took > 0 else 60),
                  "recorded: how long the step took" if took and took > 0 else "guessed: the run records no deadline")
        outcome = (wait.status if wait else None) or ("timed_out" if step.status == "timed_out" else None)
        branch = (step.branch or (wait.branch if wait else None) or "").replace("timeout", "timed_out")
        target = self._following(steps, i)
        if outcome == "received" or branch == "received":
            d.add("on_received", target, "recorded: the event arrived and the run went on there")
        elif outcome == "timed_out" or branch == "timed_out":
            if self.run.status == "timed_out" and not any(s.recorded.status not in NOT_RUN for s in steps[i + 1:]):
                d.header.append("recorded: the timeout ended the run (no on_timeout)")
            else:
                d.add("on_timeout", target, "recorded: the wait timed out and the run went on there")
        else:
            self._next(d, steps, i)

    # -- TOML -------------------------------------------------------------------------
    def toml(self) -> str:
        from autorun_cli.textsafe import clean

        run = self.run
        head = self.head()
        steps = self.steps()
        when = run.started_at or run.created_at or "an unknown time"
        lines = [
            f"# Drafted by `autorun automations draft {_one_line(self.source, 80)}` from {run.provider} run "
            f"{_one_line(run.id, 80)} ({run.status}, started {_one_line(when, 40)}).",
            "# Each value says where it came from: \"recorded\" is the run's own, \"guessed\" is not in",
            "# the recording — edit those. Check it with `autorun replay "
            + _one_line(self.source, 80) + " -d FILE` (it matches the run as drafted).",
        ]
        width = max(len(f"{f.name} = {toml_value(f.value)}") for f in head)
        for f in head:
            lines.append(self._line(f, width))
        for d in steps:
            lines += ["", "[[steps]]"]
            lines += [f"# {clean(h)}" for h in d.header]
            width = max(len(f"{f.name} = {toml_value(f.value)}") for f in d.fields)
            lines += [self._line(f, width) for f in d.fields]
        text = "\n".join(lines) + "\n"
        self._check(text)
        return text

    @staticmethod
    def _line(f: Field, width: int) -> str:
        from autorun_cli.textsafe import clean

        body = f"{_key(f.name)} = {toml_value(f.value)}"
        if not f.note:
            return body
        note = " ".join(clean(f.note).split())
        return f"{body.ljust(width)}  # {note}"

    def _check(self, text: str) -> None:
        """The draft must load: a failure here is a bug in the drafter, said plainly."""
        from autorun_cli.engine import parse_toml

        try:
            parse_toml(text)
        except UsageError as exc:
            raise UsageError(
                f"the draft of run {self.run.id} does not load: {exc.message}",
                hint="this is a bug in autorun's drafter; report it with the run (`autorun show ID -o json --raw`)",
            ) from None


def draft(run: Run, source: str) -> str:
    """The TOML text of a definition with the shape of ``run`` (see the module docstring)."""
    return Drafter(run, source).toml()
