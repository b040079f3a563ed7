"""The tools of the configured MCP servers for a command that runs nothing in the actors
(``processes list``, ``show``, ``run``'s check of its parameters, dry runs): a short-lived session per
server, all at once, each within its ``timeout``. It never raises: a server that does not start or
answer is one line naming it, and the others' tools are listed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping

from agentctl.config import McpServerSettings, Settings
from agentctl.errors import AgentctlError
from agentctl.processes.mcp_tools import McpListing, processes_of, usable


def list_tools(settings: Settings, environ: Mapping[str, str] | None = None) -> McpListing:
    """The servers' tools as processes; no server is started when none is configured."""
    servers, problems = usable(settings.mcp.servers)
    if not servers:
        return McpListing(problems=problems)
    listing = asyncio.run(_all(servers, os.environ if environ is None else environ))
    listing.problems[:0] = problems
    return listing


async def _all(servers: list[McpServerSettings], environ: Mapping[str, str]) -> McpListing:
    listing = McpListing()
    for outcome in await asyncio.gather(*(_one(s, environ) for s in servers)):
        listing.processes.extend(outcome.processes)
        listing.problems.extend(outcome.problems)
    return listing


async def _one(server: McpServerSettings, environ: Mapping[str, str]) -> McpListing:
    from agentctl.processes.mcp_client import ServerStderr, connected, tools_of

    stderr = ServerStderr() if server.command else None
    try:
        async with asyncio.timeout(server.timeout):
            async with connected(server, environ, stderr) as client:
                tools = await tools_of(client, server)
    except TimeoutError:
        return McpListing(problems=[f"MCP server {server.name} did not answer in {server.timeout:g} s: left out"])
    except AgentctlError as exc:
        return McpListing(problems=[f"{exc}: left out"])
    return processes_of(server, tools)
