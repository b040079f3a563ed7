"""A batch through the stack's gateway (``POST /v1/batch``), as it goes over the wire.

The request body is NDJSON sent as the caller reads its input: its first line is a ``BatchCall``
(who calls, what they approved, how many at once, the process for argument sets), each later line
one item, as ``agentctl batch`` reads them (``{"id", "request", "model"}`` or text; for a process,
an object of arguments with an optional ``id``). The answer is NDJSON too: ``batch`` first (the
items in flight at once), then warnings (``log``), malformed item lines and records as they happen;
a ``failed`` line marked ``raised`` ends a batch the gateway could not carry on. Pydantic and the
events only: the CLI's side imports this.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from agentctl.calls.gateway.wire import Call
from agentctl.events import Failed, Log
from agentctl.views import BatchRecord

MAX_CONCURRENCY = 1000  # as agentctl batch --concurrency


class BatchCall(Call):
    """The body's first line: the caller, and how its items run."""

    concurrency: int | None = Field(
        default=None, ge=1, le=MAX_CONCURRENCY, description="Items in flight at once; omitted: 4 per router actor."
    )
    process: str | None = Field(
        default=None, description="Run this process once per item line (its arguments), without the LLM."
    )


class Opened(BaseModel):
    """The batch started: at most ``concurrency`` items run at once (a caller need send no more ahead)."""

    kind: Literal["batch"] = "batch"
    concurrency: int


class Recorded(BaseModel):
    """An item finished: its record, as ``agentctl batch`` writes it."""

    kind: Literal["record"] = "record"
    record: BatchRecord


class MalformedLine(BaseModel):
    """An item line that is no item (counted among the item lines, from 1): skipped."""

    kind: Literal["malformed"] = "malformed"
    line: int
    reason: str


Line = Annotated[Opened | Recorded | MalformedLine | Log | Failed, Field(discriminator="kind")]
