"""What a caller sends the gateway: the bodies of ``POST /v1/ask`` and ``POST /v1/processes/{name}/runs``.

Each carries the caller's settings (None: those the stack was started with) and secrets, as a call
through Ray brings them to the actors: the gateway keeps neither beyond the request. Pydantic and the
events only: the CLI's client imports this.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from agentctl.events import Paused

NDJSON = "application/x-ndjson"


class Approvals(BaseModel):
    """What the caller approved beforehand: every process (``--yes``) or these by name."""

    everything: bool = False
    names: list[str] = []


class Call(BaseModel):
    """What every call brings: who calls (settings, secrets) and what they approved."""

    settings: dict[str, Any] | None = Field(
        default=None, description="The caller's full settings (agentctl's config model); omitted: the stack's."
    )
    secrets: dict[str, str] = Field(
        default={}, description="Secret values by variable name, e.g. OPENAI_API_KEY, GITHUB_TOKEN: never stored."
    )
    approved: Approvals = Approvals()
    detach: bool = Field(default=False, description="For a deployment: end once its flow run exists.")
    expires: float | None = Field(
        default=None,
        description="Unix time after which the caller no longer waits for the answer (it went another "
        "way): a request read later is not started (409). The gateway and its callers share a host's clock.",
    )


class AskBody(Call):
    """A plain-language request; ``resume`` goes on from a ``paused`` event with ``approved`` call ids."""

    request: str = Field(min_length=1)
    model: str | None = None
    history: list[dict[str, Any]] | None = None
    resume: Paused | None = None


class RunBody(Call):
    """A run of a process by name, without the LLM."""

    arguments: dict[str, Any] = {}
