"""Running the server for its lifetime on one warm session: over stdio, or streamable HTTP on 127.0.0.1.

Over stdio, stdout carries protocol messages only: before anything starts (Ray, Prefect, the
processes' imports), the wire is moved to descriptors of its own, and file descriptor 1 points at
stderr, so that whatever this process or its children print goes there. Over HTTP, every request
must carry the bearer token kept in ``<data_dir>/mcp_token`` (0600), made at the first ``--http``
start and printed that once; one without it gets 401 and nothing runs.
"""

from __future__ import annotations

import hmac
import io
import json
import os
import socket
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPDeprecationWarning

from agentctl.calls.catalog import catalog, list_for
from agentctl.calls.mcp.job import Job
from agentctl.calls.mcp.server import Context, Handlers, SessionRuns
from agentctl.calls.mcp.tools import ASK
from agentctl.calls.session import Session
from agentctl.config import Settings
from agentctl.errors import StackError, UsageError
from agentctl.execution.pool import CANCEL_WAIT
from agentctl.private import kept_token
from agentctl.stack.gateway import token_path

Say = Callable[[str], None]  # a line for the person who started the server (stderr)
TOKEN_FILE = "mcp_token"
HOST = "127.0.0.1"
RUN_TAG = "mcp"
ON_GATEWAY = "send secrets as Agentctl-Secret-<VARIABLE> headers; --standalone serves one of its own"
INSTRUCTIONS = (
    "agentctl runs registered processes (Prefect flows, tasks and deployments) on a pool of router actors. "
    "Call a process's tool with its arguments, or `ask` with a plain-language request."
)


def serve(settings: Settings, say: Say, http: bool = False, port: int | None = None, standalone: bool = False) -> int:
    """Serve agentctl's processes until the client leaves (stdio) or Ctrl-C (HTTP); exit code 0.

    Over HTTP with no ``port`` asked for, with the stack up for ``settings`` and its gateway answering,
    nothing more is served: the gateway serves the same tools on the stack's pool, and the line said
    names its endpoint. A ``port`` asked for is served (clients are configured with it)."""
    if http and port is None and not standalone and (url := gateway_endpoint(settings)) is not None:
        where = f"{url} (token in {token_path(settings)})"
        say(f"agentctl mcp serve: the stack's gateway serves MCP at {where}; {ON_GATEWAY}")
        return 0
    warnings.filterwarnings("ignore", category=MCPDeprecationWarning)  # logging: still what clients read
    wire = None if http else _claim_stdio()
    settings = tagged(settings)
    listing = list_for(settings)
    found = catalog(settings, listing)
    for problem in found.problems:
        say(f"warning: {problem}")
    if found.registry.get(ASK) is not None:
        say("warning: the process named ask is no tool of its own (the tool ask keeps the name): ask routes to it")
    with Session(settings, standalone=standalone, listing=listing) as session:
        session.warm()
        if session.notice:
            say(f"warning: {session.notice}")
        runs = SessionRuns(session, settings)
        handlers = Handlers(lambda ctx: runs, lambda: found.registry, settings)
        try:
            _run(mcp_server(handlers), settings, wire, port, say)
        finally:
            _stop(handlers.jobs)
    return 0


def gateway_endpoint(settings: Settings) -> str | None:
    """The URL of the gateway's MCP endpoint when the stack is up for ``settings`` and its gateway answers."""
    from agentctl.stack import gateway
    from agentctl.stack.health import unusable_for
    from agentctl.stack.state import read_state

    try:
        state = read_state(settings)
    except StackError:
        return None  # the server says why it serves on its own session (Session's notice)
    if state is None or not settings.gateway.enabled or unusable_for(state, settings) is not None:
        return None
    return gateway.mcp_url(state) if gateway.answers(settings, state) else None


def tagged(settings: Settings) -> Settings:
    """``settings`` whose runs carry the tag ``mcp`` too (after ``agentctl`` and ``process:<name>``)."""
    processes = settings.processes.model_copy(update={"run_tags": [*settings.processes.run_tags, RUN_TAG]})
    return settings.model_copy(update={"processes": processes})


def _claim_stdio() -> tuple[int, int]:
    """The wire's own descriptors (not inherited by children); stdin then reads nothing, stdout is stderr."""
    wire = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return wire


def mcp_server(handlers: Handlers) -> Server[Any]:
    """The protocol's server over ``handlers``: tools, calls and the logging level."""
    from agentctl import __version__

    server: Server[Any] = Server(
        "agentctl",
        version=__version__,
        title="agentctl",
        instructions=INSTRUCTIONS,
        on_list_tools=handlers.list_tools,
        on_call_tool=handlers.call_tool,
    )
    server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, _set_level)
    return server


async def _set_level(ctx: Context, params: types.SetLevelRequestParams) -> types.EmptyResult:
    """Accepted, so that clients of handshake versions see the logging capability; every level is sent."""
    return types.EmptyResult()


def _run(server: Server[Any], settings: Settings, wire: tuple[int, int] | None, port: int | None, say: Say) -> None:
    if wire is not None:
        say(f"agentctl mcp serve: stdio · {server.name} {server.version}")
        anyio.run(_stdio, server, wire)
    else:
        _http(server, settings, settings.mcp.serve.port if port is None else port, say)


async def _stdio(server: Server[Any], wire: tuple[int, int]) -> None:
    from mcp.server.stdio import stdio_server

    reader = io.TextIOWrapper(os.fdopen(wire[0], "rb"), encoding="utf-8", errors="replace")
    writer = io.TextIOWrapper(os.fdopen(wire[1], "wb"), encoding="utf-8")
    async with stdio_server(anyio.wrap_file(reader), anyio.wrap_file(writer)) as (read, write):
        await server.run(read, write, server.create_initialization_options())


def _http(server: Server[Any], settings: Settings, port: int, say: Say) -> None:
    import uvicorn

    token = http_token(settings.data_dir, say)
    listening = _listen(port)
    app = BearerToken(server.streamable_http_app(host=HOST), token, UNAUTHORIZED)
    say(f"agentctl mcp serve: http://{HOST}:{listening.getsockname()[1]}/mcp · Ctrl-C to stop")
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[listening])


def _listen(port: int) -> socket.socket:
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((HOST, port))
        listening.listen(128)  # a client may connect as soon as the address is printed
    except OSError as exc:
        listening.close()
        raise UsageError(
            f"cannot listen on {HOST}:{port} ({exc.strerror}): pass --port, or set mcp.serve.port"
        ) from None
    return listening


def http_token(data_dir: Path, say: Say) -> str:
    """The server's bearer token: the one kept in the data dir, else a new one, printed this once."""
    path = data_dir / TOKEN_FILE
    token, made = kept_token(path)
    if made:
        say(f"token (shown this once, kept in {path}): {token}")
    else:
        say(f"token: the one in {path} (send Authorization: Bearer <token>)")
    return token


UNAUTHORIZED = "send Authorization: Bearer <token>, the token agentctl mcp serve --http keeps in <data_dir>/mcp_token"


class BearerToken:
    """ASGI middleware: an HTTP request without ``Authorization: Bearer <token>`` gets 401, and ``said``."""

    def __init__(self, app: Any, token: str, said: str) -> None:
        self._app, self._expected, self._said = app, f"Bearer {token}".encode(), said

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self._allowed(scope):
            await _unauthorized(send, self._said)
            return
        await self._app(scope, receive, send)

    def _allowed(self, scope: dict[str, Any]) -> bool:
        given = dict(scope.get("headers", [])).get(b"authorization", b"")
        return hmac.compare_digest(given, self._expected)


async def _unauthorized(send: Any, said: str) -> None:
    body = json.dumps({"error": "invalid_token", "error_description": said}).encode()
    headers = [(b"content-type", b"application/json"), (b"www-authenticate", b'Bearer error="invalid_token"')]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _stop(jobs: set[Job]) -> None:
    """Cancel the calls still running, and give each the pool's time for its cancel to land."""
    for job in jobs:
        job.stop()
    for job in jobs:
        job.join(CANCEL_WAIT)
