"""Tools of other MCP servers (``[[mcp.servers]]``) as processes of kind ``mcp``.

A tool becomes a process named ``<server>_<tool>``, whose argument model comes from the tool's input
schema (``deployment_schema``) and whose ``confirm`` comes from the tool's annotations: a tool that
says it only reads (``readOnlyHint``) runs at once, any other asks first, unless the server's entry
says ``confirm = true`` (all ask) or ``false`` (none asks); ``processes.confirm`` and
``processes.auto_approve`` apply over that, as for every process. Nothing here imports ``mcp``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agentctl.config import McpServerSettings
from agentctl.processes.deployment_schema import arguments_model
from agentctl.processes.mcp_source import McpSource
from agentctl.processes.registry import NAME_PATTERN, Process


@dataclass(frozen=True)
class McpTool:
    """What a server says of one of its tools."""

    server: str
    name: str
    description: str | None = None
    input_schema: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, Any] = field(default_factory=dict)  # as MCP names them: readOnlyHint, ...


@dataclass
class McpListing:
    """The tools of the servers that answered as processes, and one line per server that did not."""

    processes: list[Process] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def tool_name(server: str, tool: str) -> str:
    """``<server>_<tool>``, other characters than ``[A-Za-z0-9_]`` made ``_``; too long, a hash ends it."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", f"{server}_{tool}")
    if NAME_PATTERN.match(name):
        return name
    digest = hashlib.sha256(f"{server}/{tool}".encode()).hexdigest()[:8]
    return f"{name[:55]}_{digest}"


def asks_first(server: McpServerSettings, annotations: dict[str, Any]) -> bool:
    """Whether a run of a tool with ``annotations`` waits for a person's yes, before the config's patterns."""
    if server.confirm is not None:
        return server.confirm
    return annotations.get("readOnlyHint") is not True


def as_process(server: McpServerSettings, tool: McpTool) -> Process:
    """The process that calls ``tool`` of ``server``."""
    name = tool_name(server.name, tool.name)
    summary = " ".join((tool.description or "").strip().split("\n\n")[0].split())
    description = summary or f"tool {tool.name} of the MCP server {server.name}"
    model = arguments_model(name, tool.input_schema)
    source = McpSource(server, tool.name, dict(tool.annotations))
    return Process(name, description, model, source, confirm=asks_first(server, tool.annotations))


def processes_of(server: McpServerSettings, tools: Iterable[McpTool]) -> McpListing:
    """Processes for ``tools``; a tool whose schema cannot be read is left out, in one line."""
    listing = McpListing()
    for tool in tools:
        try:
            listing.processes.append(as_process(server, tool))
        except Exception as exc:  # a schema pydantic cannot build: that tool only is left out
            listing.problems.append(f"could not use tool {tool.name} of MCP server {server.name}: {exc}")
    return listing


def usable(servers: Iterable[McpServerSettings]) -> tuple[list[McpServerSettings], list[str]]:
    """The entries that can be reached, and one line for each that cannot (checked here, not in the
    config's loading, whose error would print an entry's headers)."""
    found: list[McpServerSettings] = []
    problems: list[str] = []
    for server in servers:
        if bool(server.command) == bool(server.url):
            problems.append(f"MCP server {server.name} needs exactly one of command (stdio) or url (HTTP): left out")
        elif any(s.name == server.name for s in found):
            problems.append(f"two [[mcp.servers]] entries are named {server.name}: the second is left out")
        else:
            found.append(server)
    return found, problems
