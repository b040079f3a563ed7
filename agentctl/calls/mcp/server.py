"""The MCP server's handlers: the tool list, and each call run on the session's pool.

A call's events stream from the pool (``job``); log lines go to the client as ``notifications/message``
and each event as ``notifications/progress`` when the call carried a progress token; the result
comes as structured content plus text (``tools.call_result``).

Approval: a run that waits for a person's yes asks the client by elicitation, in the way its protocol
version allows: a form sent while the call waits (handshake versions), or an input-required result
whose answer comes with the call's retry (2026-07-28, where a server sends no requests). A client
that cannot be asked gets the call refused, with the setting that allows it (``auto_approve``).

Cancellation: the SDK cancels a call's handler when the client sends ``notifications/cancelled``;
the handler then stops its job, which cancels the request in its actor (its run ends Cancelled).

Where a call runs is the ``Runs`` the handlers are given for it: ``mcp serve``'s one warm session
(``SessionRuns``), or the gateway's pool for the HTTP request that carried the call.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from agentctl.calls.approval import Answer, Approval
from agentctl.calls.mcp.job import End, Events, Job, Question
from agentctl.calls.mcp.tools import ASK, call_result, failed, offered, tool_list
from agentctl.calls.session import Session
from agentctl.config import Settings
from agentctl.errors import redact
from agentctl.events import ApprovalNeeded, Event, Failed, Log, Result, Routed, Started
from agentctl.processes.approval import NOTHING
from agentctl.processes.registry import Process, Registry, describe_validation_error
from agentctl.views import AskOutput

Context = ServerRequestContext[Any, Any]
APPROVAL = "approval"  # the key of the approval question in an input-required result
APPROVAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"approve": {"type": "boolean", "title": "Run it", "default": False}},
    "required": ["approve"],
}
LEVELS = {"DEBUG": "debug", "INFO": "info", "WARNING": "warning", "ERROR": "error", "CRITICAL": "critical"}
Check = Callable[[], None]


class Runs(Protocol):
    """Where a call's events come from, and what of them must never reach the client (its secrets)."""

    def ask(self, request: str, approval: Approval, check: Check) -> Iterator[Event]:
        """The events of a plain-language request; ``check`` raises once the call is abandoned."""
        ...

    def run(self, name: str, arguments: dict[str, Any], approval: Approval, check: Check) -> Iterator[Event]:
        """The events of a run of process ``name`` with validated ``arguments``."""
        ...

    def redact(self, text: str) -> str:
        """``text`` without the secrets the call's runs were given."""
        ...


RunsFor = Callable[[Any], Runs]  # the runs of the calls one request context (``Context``) carries


class SessionRuns:
    """``mcp serve``'s calls: on its one warm session, with the secrets of the environment it started in."""

    def __init__(self, session: Session, settings: Settings) -> None:
        self._session, self._settings = session, settings
        self._secrets = settings.secret_values()

    def ask(self, request: str, approval: Approval, check: Check) -> Iterator[Event]:
        """The request's events; a missing LLM key fails the call (not the server)."""
        self._settings.api_key()
        return self._session.ask(request, None, approval, check=check)

    def run(self, name: str, arguments: dict[str, Any], approval: Approval, check: Check) -> Iterator[Event]:
        """The run's events, on the session's pool."""
        return self._session.run(name, arguments, approval, check=check)

    def redact(self, text: str) -> str:
        """``text`` without the values of the secrets the settings name."""
        return redact(text, self._secrets)


@dataclass
class Call:
    """One call in flight: its job, the record of its events, and how its text is redacted."""

    job: Job
    record: AskOutput
    redact: Callable[[str], str]


class Handlers:
    """What the server answers; each call runs where ``runs_for`` says for the request that carried it."""

    def __init__(self, runs_for: RunsFor, registry: Callable[[], Registry], settings: Settings) -> None:
        self._runs_for, self._settings = runs_for, settings
        self._registry = registry  # called at the first request: the gateway starts without the user's code
        self._listing = anyio.Lock()
        self._processes: dict[str, Process] = {}
        self._tools: list[types.Tool] | None = None
        self._waiting: dict[str, Call] = {}  # calls awaiting their retry's answer
        self.jobs: set[Job] = set()

    async def list_tools(self, ctx: Context, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        """Every tool, on one page."""
        return types.ListToolsResult(tools=await self._listed())

    async def _listed(self) -> list[types.Tool]:
        """The tools, the processes they run listed once (in a thread: it imports them, asks Prefect
        for deployments and MCP servers for their tools)."""
        async with self._listing:
            if self._tools is None:
                found = await anyio.to_thread.run_sync(self._registry)
                self._processes = {process.name: process for process in offered(found)}
                self._tools = tool_list(list(self._processes.values()), self._settings)
            return self._tools

    async def call_tool(
        self, ctx: Context, params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Run the tool's process (or the request, for ``ask``) and follow it to its result."""
        if params.request_state is not None:
            return await self._resume(ctx, params)
        await self._listed()
        started = self._start(ctx, params.name, params.arguments or {})
        if isinstance(started, types.CallToolResult):
            return started
        return await self._follow(ctx, started)

    def _start(self, ctx: Context, name: str, arguments: dict[str, Any]) -> Call | types.CallToolResult:
        runs = self._runs_for(ctx)
        events = self._events(runs, name, arguments)
        if isinstance(events, types.CallToolResult):
            return events
        request = arguments.get("request") if name == ASK else ""
        job = Job(events, NOTHING, _cannot_ask(ctx), self._settings.mcp.serve.approval_wait)
        self.jobs.add(job)
        job.start()
        return Call(job, AskOutput(request=str(request)), runs.redact)

    def _events(self, runs: Runs, name: str, arguments: dict[str, Any]) -> Events | types.CallToolResult:
        """How the call's events come, or why it cannot start."""
        if name == ASK:
            return self._ask_events(runs, arguments)
        process = self._processes.get(name)
        if process is None:
            raise MCPError(types.INVALID_PARAMS, f"no tool named {name!r}: tools/list names the tools there are")
        try:
            valid = process.validate(arguments)
        except ValidationError as exc:
            return failed(f"bad arguments for {name}: {describe_validation_error(exc)}")

        def run(approval: Approval, check: Check) -> Iterator[Event]:
            return runs.run(name, valid, approval, check)

        return run

    def _ask_events(self, runs: Runs, arguments: dict[str, Any]) -> Events | types.CallToolResult:
        request = arguments.get("request")
        if not isinstance(request, str) or not request.strip() or set(arguments) != {"request"}:
            return failed('ask takes one argument, the request in plain language: {"request": "..."}')

        def ask(approval: Approval, check: Check) -> Iterator[Event]:
            return runs.ask(request, approval, check)  # in the job: a missing key fails the call, not the server

        return ask

    async def _follow(self, ctx: Context, call: Call) -> types.CallToolResult | types.InputRequiredResult:
        """Pass the job's events on until its end (or a question to ask in the call's retry)."""
        try:
            async for item in call.job.items:
                if isinstance(item, End):
                    break
                if isinstance(item, Question):
                    later = await self._ask(ctx, call, item.needed)
                    if later is not None:
                        return later
                    continue
                call.record.add(item)
                await self._tell(ctx, call, item)
        except anyio.get_cancelled_exc_class():
            call.job.stop()  # the client cancelled: the request is cancelled in its actor
            self.jobs.discard(call.job)
            raise
        self.jobs.discard(call.job)
        return call_result(call.record, call.redact)

    async def _resume(
        self, ctx: Context, params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        """The retry of a call that asked for approval: its answer, then the rest of its events."""
        waiting = self._waiting.pop(params.request_state or "", None)
        if waiting is None:
            return failed(f"{params.name}: that approval is no longer awaited (answered, or too late): call it again")
        waiting.job.answer(_answer((params.input_responses or {}).get(APPROVAL)))
        return await self._follow(ctx, waiting)

    async def _ask(self, ctx: Context, call: Call, needed: ApprovalNeeded) -> types.InputRequiredResult | None:
        """Ask the client about ``needed``: now (a form request), or in the call's retry."""
        form = types.ElicitRequestFormParams(message=_question(needed, call.redact), requested_schema=APPROVAL_SCHEMA)
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            state = secrets.token_urlsafe(16)
            self._waiting[state] = call
            return types.InputRequiredResult(
                input_requests={APPROVAL: types.ElicitRequest(params=form)}, request_state=state
            )
        try:
            result = await ctx.session.elicit_form(form.message, APPROVAL_SCHEMA, related_request_id=ctx.request_id)
        except MCPError:
            result = None  # the client could not ask: no yes
        call.job.answer(_answer(result))
        return None

    async def _tell(self, ctx: Context, call: Call, event: Event) -> None:
        """The event as the client sees it while the call runs: a log line, and progress."""
        line = _line(event)
        if line is None:
            return
        call.job.told += 1
        if isinstance(event, Log):
            level: Any = LEVELS.get(event.level.upper(), "info")
            await ctx.session.send_log_message(level, call.redact(event.message), event.run_name, ctx.request_id)
        await ctx.session.report_progress(call.job.told, None, call.redact(line))


def _question(needed: ApprovalNeeded, redact: Callable[[str], str]) -> str:
    lines = [f"{needed.process} needs your approval before it runs, with:"]
    lines += [f"  {name} = {value!r}" for name, value in needed.arguments.items()]
    return redact("\n".join([*lines, "Run it?"]))


def _line(event: Event) -> str | None:
    """One line saying what ``event`` tells, for progress; None for what says nothing by itself."""
    if isinstance(event, Log):
        return f"{event.run_name} │ {event.message}"
    if isinstance(event, Routed):
        arguments = ", ".join(f"{k}={v!r}" for k, v in event.arguments.items())
        return f"→ {event.process}({arguments})  [{event.process_kind}]"
    if isinstance(event, Started):
        return f"⇢ flow run {event.run.name} ({event.run.id}) started"
    if isinstance(event, Result):
        return f"{event.process} · {event.run.kind} run {event.run.name} · {event.run.state}"
    if isinstance(event, Failed):
        return f"failed: {event.message}"
    return None


def _cannot_ask(ctx: Context) -> str | None:
    """Why this client cannot be asked for approval, or None when it can."""
    capabilities = ctx.session.client_capabilities
    if capabilities is None or capabilities.elicitation is None:
        return "this MCP client cannot be asked (it does not support elicitation)"
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS and not ctx.session.can_send_request:
        return "this MCP connection cannot carry a question to the client"
    return None


def _answer(result: types.ElicitResult | Any) -> Answer:
    """Yes only for an accepted form whose ``approve`` is true."""
    if not isinstance(result, types.ElicitResult) or result.action != "accept":
        return Answer.NO
    return Answer.YES if (result.content or {}).get("approve") is True else Answer.NO
