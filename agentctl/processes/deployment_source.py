"""Prefect deployments as processes: listed from the Prefect API, run by the user's own workers.

A deployment becomes a process of kind ``deployment``. The router sees its name, description and the
schema of its parameters (``parameter_openapi_schema``); when it is chosen, the actor starts a flow run
with Prefect's ``run_deployment`` and follows its states and logs through the API until a final state.
The actor only starts and follows: the work pool's worker (or a served flow) executes it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentctl.errors import UsageError

if TYPE_CHECKING:
    from agentctl.events import Event
    from agentctl.llm import ChatModel
    from agentctl.processes.registry import Process
    from agentctl.processes.request_run import Placement


@dataclass(frozen=True)
class Deployment:
    """What the Prefect API says of one deployment; JSON-able, it travels to the actors with a request."""

    id: str
    flow_name: str
    name: str
    description: str | None = None
    parameter_schema: dict[str, Any] = field(default_factory=dict)  # the deployment's parameter_openapi_schema
    work_pool: str | None = None
    tags: tuple[str, ...] = ()
    schedules: tuple[str, ...] = ()  # each schedule as people read it
    paused: bool = False

    @property
    def full_name(self) -> str:
        """``flow-name/deployment-name``, as Prefect names it and ``processes.deployments`` matches it."""
        return f"{self.flow_name}/{self.name}"


@dataclass(frozen=True)
class DeploymentSource:
    """Runs a process by starting a flow run of its deployment and following it to a final state."""

    deployment: Deployment

    @property
    def kind(self) -> str:
        """Always ``deployment``: a flow run executed by the deployment's worker."""
        return "deployment"

    @property
    def entrypoint(self) -> str:
        """The deployment's Prefect name, ``flow-name/deployment-name``."""
        return self.deployment.full_name

    def describe(self) -> dict[str, Any]:
        """Work pool, tags and schedules, for ``processes show``."""
        d = self.deployment
        return {
            "deployment": d.full_name,
            "work pool": d.work_pool
            or "none: served by its own process (flow.serve)",  # Prefect 3's only pool-less kind
            "tags": list(d.tags),
            "schedule": list(d.schedules),
        }

    def retries(self) -> dict[str, Any]:
        """The deployment's flow retries as its workers run it; agentctl adds none."""
        unknown = {"retries": None, "retry_delay_seconds": None, "timeout_seconds": None}  # not in the API's record
        return {"prefect": unknown, "note": "as the deployment's flow declares them, in its work pool's worker"}

    def prepare(self, process: Process) -> None:
        """Nothing to import ahead: the flow's code runs in the worker, not here."""

    async def run(
        self,
        process: Process,
        arguments: dict[str, Any],
        model: ChatModel | None = None,
        placement: Placement | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Start a flow run of the deployment with ``arguments``: yield ``Started`` (its id and link) at
        once, then its states and logs as they arrive, then the outcome (``deployment_run``).

        Closing this generator stops the following, never the run: its worker carries it.
        """
        from agentctl.processes import deployment_run

        async for event in deployment_run.run(process, self.deployment, arguments, placement):
            yield event


def check_detachable(process: Process) -> None:
    """Refuse ``--detach`` for a process that is not a deployment: it runs inside the request itself."""
    if process.kind != "deployment":
        raise UsageError(
            f"--detach needs a deployment process; {process.name} is a {process.kind} run in a router actor,"
            " which ends with the call: run it without --detach"
        )
