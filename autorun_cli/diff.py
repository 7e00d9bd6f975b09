"""Two runs compared (contract, "autorun diff A [B]"): pure functions, no CLI.

Steps are matched by ``key``, else ``name``, else position. A step that ran several
times (retries) is judged by its last attempt, as ``replay`` does. The runs are the
same when status, error message and the steps' status, branch and error agree, in the
same order; durations and timestamps never make runs different.
"""

from __future__ import annotations

from typing import Any

from autorun_cli.model import Run, Step

# Run-level fields compared, in the order they are reported.
RUN_FIELDS = ("status", "error", "trigger.event", "identity.value")
# Of those, the ones that make runs different ("same" ignores trigger and identity).
SAME_FIELDS = frozenset({"status", "error"})
# Step fields that make steps different, in the order first_difference picks them.
STEP_FIELDS = ("status", "branch", "error")


def run_field(run: Run, field: str) -> Any:
    if field == "status":
        return run.status
    if field == "error":
        return run.error.message if run.error is not None else None
    if field == "trigger.event":
        return run.trigger.event if run.trigger is not None else None
    if field == "identity.value":
        return run.identity.value if run.identity is not None else None
    raise KeyError(field)


def summary(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "status": run.status,
        "automation_id": run.automation_id,
        "created_at": run.created_at,
        "duration_ms": run.duration_ms,
    }


def step_identity(step: Step, position: int) -> str:
    """What a step is matched by: its key, else its name, else its position (1-based)."""
    if step.key:
        return "key:" + step.key
    if step.name:
        return "name:" + step.name
    return f"position:{position}"


def last_attempts(run: Run) -> dict[str, tuple[Step, int]]:
    """Each step identity → (its last attempt, how many times it ran), in the order
    the steps first ran (dicts keep insertion order)."""
    out: dict[str, tuple[Step, int]] = {}
    for i, step in enumerate(run.steps, 1):
        ident = step_identity(step, i)
        _, seen = out.get(ident, (step, 0))
        out[ident] = (step, seen + 1)
    return out


def _facts(step: Step | None, runs: int) -> dict[str, Any] | None:
    if step is None:
        return None
    return {
        "status": step.status,
        "branch": step.branch,
        "error": step.error,
        "duration_ms": step.duration_ms,
        "attempt": step.attempt if step.attempt is not None else runs,
    }


def _merged_order(a: list[str], b: list[str]) -> list[str]:
    """A's steps in A's order, each of B's own steps placed after the step B ran before it."""
    in_a = set(a)
    after: dict[str | None, list[str]] = {}
    previous: str | None = None
    for ident in b:
        if ident in in_a:
            previous = ident
        else:
            after.setdefault(previous, []).append(ident)
    merged = list(after.get(None, []))
    for ident in a:
        merged.append(ident)
        merged += after.get(ident, [])
    return merged


def _out_of_order(a: list[str], b: list[str]) -> set[str]:
    """Steps of both runs whose order differs: those off the longest common order."""
    common_b = [x for x in b if x in set(a)]
    common_a = [x for x in a if x in set(b)]
    if common_a == common_b:
        return set()
    # Longest common subsequence of the two orders; the rest moved.
    n, m = len(common_a), len(common_b)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            table[i][j] = table[i + 1][j + 1] + 1 if common_a[i] == common_b[j] else max(table[i + 1][j], table[i][j + 1])
    keep: set[str] = set()
    i = j = 0
    while i < n and j < m:
        if common_a[i] == common_b[j]:
            keep.add(common_a[i])
            i += 1
            j += 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return set(common_a) - keep


def diff_runs(a: Run, b: Run) -> dict[str, Any]:
    """The contract's diff document of ``a`` against ``b``."""
    fields = []
    for name in RUN_FIELDS:
        va, vb = run_field(a, name), run_field(b, name)
        if va != vb:
            fields.append({"field": name, "a": va, "b": vb})

    steps_a, steps_b = last_attempts(a), last_attempts(b)
    moved = _out_of_order(list(steps_a), list(steps_b))
    rows: list[dict[str, Any]] = []
    idents = _merged_order(list(steps_a), list(steps_b))
    for ident in idents:
        sa, na = steps_a.get(ident, (None, 0))
        sb, nb = steps_b.get(ident, (None, 0))
        either = sa if sa is not None else sb
        assert either is not None
        fa, fb = _facts(sa, na), _facts(sb, nb)
        if fa is None or fb is None:
            changed = ["present"]
            delta = None
        else:
            changed = [f for f in STEP_FIELDS if fa[f] != fb[f]]
            if ident in moved:
                changed.append("order")
            da, db = fa["duration_ms"], fb["duration_ms"]
            delta = da - db if da is not None and db is not None else None
        rows.append({"key": either.key, "name": either.name, "a": fa, "b": fb, "changed": changed, "duration_delta_ms": delta})

    same = not any(f["field"] in SAME_FIELDS for f in fields) and not any(r["changed"] for r in rows)
    return {
        "a": summary(a),
        "b": summary(b),
        "same": same,
        "fields": fields,
        "steps": rows,
        "first_difference": None if same else first_difference(fields, rows, idents, list(steps_a), list(steps_b)),
    }


def row_label(row: dict[str, Any]) -> str | None:
    return row["key"] or row["name"]


def first_difference(
    fields: list[dict[str, Any]], rows: list[dict[str, Any]], idents: list[str], order_a: list[str], order_b: list[str]
) -> dict[str, Any]:
    """The earliest step that differs (where the runs parted), else the run's own field.
    A step that moved reports its position (1-based, among the distinct steps) in each run."""
    for ident, row in zip(idents, rows, strict=True):
        if not row["changed"]:
            continue
        field = row["changed"][0]
        if field == "present":
            return {"step": row_label(row), "field": "present", "a": row["a"] is not None, "b": row["b"] is not None}
        if field == "order":
            return {"step": row_label(row), "field": "order", "a": order_a.index(ident) + 1, "b": order_b.index(ident) + 1}
        return {"step": row_label(row), "field": field, "a": row["a"][field], "b": row["b"][field]}
    for f in fields:
        if f["field"] in SAME_FIELDS:
            return {"step": None, **f}
    raise ValueError("first_difference of runs that are the same")


def last_good_run(provider: Any, run: Run) -> Run | None:
    """The newest run of ``run``'s automation created before it that ended completed."""
    from autorun_cli.listing import list_runs
    from autorun_cli.providers.base import ListQuery
    from autorun_cli.timeutil import parse_ts

    created = parse_ts(run.created_at) or parse_ts(run.started_at)
    query = ListQuery(automation=run.automation_id, statuses=["completed"], until=created, sort="-created_at", limit=None)
    for candidate in list_runs(provider, query):
        if candidate.id == run.id or candidate.automation_id not in (None, run.automation_id):
            continue
        when = parse_ts(candidate.created_at) or parse_ts(candidate.started_at)
        if created is not None and (when is None or when >= created):
            continue
        return candidate
    return None
