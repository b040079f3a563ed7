"""The gateway's HTTP API (FastAPI), documented at ``/docs`` (``/openapi.json``).

Every ``/v1`` route needs ``Authorization: Bearer <token>`` (``<data_dir>/gateway_token``): without
it, or with another, 401 and nothing runs. ``POST /v1/ask`` and ``POST /v1/processes/{name}/runs``
answer with NDJSON: one event of ``agentctl.events`` a line, sent as it happens; a client that goes
away cancels its request in its actor (its Prefect run ends Cancelled). Errors before a stream starts
are JSON: ``{"error", "message", "exit_code"}``. ``/mcp`` serves MCP (streamable HTTP), see ``gateway.mcp``.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any, Protocol, cast

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agentctl.calls.gateway.batches import batch_router
from agentctl.calls.gateway.callers import Callers, Check, NotServed
from agentctl.calls.gateway.streams import KEPT_ALIVE, STOPPED, kept_alive, not_expired
from agentctl.calls.gateway.wire import NDJSON, AskBody, RunBody
from agentctl.calls.mcp.job import End, Job
from agentctl.errors import AgentctlError, NotFound, StackError, UsageError, redact
from agentctl.events import Event, Failed
from agentctl.processes.approval import NOTHING
from agentctl.views import CancelOutput, RunDetail, RunRow

STREAMED: dict[int | str, dict[str, Any]] = {
    200: {"content": {NDJSON: {}}, "description": "One event a line (agentctl.events), as they happen."}
}
STATUS = [(NotServed, 409), (NotFound, 404), (UsageError, 400), (StackError, 503)]
SCHEME = HTTPBearer(auto_error=False, description="The token in <data_dir>/gateway_token.")
Credentials = Annotated[
    HTTPAuthorizationCredentials | None, Depends(SCHEME)
]  # module-level: FastAPI resolves it by name
# A quiet stream (a long run) gets an empty line this often, which NDJSON readers skip: a client
# whose read times out (gateway.read_timeout, a few times this) knows the gateway hangs or is gone.
NO_ONE = "the gateway asks no one"  # approval: the stream ends at ``paused``; the caller asks, then resumes


class Running(Protocol):
    """A request in flight (a ``Job``, a batch): cancelled in its actors when the gateway stops."""

    def stop(self) -> None:
        """Cancel it: its stream ends soon after."""

    def join(self, timeout: float) -> None:
        """Wait, at most ``timeout`` seconds, until its cancels have reached the actors."""


class Gateway:
    """The requests in flight, so that a stopping gateway cancels them first."""

    def __init__(self) -> None:
        self.jobs: set[Running] = set()
        self.stopping = False

    def stop(self) -> None:
        """Cancel every request in flight (in its actor); their streams end with one ``failed`` line."""
        self.stopping = True
        for job in list(self.jobs):
            job.stop()


def make_app(callers: Callers, token: str, gateway: Gateway) -> FastAPI:
    """The API over ``callers``, for requests that carry ``token``."""
    from agentctl import __version__
    from agentctl.calls.gateway.mcp import mcp_endpoint

    # MCP streamable HTTP at /mcp, on the same pool; it adds only Jobs to the set of what runs.
    mcp = mcp_endpoint(callers, token, cast("set[Job]", gateway.jobs))
    app = FastAPI(title="agentctl gateway", version=__version__, description=__doc__ or "", lifespan=mcp.lifespan)
    app.add_exception_handler(AgentctlError, _error)  # type: ignore[arg-type]
    app.include_router(_streams(callers, gateway), dependencies=[Depends(_bearer(token))])
    app.include_router(_reads(callers), dependencies=[Depends(_bearer(token))])
    app.include_router(batch_router(callers, gateway), dependencies=[Depends(_bearer(token))])
    app.router.routes.append(mcp.route)
    return app


def _bearer(token: str) -> Callable[[HTTPAuthorizationCredentials | None], None]:
    expected = token.encode()

    def check(credentials: Credentials) -> None:
        given = (credentials.credentials if credentials else "").encode()
        if not hmac.compare_digest(given, expected):
            raise HTTPException(
                401,
                "send Authorization: Bearer <the token in <data_dir>/gateway_token>",
                {"WWW-Authenticate": "Bearer"},
            )

    return check


async def _error(request: Request, exc: AgentctlError) -> JSONResponse:
    status = next((code for kind, code in STATUS if isinstance(exc, kind)), 500)
    body = {"error": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code}
    return JSONResponse(body, status_code=status)


def _streams(callers: Callers, gateway: Gateway) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.post("/ask", response_class=StreamingResponse, responses=STREAMED)
    async def ask(body: AskBody) -> StreamingResponse:
        """Carry out a plain-language request; stream its events."""
        not_expired(body)
        settings = callers.settings(body)
        return _streamed(lambda stop: callers.ask(body, settings, stop), body.secrets, gateway)

    @router.post("/processes/{name}/runs", response_class=StreamingResponse, responses=STREAMED)
    async def run(name: str, body: RunBody) -> StreamingResponse:
        """Run process ``name`` with ``arguments``, without the LLM; stream its events."""
        not_expired(body)
        settings = callers.settings(body)
        return _streamed(lambda stop: callers.run(name, body, settings, stop), body.secrets, gateway)

    return router


def _streamed(
    events: Callable[[Check], Iterator[Event]], secrets: dict[str, str], gateway: Gateway
) -> StreamingResponse:
    """The events as NDJSON, produced in a thread of their own (Ray's waits block)."""
    job = Job(lambda approval, check: _raised(events(check)), NOTHING, NO_ONE, 0.0)
    return StreamingResponse(_lines(job, list(secrets.values()), gateway), media_type=NDJSON)


def _raised(events: Iterator[Event]) -> Iterator[Event]:
    """``events``; an error raised here (the pool, the stack) ends them as a ``Failed`` marked ``raised``,
    so that a client raises it as a call through Ray would."""
    try:
        yield from events
    except AgentctlError as exc:
        yield Failed(message=str(exc), exit_code=exc.exit_code, error=type(exc).__name__, raised=True)


async def _lines(job: Job, secrets: list[str], gateway: Gateway) -> AsyncIterator[bytes]:
    gateway.jobs.add(job)
    job.start()
    try:
        yield KEPT_ALIVE  # at once: a stream cut before its first event is then told from an empty one
        async with contextlib.aclosing(kept_alive(job.items)) as items:
            async for item in items:
                if isinstance(item, End):
                    break
                # no Question: these events never ask
                yield KEPT_ALIVE if item is None else _line(item, secrets)  # type: ignore[arg-type]
        if gateway.stopping:
            yield _line(Failed(message=STOPPED, error="StackError", raised=True), secrets)
    finally:  # a client that went away lands here too (cancelled): its request is cancelled in its actor
        job.stop()
        gateway.jobs.discard(job)


def _line(event: Event, secrets: list[str]) -> bytes:
    # A request's errors may quote what the caller sent; its secrets never go back out, nor anywhere else.
    return (redact(event.model_dump_json(), secrets) + "\n").encode()


def _reads(callers: Callers) -> APIRouter:
    from agentctl.calls.history import cancel as cancel_run
    from agentctl.calls.history import history, recent, show, state_type

    router = APIRouter(prefix="/v1")
    settings = callers.stack.settings

    @router.get("/health")
    def health() -> dict[str, Any]:
        """The gateway answers; the stack's actors it serves."""
        return {"ok": True, "actors": callers.stack.state.actors}

    @router.get("/processes")
    def processes() -> list[dict[str, Any]]:
        """The processes the stack's actors run (and the configured deployments)."""
        return callers.processes()

    @router.get("/status")
    def status() -> dict[str, Any]:
        """What ``agentctl status --json`` shows."""
        return callers.status()

    @router.get("/runs", response_model=list[RunRow])
    def runs(limit: int = 20, state: str | None = None, process: str | None = None) -> list[RunRow]:
        """Recent requests and runs agentctl started, newest first."""
        with history(settings) as h:
            return recent(h, limit, state_type(state) if state else None, process)

    @router.get("/runs/{run_id}", response_model=RunDetail)
    def run(run_id: str) -> RunDetail:
        """One run: parameters, result, states, logs, the runs under it."""
        with history(settings) as h:
            return show(h, run_id)

    @router.post("/runs/{run_id}/cancel", response_model=CancelOutput)
    def cancel(run_id: str) -> CancelOutput:
        """Cancel a run agentctl started (one that ended is left as it is)."""
        with history(settings) as h:
            return cancel_run(h, run_id)

    return router
