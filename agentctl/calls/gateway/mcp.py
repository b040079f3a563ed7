"""MCP on the gateway: ``agentctl mcp serve``'s tools, as streamable HTTP at ``/mcp``, on the gateway's pool.

The handlers are ``mcp serve``'s (``calls.mcp.server``): the same tools, progress, logs, approval by
elicitation and cancellation. What differs is where a call runs: on the gateway's one pool, with the
stack's settings (the gateway's; an MCP request brings none), its runs tagged ``mcp``. Every HTTP
request needs the gateway's bearer token; the SDK's Host and Origin checks (DNS rebinding) stay on.

Secrets: the gateway holds none (``up`` starts it without them, and each ``/v1`` request brings its
caller's), so an MCP request brings its own as headers, ``Agentctl-Secret-<VARIABLE>: <value>``
(e.g. ``Agentctl-Secret-OPENAI_API_KEY``), for the variables the stack's settings name. They serve
that request's calls only, and are masked in everything sent back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from starlette.routing import Route

from agentctl.calls.approval import Approval, approved_events
from agentctl.calls.catalog import catalog, list_for
from agentctl.calls.gateway.callers import Callers
from agentctl.calls.gateway.wire import Approvals, AskBody, RunBody
from agentctl.calls.mcp.job import Job
from agentctl.calls.mcp.serve import HOST, BearerToken, mcp_server, tagged
from agentctl.calls.mcp.server import Check, Handlers
from agentctl.config import Settings
from agentctl.errors import MissingCredential, UsageError, redact
from agentctl.events import Event, Paused
from agentctl.processes.approval import Approved
from agentctl.processes.registry import Registry
from agentctl.stack.gateway import MCP_PATH

SECRET_HEADER = "agentctl-secret-"  # + the variable's name: HTTP header names are case-insensitive
UNAUTHORIZED = "send Authorization: Bearer <token>, the token in <data_dir>/gateway_token"


@dataclass
class Mounted:
    """The MCP endpoint, ready to join the gateway's app: its route, and the lifespan its sessions need."""

    route: Route
    lifespan: Callable[[Any], AbstractAsyncContextManager[None]]


def mcp_endpoint(callers: Callers, token: str, jobs: set[Job]) -> Mounted:
    """``/mcp`` over ``callers``, for requests that carry ``token``; its calls in flight join ``jobs``
    (the gateway's, cancelled when it stops)."""
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp

    settings = tagged(callers.stack.settings)

    def registry() -> Registry:  # at the first MCP request: the gateway starts without the user's code
        return catalog(settings, list_for(settings)).registry

    handlers = Handlers(lambda ctx: runs_for(callers, settings, ctx.request), registry, settings)
    handlers.jobs = jobs
    server = mcp_server(handlers)
    server.streamable_http_app(host=HOST)  # makes the session manager, with the SDK's Host/Origin checks
    manager = server.session_manager
    route = Route(MCP_PATH, BearerToken(StreamableHTTPASGIApp(manager), token, UNAUTHORIZED))
    return Mounted(route, lambda app: manager.run())


def runs_for(callers: Callers, settings: Settings, request: Any) -> StackRuns:
    """The runs of the calls ``request`` (the HTTP request) carries, with the secrets its headers bring."""
    headers = request.headers.items() if request is not None else []
    secrets, problem = header_secrets(headers, settings)
    return StackRuns(callers, settings, secrets, problem)


def header_secrets(headers: Any, settings: Settings) -> tuple[dict[str, str], str | None]:
    """The secrets in ``Agentctl-Secret-<VARIABLE>`` headers, by variable; and what is wrong with them."""
    known = {name.lower(): name for name in settings.secret_names()}
    secrets: dict[str, str] = {}
    for key, value in headers:
        if not key.lower().startswith(SECRET_HEADER):
            continue
        given = key[len(SECRET_HEADER) :].upper()  # headers arrive lowercased; variables are named in capitals
        if given.lower() not in known:
            names = ", ".join(sorted(known.values()))
            return {}, f"header Agentctl-Secret-{given}: {given} is no secret the stack's settings use ({names})"
        secrets[known[given.lower()]] = value.strip()
    return secrets, None


class StackRuns:
    """One HTTP request's MCP calls on the gateway's pool, as ``/v1`` calls that brought ``secrets``."""

    def __init__(self, callers: Callers, settings: Settings, secrets: dict[str, str], problem: str | None) -> None:
        self._callers, self._settings, self._secrets, self._problem = callers, settings, secrets, problem

    def ask(self, request: str, approval: Approval, check: Check) -> Iterator[Event]:
        """The request's events; without an LLM key among the secrets, an error that names the header."""
        self._refuse_bad_headers()
        self._need_key()
        body = AskBody(request=request, secrets=self._secrets, approved=_approvals(approval.approved))

        def resume(paused: Paused, approved: Approved) -> Iterator[Event]:
            again = body.model_copy(update={"resume": paused, "approved": _approvals(approved)})
            return self._callers.ask(again, self._settings, check)

        events = self._callers.ask(body, self._settings, check)
        return approved_events(events, approval, self._by_name(check), resume)

    def run(self, name: str, arguments: dict[str, Any], approval: Approval, check: Check) -> Iterator[Event]:
        """The run's events."""
        self._refuse_bad_headers()
        by_name = self._by_name(check)
        return approved_events(by_name(name, arguments, approval.approved), approval, by_name)

    def _by_name(self, check: Check) -> Callable[[str, dict[str, Any], Approved], Iterator[Event]]:
        """How a process runs by name (the approved run of a question answered yes, too)."""

        def run(name: str, arguments: dict[str, Any], approved: Approved) -> Iterator[Event]:
            body = RunBody(arguments=arguments, secrets=self._secrets, approved=_approvals(approved))
            return self._callers.run(name, body, self._settings, check)

        return run

    def _need_key(self) -> None:
        """The LLM key must be among the request's secrets: the gateway has none of its own to fall back on."""
        try:
            self._settings.api_key(self._secrets)
        except MissingCredential:
            variable = self._settings.llm.key_env()
            raise MissingCredential(
                f"no LLM API key: the gateway keeps none; send the header Agentctl-Secret-{variable} "
                "with the MCP client's requests"
            ) from None

    def _refuse_bad_headers(self) -> None:
        if self._problem is not None:
            raise UsageError(f"{self._problem}: fix the MCP client's headers")

    def redact(self, text: str) -> str:
        """``text`` without the values of this request's secrets."""
        return redact(text, list(self._secrets.values()))


def _approvals(approved: Approved) -> Approvals:
    return Approvals(everything=approved.everything, names=sorted(approved.names))
