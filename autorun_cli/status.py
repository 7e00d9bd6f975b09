"""The normalized status vocabulary (contract, "Normalized JSON").

Kept free of pydantic so option parsing can validate ``--status`` cheaply.
"""

from __future__ import annotations

RUN_STATUSES = (
    "pending",
    "running",
    "waiting",
    "completed",
    "failed",
    "cancelled",
    "timed_out",
    "skipped",
)
UNKNOWN = "unknown"
# The contract's three, and "cancelled": the local engine closes the open wait of a
# run that is cancelled (or force-retried) with it.
WAIT_STATUSES = ("waiting", "received", "timed_out", "cancelled")
TERMINAL = frozenset({"completed", "failed", "cancelled", "timed_out", "skipped"})
# A run in one of these may be retried without --force.
RETRYABLE = frozenset({"failed", "cancelled", "timed_out"})
FAILED_LIKE = frozenset({"failed", "cancelled", "timed_out"})


def normalize(value: object, table: dict[str, str]) -> str:
    """Map a provider's status onto the vocabulary through ``table`` alone.

    ``table`` lists exactly the values the vendor documents (no guessed synonyms);
    anything else is ``unknown``, so a new vendor status shows up as such instead
    of being silently read as something it may not mean. Lookup is case-insensitive
    and ignores surrounding blanks, so ``"FAILED "`` and ``"failed"`` agree. A value
    that is not a string (``123`` in a seed) is ``unknown`` too, never a crash.
    """
    if not isinstance(value, str):
        return UNKNOWN
    return table.get(value.strip().lower(), UNKNOWN)


def parse_status_list(text: str | None) -> list[str]:
    """Parse ``--status failed,running``; unknown names are a usage error."""
    from autorun_cli.errors import UsageError

    if not text:
        return []
    out: list[str] = []
    for part in text.split(","):
        name = part.strip().lower().replace("-", "_")
        if not name:
            continue
        if name == "canceled":
            name = "cancelled"
        if name not in RUN_STATUSES and name != UNKNOWN:
            raise UsageError(
                f"unknown status {part.strip()!r}",
                hint="use one or more of: " + ", ".join(RUN_STATUSES + (UNKNOWN,)),
            )
        if name not in out:
            out.append(name)
    return out
