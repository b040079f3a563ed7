"""One MCP server through the official SDK: connect (stdio or streamable HTTP), list its tools, call
one. The SDK's and the transports' errors are translated here, once: ``Unreachable`` when the call
never got an answer (the server could not start, died, or was too slow), ``ToolFailed`` when the
server answered with an error.

Imported only where a server is reached (``mcp`` costs a few hundred ms to import).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any

from agentctl.config import SECRET_REFERENCE, McpServerSettings
from agentctl.errors import AgentctlError, ProcessFailed, UsageError
from agentctl.processes.mcp_tools import McpTool

PAGES = 100  # of a tools/list walk: a server whose cursor never ends cannot hang a listing


class Unreachable(AgentctlError):
    """An MCP server could not be started or reached, died, or did not answer in time (exit 1)."""


class ToolFailed(ProcessFailed):
    """The tool, or its server, answered the call with an error (exit 1); never retried."""


def expanded(server: McpServerSettings, values: dict[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """``values`` with each ``${VAR}`` replaced by VAR's value in ``environ``."""

    def value_of(match: Any) -> str:
        name = match.group(1)
        if not environ.get(name):
            raise UsageError(f"MCP server {server.name} refers to ${{{name}}}, which is not set: export {name}")
        return str(environ[name])

    return {key: SECRET_REFERENCE.sub(value_of, value) for key, value in values.items()}


class ServerStderr:
    """A stdio server's stderr, read on a thread of its own (a full pipe would stall the server); its
    last lines say why a server that would not start stopped."""

    def __init__(self) -> None:
        read, write = os.pipe()
        self.file = os.fdopen(write, "w")
        self._lines: deque[str] = deque(maxlen=20)
        self._reader = threading.Thread(target=self._read, args=(read,), daemon=True)
        self._reader.start()

    def _read(self, fd: int) -> None:
        with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as stream:
            for line in stream:
                self._lines.append(line.rstrip())

    def spawned(self) -> None:
        """The server has its own copy of the pipe: ours is closed, so its end is the pipe's end."""
        self.file.close()

    def last_line(self) -> str:
        """The last line the server wrote, once its stderr ended (or soon after)."""
        self._reader.join(timeout=1.0)
        return next((line.strip() for line in reversed(self._lines) if line.strip()), "")


@contextlib.asynccontextmanager
async def connected(
    server: McpServerSettings, environ: Mapping[str, str], stderr: ServerStderr | None = None
) -> AsyncIterator[Any]:
    """An initialized ``mcp.Client`` session with ``server``; what fails on the way is ``Unreachable``."""
    from mcp import Client

    async with contextlib.AsyncExitStack() as stack:
        transport = await _transport(stack, server, environ, stderr)
        try:
            client = await stack.enter_async_context(Client(transport, cache=None))
        except Exception as exc:
            raise _unreachable(server, exc, "did not start", stderr) from None
        finally:
            if stderr is not None:
                stderr.spawned()
        yield client


async def _transport(
    stack: contextlib.AsyncExitStack, server: McpServerSettings, environ: Mapping[str, str], stderr: ServerStderr | None
) -> Any:
    if server.url:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        headers = expanded(server, server.headers, environ)
        timeout = httpx2.Timeout(server.timeout, read=max(server.call_timeout, server.timeout))
        http = await stack.enter_async_context(httpx2.AsyncClient(headers=headers, timeout=timeout))
        return streamable_http_client(server.url, http_client=http)
    from mcp import StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = expanded(server, server.env, environ)
    params = StdioServerParameters(command=server.command[0], args=server.command[1:], env=env, cwd=server.cwd)
    return stdio_client(params, errlog=stderr.file) if stderr is not None else stdio_client(params)


async def tools_of(client: Any, server: McpServerSettings) -> list[McpTool]:
    """Every tool the server lists, page by page."""
    found: list[McpTool] = []
    cursor = None
    try:
        for _ in range(PAGES):
            page = await client.list_tools(cursor=cursor)
            found.extend(_tool(server, tool) for tool in page.tools)
            if (cursor := page.next_cursor) is None:
                break
    except Exception as exc:
        raise _unreachable(server, exc, "did not list its tools") from None
    return found


def _tool(server: McpServerSettings, tool: Any) -> McpTool:
    hints = tool.annotations.model_dump(by_alias=True, exclude_none=True) if tool.annotations else {}
    return McpTool(server.name, tool.name, tool.description, dict(tool.input_schema), hints)


async def call(client: Any, server: McpServerSettings, tool: str, arguments: dict[str, Any]) -> Any:
    """The tool's result: its structured content when it has one, else its text."""
    from mcp import MCPError
    from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

    try:
        result = await client.call_tool(tool, arguments, read_timeout_seconds=server.call_timeout)
    except MCPError as exc:
        if exc.code in (CONNECTION_CLOSED, REQUEST_TIMEOUT):
            raise _unreachable(server, exc, "did not answer the call") from None
        raise ToolFailed(f"MCP server {server.name} refused the call of {tool}: {exc.message}") from None
    except Exception as exc:
        raise _unreachable(server, exc, "did not answer the call") from None
    if result.is_error:
        raise ToolFailed(_text(result.content) or f"tool {tool} of MCP server {server.name} reported an error")
    return result.structured_content if result.structured_content is not None else _text(result.content)


def _text(content: list[Any]) -> str:
    """The text blocks of a result, one after another; other blocks by their type."""
    parts = [block.text if block.type == "text" else f"[{block.type} content]" for block in content]
    return "\n".join(parts)


def _unreachable(
    server: McpServerSettings, exc: BaseException, what: str, stderr: ServerStderr | None = None
) -> Unreachable:
    """One line: which server, what it did not do, why."""
    why = _why(exc, server)
    said = stderr.last_line() if stderr is not None else ""
    return Unreachable(f"MCP server {server.name} {what}: {why}" + (f" (its last words: {said})" if said else ""))


def _why(exc: BaseException, server: McpServerSettings) -> str:
    from mcp import MCPError
    from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _why(exc.exceptions[0], server)
    if isinstance(exc, MCPError):
        if exc.code == CONNECTION_CLOSED:
            return "the connection closed (the server exited?)"
        return f"no answer in {server.call_timeout:g} s" if exc.code == REQUEST_TIMEOUT else exc.message
    if isinstance(exc, TimeoutError):
        return f"no answer in {server.timeout:g} s"
    if isinstance(exc, FileNotFoundError) and server.command:
        return f"cannot run {server.command[0]!r}: not found (check its command and cwd)"
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]
