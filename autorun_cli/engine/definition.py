"""Automation definitions: TOML validated with pydantic, then checked as a graph.

A definition file looks like::

    id = "order_receipt"
    name = "Order receipt"
    trigger = "order.completed"                        # event that starts a run
    identity = { type = "email", from = "customer.email" }   # dotted path in the payload

    [[steps]]
    key = "send_receipt"
    type = "send_email_template"
    template = "receipt"
    subject = "Your receipt for {{ payload.order_id }}"

    [[steps]]
    key = "wait_for_open"
    type = "wait_for_event"
    event = "email.opened"
    match = { field = "email" }    # event payload field compared with the run's identity
    timeout = "30m"
    on_received = "push_follow_up"
    # on_timeout omitted: a timeout ends the run `timed_out`; name a step (or "end") to
    # take a timeout path instead, and the run can still complete.

Steps run in list order unless ``next`` (or a branch: ``on_received``/``on_timeout``,
``on_true``/``on_false``) names another step key or ``"end"``. Every next step must
exist and no chain of next steps may loop back (no cycles at all, waits included), so
every run ends. Refusals are :class:`UsageError` (exit 2) naming the file and the field
path, e.g. ``steps[2].timeout``.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo

from autorun_cli.errors import UsageError, plain_words
from autorun_cli.timeutil import parse_duration

END = "end"
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
HINT = (
    "fix the field named above; `autorun automations validate FILE` checks a file without "
    "loading it, and the bundled demo automations (autorun_cli/demo/*.toml) are examples"
)


MAX_DURATION = 365 * 86400.0  # a year: longer waits, delays, backoffs and timeouts are mistakes


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a duration is a string like 30s, 15m, 2h or a number of seconds")
    try:
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            return parse_duration(value)
    except OverflowError:
        return math.inf
    raise ValueError("a duration is a string like 30s, 15m, 2h or a number of seconds")


def _duration(value: Any, info: ValidationInfo) -> float:
    """Seconds, finite, more than 0 and at most 365 days. A stored definition loaded
    by an earlier version may hold a value out of that range (``inf``, 99999999d):
    reading it back (``info.context['stored']``) clamps it, so the store stays usable."""
    seconds = _seconds(value)
    stored = bool(info.context and info.context.get("stored"))
    if math.isnan(seconds):
        if stored:
            return MAX_DURATION
        raise ValueError("a duration must be a number of seconds, not nan")
    if seconds < 0 and not stored:
        raise ValueError("a duration cannot be negative")
    if seconds <= 0 or seconds > MAX_DURATION:
        if stored:
            return min(max(seconds, 0.001), MAX_DURATION)
        shown = value if isinstance(value, str) else repr(value)
        raise ValueError(f"{shown} is out of range: a duration must be more than 0 and at most 365 days")
    return seconds


Duration = Annotated[float, BeforeValidator(_duration)]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Retry(_M):
    attempts: int = Field(default=1, ge=1, le=100)
    backoff: Duration = 1.0
    factor: float = Field(default=2.0, ge=1.0, le=10.0)
    max_backoff: Duration = 3600.0

    def delay(self, attempt: int) -> float:
        """Backoff before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        return min(self.backoff * self.factor ** (attempt - 1), self.max_backoff)


class _Step(_M):
    key: str = Field(pattern=KEY_PATTERN)
    name: str | None = None
    next: str | None = None
    retry: Retry = Retry()

    def targets(self) -> dict[str, str | None]:
        """Field name → named next step (None = the following step in the list)."""
        return {"next": self.next}

    def branches(self) -> list[tuple[str, str | None]]:
        """The ways a run can leave this step (None = fall back to next/list order)."""
        return [("next", None)]


class SendEmail(_Step):
    type: Literal["send_email_template"]
    template: str
    subject: str
    to: str | None = None  # template; default: the run's identity value
    body: str | None = None


class SendPush(_Step):
    type: Literal["send_push_template"]
    template: str
    title: str
    to: str | None = None
    body: str | None = None


class SendSms(_Step):
    type: Literal["send_sms"]
    text: str
    to: str | None = None


class HttpRequest(_Step):
    type: Literal["http_request"]
    url: str = Field(pattern=r"^https?://")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    timeout: Duration = 10.0


class Delay(_Step):
    type: Literal["delay"]
    duration: Duration


class WaitMatch(_M):
    # Dotted path in the incoming event's payload; default: the definition's identity path.
    field: str | None = None
    # What it must equal: "identity" (the run's resolved identity value) or a dotted
    # path into the run's context, e.g. "payload.order_id".
    equals: str = "identity"


class WaitForEvent(_Step):
    type: Literal["wait_for_event"]
    event: str = Field(min_length=1)
    match: WaitMatch = WaitMatch()
    timeout: Duration | None = None
    on_received: str | None = None
    on_timeout: str | None = None

    def targets(self) -> dict[str, str | None]:
        return {"next": self.next, "on_received": self.on_received, "on_timeout": self.on_timeout}

    def branches(self) -> list[tuple[str, str | None]]:
        # No on_timeout: a timeout ends the run (timed_out), so it is no edge.
        out: list[tuple[str, str | None]] = [("on_received", self.on_received)]
        if self.on_timeout is not None:
            out.append(("on_timeout", self.on_timeout))
        return out


class Condition(_Step):
    type: Literal["condition"]
    field: str
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "exists", "not_exists"] = "eq"
    value: Any = None
    on_true: str | None = None
    on_false: str | None = None

    def targets(self) -> dict[str, str | None]:
        return {"next": self.next, "on_true": self.on_true, "on_false": self.on_false}

    def branches(self) -> list[tuple[str, str | None]]:
        return [("on_true", self.on_true), ("on_false", self.on_false)]


class Fail(_Step):
    type: Literal["fail"]
    message: str = "failed on purpose"

    def branches(self) -> list[tuple[str, str | None]]:
        return []  # the run ends failed here


# Fields of each step type that are templates ({{ … }} placeholders).
TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "send_email_template": ("to", "subject", "body"),
    "send_push_template": ("to", "title", "body"),
    "send_sms": ("to", "text"),
    "http_request": ("url", "headers", "body"),
}

Step = Annotated[
    SendEmail | SendPush | SendSms | HttpRequest | Delay | WaitForEvent | Condition | Fail,
    Field(discriminator="type"),
]
STEP_TYPES = (
    "send_email_template",
    "send_push_template",
    "send_sms",
    "http_request",
    "delay",
    "wait_for_event",
    "condition",
    "fail",
)


class IdentitySpec(_M):
    type: str = "email"
    from_: str = Field(alias="from", min_length=1)


class Definition(_M):
    id: str = Field(pattern=KEY_PATTERN)
    name: str
    description: str | None = None
    trigger: str = Field(min_length=1)
    identity: IdentitySpec
    steps: list[Step] = Field(min_length=1)

    _source_path: str | None = PrivateAttr(default=None)
    if TYPE_CHECKING:  # set in model_post_init
        _by_key: dict[str, Any]
        _index: dict[str, int]
        _follow: dict[str, str | None]

    def model_post_init(self, __context: Any) -> None:
        # Plain instance attributes, not pydantic private ones: the engine looks steps
        # up on every step it runs, and private attributes go through __getattr__.
        steps = self.steps
        object.__setattr__(self, "_by_key", {s.key: s for s in steps})
        object.__setattr__(self, "_index", {s.key: i for i, s in enumerate(steps)})
        # The step that follows each one in list order (None after the last).
        object.__setattr__(self, "_follow", {
            s.key: (steps[i + 1].key if i + 1 < len(steps) else None) for i, s in enumerate(steps)
        })

    # -- navigation used by the engine ---------------------------------------
    @property
    def first(self) -> str:
        return self.steps[0].key

    @property
    def source_path(self) -> str | None:
        return self._source_path

    def step(self, key: str) -> Any:
        return self._by_key[key]

    def index(self, key: str) -> int:
        return self._index.get(key, -1)

    def resolve(self, step: Any, target: str | None) -> str | None:
        """A branch/next value → the step key to run next, or None for the end."""
        if target is None:
            target = step.next
        if target is None:
            return self._follow[step.key]
        return None if target == END else target

    # -- template variables --------------------------------------------------
    def template_warnings(self) -> list[str]:
        """Placeholders a run may not be able to fill, as ``steps[i].field: …`` lines:
        a step whose template names a missing value fails (it never sends "Welcome
        aboard, !"), so ``automations validate`` warns about them before any run does.

        * ``payload.…`` other than the identity path: the trigger may not carry it;
        * ``event.…`` in a step a run can reach with no event received (from the
          start, or through a wait's timeout);
        * a root that is none of payload, event, identity, run, trigger."""
        from autorun_cli.engine.util import variables

        no_event = self._reachable_without_event()
        identity = "payload." + self.identity.from_
        out: list[str] = []
        for i, step in enumerate(self.steps):
            fields: dict[str, Any] = {f: getattr(step, f, None) for f in TEMPLATE_FIELDS.get(step.type, ())}
            for name, value in fields.items():
                for var in dict.fromkeys(variables(value)):
                    root, _, rest = var.partition(".")
                    where = f"steps[{i}].{name}: {{{{ {var} }}}}"
                    if root not in ("payload", "event", "identity", "run", "trigger"):
                        out.append(f"{where} is not a variable (use payload.…, event.…, identity.value, run.id"
                                   " or trigger.event); the step will fail")
                    elif root == "payload" and var != identity and not identity.startswith(var + "."):
                        out.append(f"{where}: step {step.key} fails when the {self.trigger} payload has no"
                                   f" {rest or 'fields'}")
                    elif root == "event" and step.key in no_event:
                        out.append(f"{where}: a run can reach step {step.key} with no event received (from the"
                                   " start or through a timeout), and then the step fails")
        return out

    def _reachable_without_event(self) -> set[str]:
        """Steps a run can reach without a wait having received an event."""
        seen: set[str] = set()
        todo = [self.first]
        while todo:
            key = todo.pop()
            if key in seen or key == END or key not in self._by_key:
                continue
            seen.add(key)
            step = self._by_key[key]
            if step.type == "wait_for_event":
                if step.on_timeout is not None:  # only the timeout path carries no event
                    todo.append(self.resolve(step, step.on_timeout) or END)
                continue
            for _name, target in step.branches():
                nxt = self.resolve(step, target)
                if nxt is not None:
                    todo.append(nxt)
        return seen

    # -- persistence ---------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()[:16]


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    skip_tag = False
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            skip_tag = True  # a discriminated union puts the tag right after the index
            continue
        if skip_tag and part in STEP_TYPES:
            skip_tag = False
            continue
        skip_tag = False
        out += ("." if out else "") + str(part)
    return out or "(top level)"


def _refuse(where: str, problems: list[str]) -> UsageError:
    shown = "; ".join(problems[:3])
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return UsageError(f"invalid automation {where}: {shown}{more}", hint=HINT)


def _check_graph(defn: Definition) -> list[str]:
    problems: list[str] = []
    keys = {s.key for s in defn.steps}
    for i, s in enumerate(defn.steps):
        for name, target in s.targets().items():
            if target is not None and target != END and target not in keys:
                problems.append(f"steps[{i}].{name}: no step has the key {target!r} (use a step key or \"end\")")
    if problems:
        return problems
    # Depth-first search for a back edge: any cycle would let a run loop forever.
    state: dict[str, int] = {}
    for start in defn.steps:
        if state.get(start.key):
            continue
        stack: list[tuple[str, list[tuple[str, str]]]] = []

        def edges(key: str) -> list[tuple[str, str]]:
            step = defn.step(key)
            seen: list[tuple[str, str]] = []
            for name, target in step.branches():
                nxt = defn.resolve(step, target)
                if nxt is not None and all(nxt != n for _, n in seen):
                    seen.append((name if target is not None else "next", nxt))
            return seen

        state[start.key] = 1
        stack.append((start.key, edges(start.key)))
        path = [start.key]
        while stack:
            key, todo = stack[-1]
            if not todo:
                state[key] = 2
                stack.pop()
                path.pop()
                continue
            name, nxt = todo.pop(0)
            if state.get(nxt) == 1:
                loop = path[path.index(nxt):] + [nxt]
                i = defn.index(key)
                problems.append(
                    f"steps[{i}].{name}: cycle {' -> '.join(loop)} (a run must always reach the end)"
                )
                return problems
            if not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, edges(nxt)))
                path.append(nxt)
    return problems


def validate(data: dict[str, Any], where: str = "definition") -> Definition:
    """Validate parsed TOML; raise UsageError naming ``where`` and the field path."""
    if not isinstance(data, dict):
        raise _refuse(where, ["(top level): expected a table"])
    try:
        defn = Definition.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = plain_words(str(err.get("msg", "invalid")))
            problems.append(f"{_field_path(tuple(err.get('loc', ())))}: {msg}")
        raise _refuse(where, problems) from None
    problems = []
    seen: dict[str, int] = {}
    for i, s in enumerate(defn.steps):
        if s.key == END:
            problems.append(f"steps[{i}].key: {END!r} is reserved (it means: end the run)")
        if s.key in seen:
            problems.append(f"steps[{i}].key: duplicate key {s.key!r} (also steps[{seen[s.key]}])")
        seen.setdefault(s.key, i)
    if problems:
        raise _refuse(where, problems)
    problems = _check_graph(defn)
    if problems:
        raise _refuse(where, problems)
    return defn


def parse_toml(text: str, where: str = "definition") -> Definition:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"invalid automation {where}: not valid TOML: {exc}", hint=HINT) from None
    return validate(data, where)


def load_definition(path: str | Path) -> Definition:
    """Read and validate one TOML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"cannot read automation file {p}: {exc.strerror if isinstance(exc, OSError) else exc}",
            hint="pass a readable .toml file or a folder of them",
        ) from None
    defn = parse_toml(text, str(p))
    defn._source_path = str(p)
    return defn


def load_definitions(path: str | Path) -> list[Definition]:
    """A file, or every ``*.toml`` in a folder (sorted); ids must be unique."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.toml"))
        if not files:
            raise UsageError(f"no .toml files in {p}", hint="pass a .toml file or a folder that holds some")
    else:
        files = [p]
    out: list[Definition] = []
    seen: dict[str, str] = {}
    for f in files:
        d = load_definition(f)
        if d.id in seen:
            raise UsageError(
                f"invalid automation {f}: id: {d.id!r} is also the id of {seen[d.id]}",
                hint="give every automation its own id",
            )
        seen[d.id] = str(f)
        out.append(d)
    return out


def from_spec(spec: dict[str, Any]) -> Definition:
    """Rebuild a stored definition (validated when it was loaded; durations an earlier
    version let through out of range are clamped, see ``_duration``)."""
    return Definition.model_validate(spec, context={"stored": True})
