"""A router actor's sessions with MCP servers: each server started (or connected to) once, on first
use, its tools listed then, its session kept open for every later request and call, and stopped with
the actor (a stdio server sees its stdin close when the actor's process ends, and exits).

A session lives in an asyncio task of its own (the SDK's transports must be entered and left in one
task), with a context of its own: no request's settings or secrets stay attached to it. A call that
fails in transport drops the session; the next call or request starts it again.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from agentctl.config import McpServerSettings
from agentctl.errors import AgentctlError
from agentctl.processes.mcp_client import ServerStderr, Unreachable, call, connected, expanded, tools_of
from agentctl.processes.mcp_tools import McpListing, processes_of, usable


class _Session:
    """One server's open session, its tools as processes."""

    def __init__(self, server: McpServerSettings, environ: Mapping[str, str]) -> None:
        self.server = server
        self._environ = dict(environ)
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._failure: BaseException | None = None
        self.client: Any = None
        self.listing = McpListing()
        # A context of its own: the task outlives the request that started it.
        self._task = asyncio.get_running_loop().create_task(self._hold(), context=contextvars.Context())

    async def _hold(self) -> None:
        stderr = ServerStderr() if self.server.command else None
        try:
            async with connected(self.server, self._environ, stderr) as client:
                self.listing = processes_of(self.server, await tools_of(client, self.server))
                self.client = client
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:  # kept for whoever waits for the start; a cancel ends the task
            self._failure = exc
            self._ready.set()
            if not isinstance(exc, Exception):
                raise

    async def started(self) -> _Session:
        """This session once its tools are listed; ``Unreachable`` if the server did not get there in time."""
        try:
            async with asyncio.timeout(self.server.timeout):
                await self._ready.wait()
        except TimeoutError:
            self.stop()
            raise Unreachable(
                f"MCP server {self.server.name} did not start: no answer in {self.server.timeout:g} s"
            ) from None
        if self._failure is not None:
            if isinstance(self._failure, AgentctlError):
                raise self._failure
            raise Unreachable(f"MCP server {self.server.name} did not start: {self._failure}")
        return self

    @property
    def alive(self) -> bool:
        """Whether it is starting or open."""
        return not self._task.done() and not self._stop.is_set()

    def stop(self) -> None:
        """Close the session (a stdio server is asked to exit, then stopped); a start is cancelled."""
        self._stop.set()
        if not self._ready.is_set():
            self._task.cancel()


class McpSessions:
    """The sessions of one Python process (a router actor), by server entry and the secrets it uses."""

    def __init__(self) -> None:
        self._sessions: dict[str, _Session] = {}

    async def listing(self, servers: Iterable[McpServerSettings], environ: Mapping[str, str]) -> McpListing:
        """The tools of every server as processes, its session started if need be (all at once), and one
        line per server that could not be started or listed."""
        found, problems = usable(servers)
        outcomes = await asyncio.gather(*(self._session(s, environ) for s in found), return_exceptions=True)
        listing = McpListing(problems=problems)
        for outcome in outcomes:
            if isinstance(outcome, _Session):
                listing.processes.extend(outcome.listing.processes)
                listing.problems.extend(outcome.listing.problems)
            elif isinstance(outcome, Exception):
                listing.problems.append(str(outcome))
            else:
                raise outcome
        return listing

    async def call(
        self, server: McpServerSettings, environ: Mapping[str, str], tool: str, arguments: dict[str, Any]
    ) -> Any:
        """Call ``tool`` on the session with ``server``; a transport failure drops it (and is raised)."""
        session = await self._session(server, environ)
        try:
            return await call(session.client, server, tool, arguments)
        except Unreachable:
            self._drop(session)
            raise

    async def _session(self, server: McpServerSettings, environ: Mapping[str, str]) -> _Session:
        key = _key(server, environ)
        session = self._sessions.get(key)
        if session is None or not session.alive:
            session = self._sessions[key] = _Session(server, environ)
        try:
            return await session.started()
        except BaseException:
            self._drop(session)
            raise

    def _drop(self, session: _Session) -> None:
        session.stop()
        for key in [k for k, s in self._sessions.items() if s is session]:
            del self._sessions[key]


def _key(server: McpServerSettings, environ: Mapping[str, str]) -> str:
    """The entry with its ``${VAR}`` values: another caller's other token is another session."""
    values = (expanded(server, server.headers, environ), expanded(server, server.env, environ))
    return hashlib.sha256(json.dumps([server.model_dump(mode="json"), values]).encode()).hexdigest()


# The actor's sessions: one set per Python process, as there is one actor per process.
SESSIONS = McpSessions()
