"""The normalized run model every provider maps onto (contract, "Normalized JSON").

Every key of the contract is always present in JSON output (``null`` when missing).
Timestamps stay strings exactly as the API gave them; ``timeutil`` parses them when
a duration or a sort needs it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class Trigger(_Model):
    event: str | None = None
    payload: Any = None
    occurred_at: str | None = None
    id: str | None = None


class Identity(_Model):
    type: str | None = None
    value: str | None = None
    id: str | None = None
    name: str | None = None


class Step(_Model):
    id: str | None = None
    key: str | None = None
    name: str | None = None
    type: str | None = None
    status: str = "unknown"
    provider_status: Any = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: int | None = None
    info: Any = None
    error: str | None = None
    branch: str | None = None
    attempt: int | None = None


class Wait(_Model):
    id: str | None = None
    step_key: str | None = None
    event: str | None = None
    status: str = "waiting"
    timeout_at: str | None = None
    resumed_at: str | None = None
    timed_out_at: str | None = None
    branch: str | None = None
    resumed_by_event: dict[str, Any] | None = None


class Message(_Model):
    id: str | None = None
    channel: str | None = None
    step_key: str | None = None
    title: str | None = None
    status: str | None = None
    created_at: str | None = None
    to: str | None = None


class LogEntry(_Model):
    timestamp: str | None = None
    level: str | None = None
    message: str | None = None
    step_index: int | None = None
    # Structured data the API attached to the entry (tenant logs[].metadata).
    metadata: Any = None
    # True for an entry from an attempt before a retry (tenant: logged before the
    # execution's current started_at); None where the provider cannot tell.
    previous_attempt: bool | None = None


class RunError(_Model):
    message: str | None = None
    step: str | None = None
    detail: str | None = None


class Run(_Model):
    id: str
    provider: str
    name: str | None = None
    automation_id: str | None = None
    status: str = "unknown"
    provider_status: Any = None
    trigger: Trigger | None = None
    identity: Identity | None = None
    created_at: str | None = None
    updated_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: int | None = None
    steps: list[Step] = Field(default_factory=list)
    current_step: str | None = None
    waits: list[Wait] = Field(default_factory=list)
    messages: list[Message] = Field(default_factory=list)
    logs: list[LogEntry] = Field(default_factory=list)
    error: RunError | None = None
    links: dict[str, str] = Field(default_factory=dict)
    # Provider-specific facts that have no contract key (plannr next/previous step,
    # tenant action totals, generic steps_count...). Always an object.
    extra: dict[str, Any] = Field(default_factory=dict)
    # The vendor's own document, untouched; only emitted with --raw.
    raw: Any = Field(default=None, exclude=True)

    def to_json(self, *, raw: bool = False) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        if raw:
            data["raw"] = self.raw
        return data
