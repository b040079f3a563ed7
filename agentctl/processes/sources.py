"""How a process is executed: the interface every source of processes implements.

The router sees a process only through its name, description and argument schema (``registry``);
once it is chosen, the actor hands the validated arguments to the process's ``Source``, which runs
it and yields the run's events. The first source is ``python_source.PythonSource``: a Python
function, Prefect flow or Prefect task run inside the actor as a Prefect flow or task run. Prefect
deployments (run by the user's workers) and MCP tools (run by their server) plug in here.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agentctl.events import Event
    from agentctl.llm import ChatModel
    from agentctl.processes.registry import Process
    from agentctl.processes.request_run import Placement


class Source(Protocol):
    """Runs one kind of process and says how, for ``processes show`` and ``ask --dry-run``."""

    @property
    def kind(self) -> str:
        """What a run of it is: ``flow`` or ``task`` (the kind of Prefect run)."""
        ...

    @property
    def entrypoint(self) -> str:
        """Where the process comes from, for people: ``module:attribute`` for Python code."""
        ...

    def describe(self) -> dict[str, Any]:
        """How the process runs, for ``processes show``: labelled values in display order."""
        ...

    def retries(self) -> dict[str, Any]:
        """What retries a run of it: ``{"prefect": {retries, retry_delay_seconds, timeout_seconds}, "note": ...}``."""
        ...

    def prepare(self, process: Process) -> None:
        """Do ahead of the first run what would slow it down (imports, connections); may raise."""
        ...

    def run(
        self, process: Process, arguments: dict[str, Any], model: ChatModel | None, placement: Placement | None
    ) -> AsyncGenerator[Event, None]:
        """Run ``process`` with validated ``arguments``; yield Log events, then one Result or Failed.

        LLM calls the process makes go through ``model`` (the request's), and count in its usage.
        ``placement``: the run is a child of its request's Prefect run (a request of several steps).
        A generator: the actor closes it when the request stops early (Ctrl-C, ``--detach``).
        """
        ...
