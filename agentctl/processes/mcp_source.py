"""The source of MCP tools: each call is a Prefect task run in the router actor, on the actor's own
session with the tool's server (``mcp_sessions``), through the in-actor run path (``python_run``).

Prefect retries a call that failed in transport (the server died or did not answer in time; a dead
server is started again on the next try) as the server's entry says (``retries``); an error the tool
itself reports (``isError``) fails the call at once.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agentctl.config import McpServerSettings

if TYPE_CHECKING:
    from agentctl.events import Event
    from agentctl.llm import ChatModel
    from agentctl.processes.registry import Process
    from agentctl.processes.request_run import Placement

# One Prefect task per tool and server entry, made on a tool's first call in this process.
_tasks: dict[tuple[str, str], Any] = {}


@dataclass(frozen=True)
class McpSource:
    """Calls tool ``tool`` of ``server``; ``annotations`` as the server declared them."""

    server: McpServerSettings
    tool: str
    annotations: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def kind(self) -> str:
        """Always ``mcp``: a call of a tool of an MCP server, recorded as a Prefect task run."""
        return "mcp"

    @property
    def entrypoint(self) -> str:
        """``mcp:<server>/<tool>``."""
        return f"mcp:{self.server.name}/{self.tool}"

    def describe(self) -> dict[str, Any]:
        """The server, its transport (secrets masked), the tool's name and annotations, the timeouts."""
        return {
            "server": self.server.name,
            "transport": transport(self.server),
            "tool": self.tool,
            "annotations": self.annotations,
            "timeouts": f"start and list {self.server.timeout:g} s, call {self.server.call_timeout:g} s",
        }

    def retries(self) -> dict[str, Any]:
        """Prefect's retries of the call's task run: transport errors only."""
        server = self.server
        prefect = {
            "retries": server.retries,
            "retry_delay_seconds": server.retry_delay_seconds,
            "timeout_seconds": server.call_timeout,
        }
        note = "transport errors only (the server died or did not answer); an error of the tool itself is final"
        return {"prefect": prefect, "note": note}

    def prepare(self, process: Process) -> None:
        """Import Prefect's task engine and the MCP client ahead of the first call."""
        import mcp.client  # noqa: F401
        import prefect.task_engine  # noqa: F401

    async def run(
        self,
        process: Process,
        arguments: dict[str, Any],
        model: ChatModel | None = None,
        placement: Placement | None = None,
    ) -> AsyncGenerator[Event, None]:
        """One Prefect task run that calls the tool with ``arguments`` (``python_run.run_in_actor``)."""
        from agentctl.processes import python_run

        target = self._task(process)
        async for event in python_run.run_in_actor(
            process, target, "task", (), {"arguments": arguments}, model, placement
        ):
            yield event

    def _task(self, process: Process) -> Any:
        key = (process.name, self.server.model_dump_json())
        if key not in _tasks:
            _tasks[key] = _make_task(process.name, self.server, self.tool)
        return _tasks[key]


def _make_task(name: str, server: McpServerSettings, tool: str) -> Any:
    """A Prefect task that calls ``tool`` on this process's session with ``server``; its errors
    carry no secret (``secrecy.masked``)."""
    from prefect import task

    from agentctl.secrecy import masked

    async def call_tool(arguments: dict[str, Any]) -> Any:
        from agentctl import runtime
        from agentctl.processes.mcp_sessions import SESSIONS

        return await SESSIONS.call(server, runtime.environ(), tool, arguments)

    make = task(
        name=name.replace("_", "-"),
        retries=server.retries,
        retry_delay_seconds=server.retry_delay_seconds,
        retry_condition_fn=_in_transport,
    )
    return make(masked(call_tool))


def _in_transport(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry condition: only a call that failed on its way to the server or back."""
    from agentctl.processes.mcp_client import Unreachable

    return isinstance(state.data, Unreachable)


def transport(server: McpServerSettings) -> str:
    """How the server is reached, for people: the command or the URL; headers and env by name only."""
    if server.url:
        parts = urlsplit(server.url)
        host = parts.hostname or ""
        netloc = f"***@{host}" if parts.username or parts.password else host
        netloc += f":{parts.port}" if parts.port else ""
        shown = f"{parts.scheme}://{netloc}{parts.path}" + ("?***" if parts.query else "")
        return f"HTTP {shown}" + _named(" headers", server.headers)
    where = f" in {server.cwd}" if server.cwd else ""
    return f"stdio: {' '.join(server.command)}{where}" + _named(" env", server.env)


def _named(label: str, values: dict[str, str]) -> str:
    return f";{label} " + ", ".join(f"{k}=***" for k in values) if values else ""
