"""Step-by-step comparison of a recorded run with its replay."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from autorun_cli.model import Run, Step, Wait
from autorun_cli.status import TERMINAL, UNKNOWN

# The order fields are compared in, per step; the first that differs is reported.
# The wait outcome and branch come before the step status: they say *why* a step
# ended differently (received vs timed_out), the status only that it did.
FIELDS = ("type", "wait", "branch", "status", "messages")
# Steps that never ran; and those whose outcome was open when a run was recorded.
NOT_RUN = ("pending", "skipped")
OPEN = ("pending", "running")
# The same branch under the names vendors give it (sendrealm's outcome_branch).
BRANCH_SYNONYMS = {"timeout": "timed_out"}


@dataclass
class Divergence:
    step: str | None
    field: str
    recorded: Any
    replayed: Any

    def describe(self) -> str:
        where = f"step {self.step!r}" if self.step else "the run"
        return f"{where}: {self.field} was {self.recorded!r} when recorded, {self.replayed!r} on replay"


@dataclass
class StepRow:
    key: str
    recorded: dict[str, Any] | None
    replayed: dict[str, Any] | None
    diverged: list[str] = field(default_factory=list)


@dataclass
class Report:
    run_id: str
    match: bool
    first_divergence: Divergence | None
    steps: list[StepRow]
    recorded_status: str
    replayed_status: str
    replayed_run_id: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "replayed_run_id": self.replayed_run_id,
            "match": self.match,
            "first_divergence": asdict(self.first_divergence) if self.first_divergence else None,
            "recorded_status": self.recorded_status,
            "replayed_status": self.replayed_status,
            "steps": [asdict(s) for s in self.steps],
            "notes": self.notes,
        }


def _ident(step: Step) -> str | None:
    return step.key or step.name or step.id


def _wait_for(run: Run, step: Step) -> Wait | None:
    """The step's wait: the last one, as a step is judged by its last attempt."""
    found = None
    for wait in run.waits:
        if wait.step_key and wait.step_key in (step.key, step.name):
            found = wait
    return found


def _messages_for(run: Run, step: Step) -> list[str]:
    keys = {k for k in (step.key, step.name) if k}
    # A sandboxed HTTP request is recorded in the outbox, but it is no message.
    return sorted(f"{m.channel}" for m in run.messages
                  if m.step_key in keys and not (m.channel == "http" and m.status == "sandboxed"))


def facts(run: Run, step: Step) -> dict[str, Any]:
    wait = _wait_for(run, step)
    branch = step.branch or (wait.branch if wait else None)
    branch = BRANCH_SYNONYMS.get(branch, branch) if branch else branch
    return {
        "type": step.type,
        "status": step.status,
        "branch": branch,
        "wait": wait.status if wait else None,
        "messages": _messages_for(run, step),
    }


def _find(replayed: Run, step: Step, used: set[int]) -> int | None:
    """The replayed step matching ``step``: same key, else same name (a key the local
    engine cannot take, such as one with spaces, is kept as the step's name)."""
    if step.key:
        for i, other in enumerate(replayed.steps):
            if i not in used and other.key == step.key:
                return i
        for i, other in enumerate(replayed.steps):
            if i not in used and other.name == step.key:
                return i
    if step.name:
        for i, other in enumerate(replayed.steps):
            if i not in used and step.name in (other.name, other.key):
                return i
    return None


def _last_attempts(run: Run) -> Run:
    """One step per key: its last attempt, where the first attempt stood.

    A run records a step once per attempt; what the step came to is its last one.
    """
    last: dict[str, Step] = {}
    for step in run.steps:
        last[_ident(step) or str(id(step))] = step
    if len(last) == len(run.steps):
        return run
    return run.model_copy(update={"steps": list(last.values())})


def _unknown(recorded: Run, step: Step, name: str, value: Any) -> bool:
    """Whether the recording cannot say what ``name`` of ``step`` should be."""
    if value is None or (name == "messages" and not recorded.messages):
        return True  # e.g. no step type in the vendor's document
    if name == "type":
        # A vendor's own kind ("LLM") is no kind the local engine runs: a stand-in
        # step (a draft's http_request) cannot match it by name.
        from autorun_cli.engine.definition import STEP_TYPES

        return value not in STEP_TYPES
    if name == "status":
        # "unknown", or a step still pending or running when a run that had not
        # ended was recorded: how it ends is not in the recording.
        return value == UNKNOWN or (recorded.status not in TERMINAL and value in OPEN)
    return name == "wait" and value == UNKNOWN


def _same_timeout(name: str, rec: dict[str, Any], rep: dict[str, Any]) -> bool:
    """A wait that timed out: one API calls its step completed (the timeout branch
    taken), the engine timed_out when no timeout path follows. Same outcome."""
    return (name == "status" and rec["branch"] == rep["branch"] == "timed_out"
            and {rec["status"], rep["status"]} <= {"completed", "timed_out"})


def compare(recorded: Run, replayed: Run) -> Report:
    """Match steps by key, else by name, and compare what each did."""
    recorded, replayed = _last_attempts(recorded), _last_attempts(replayed)
    rows: list[StepRow] = []
    first: Divergence | None = None
    used: set[int] = set()
    for step in recorded.steps:
        key = _ident(step) or "?"
        rec = facts(recorded, step)
        idx = _find(replayed, step, used)
        if idx is None:
            if step.status in NOT_RUN:
                rows.append(StepRow(key, rec, None))  # it did not run then, nor now
                continue
            rows.append(StepRow(key, rec, None, ["step"]))
            first = first or Divergence(key, "step", "ran", "did not run")
            continue
        used.add(idx)
        rep = facts(replayed, replayed.steps[idx])
        diverged = []
        for name in FIELDS:
            if _unknown(recorded, step, name, rec[name]):
                continue
            if rec[name] != rep[name] and not _same_timeout(name, rec, rep):
                diverged.append(name)
                first = first or Divergence(key, name, rec[name], rep[name])
        rows.append(StepRow(key, rec, rep, diverged))
    both_cancelled = recorded.status == replayed.status == "cancelled"
    for i, step in enumerate(replayed.steps):
        if i in used:
            continue
        key = _ident(step) or "?"
        if both_cancelled and step.status == "cancelled":
            # The step the cancellation interrupted: vendors record only steps that ran.
            rows.append(StepRow(key, None, facts(replayed, step)))
            continue
        rows.append(StepRow(key, None, facts(replayed, step), ["step"]))
        first = first or Divergence(key, "step", "did not run", "ran")
    # A run that had not ended when recorded (pending, running) may end any way;
    # "waiting" is kept: the local engine holds a wait open just the same.
    known = recorded.status in TERMINAL or recorded.status == "waiting"
    if known and recorded.status != replayed.status:
        first = first or Divergence(None, "status", recorded.status, replayed.status)
    return Report(
        run_id=recorded.id,
        match=first is None,
        first_divergence=first,
        steps=rows,
        recorded_status=recorded.status,
        replayed_status=replayed.status,
        replayed_run_id=replayed.id,
    )
