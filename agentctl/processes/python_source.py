"""The in-actor source: a Python function, Prefect flow or Prefect task, run inside the router actor
as a Prefect flow or task run (``python_run``).

Its object is named by an entry point (``module:attribute``) and imported only when the process
runs or is shown, so listing processes never imports Prefect.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from agentctl.errors import AgentctlError
from agentctl.processes.declare import declaration, function_of, kind_of
from agentctl.processes.registry import Process, from_signature

if TYPE_CHECKING:
    from agentctl.events import Event
    from agentctl.llm import ChatModel
    from agentctl.processes.request_run import Placement

Kind = Literal["flow", "task"]


@dataclass(frozen=True)
class PythonSource:
    """A function, flow or task of this Python installation, with the Prefect options it runs with."""

    kind: Kind
    entrypoint: str
    target: Any = field(default=None, repr=False, compare=False)
    options: dict[str, Any] = field(default_factory=dict, compare=False)
    tags: tuple[str, ...] = ()
    retry_note: str = ""

    def load(self) -> Any:
        """The function, flow or task, imported on first use."""
        if self.target is not None:
            return self.target
        module, _, attr = self.entrypoint.partition(":")
        return getattr(importlib.import_module(module), attr)

    def location(self) -> str | None:
        """``file:line`` where the process is defined, when it can be found."""
        fn = function_of(self.load())
        try:
            return f"{inspect.getsourcefile(fn)}:{inspect.getsourcelines(fn)[1]}"
        except (OSError, TypeError):
            return None

    def describe(self) -> dict[str, Any]:
        """Entry point, source location, Prefect options and tags."""
        return {"entrypoint": self.entrypoint, "source": self.location(), "options": self.options, "tags": [*self.tags]}

    def retries(self) -> dict[str, Any]:
        """Prefect's retries: the declared options over those of the flow or task itself."""
        target, options = self.target, self.options
        prefect = {
            "retries": options.get("retries", getattr(target, "retries", None) or 0),
            "retry_delay_seconds": options.get("retry_delay_seconds", getattr(target, "retry_delay_seconds", 0)),
            "timeout_seconds": options.get("timeout_seconds", getattr(target, "timeout_seconds", None)),
        }
        return {"prefect": prefect, "note": self.retry_note or None}

    def prepare(self, process: Process) -> None:
        """Import Prefect's engines and the process's flow or task (~1 s on the first)."""
        from agentctl.processes import python_run

        python_run.prepare(process, self)

    async def run(
        self,
        process: Process,
        arguments: dict[str, Any],
        model: ChatModel | None = None,
        placement: Placement | None = None,
    ) -> AsyncGenerator[Event, None]:
        """One Prefect flow or task run in this process (``python_run.run``)."""
        from agentctl.processes import python_run

        async for event in python_run.run(process, self, arguments, model, placement):
            yield event


def to_process(obj: Any) -> Process:
    """A Process for an object decorated with ``@process``: built-ins and plugins alike."""
    declared = declaration(obj)
    if declared is None:
        raise AgentctlError(f"{obj!r} is not decorated with @agentctl.process")
    fn = function_of(obj)
    source = PythonSource(
        kind=kind_of(obj, declared.kind),
        entrypoint=f"{fn.__module__}:{fn.__qualname__}",
        target=obj,
        options=declared.options,
        tags=declared.tags,
        retry_note=declared.retry_note,
    )
    description = declared.description or getattr(obj, "description", None)
    process = from_signature(fn, name=declared.name or fn.__name__, source=source, description=description)
    return replace(process, confirm=declared.confirm)
