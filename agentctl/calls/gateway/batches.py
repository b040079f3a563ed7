"""``POST /v1/batch``: a batch through the gateway's pool, its items read from the request body as
they arrive and its records streamed back as they finish (``calls.batch.wire`` says what goes over).

The body is received on the event loop (``Body``); the batch's driver (``calls.batch.drive``: at most
N items in flight, the next line read only when a slot frees) runs in a thread of its own
(``BatchJob``), as a CLI's batch would, on a view of the pool with the caller's settings and secrets.
The client going away stops the batch: no new item starts, and the items in flight are cancelled in
their actors (their Prefect runs end Cancelled).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import aclosing, closing, suppress
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from agentctl.calls.approval import Approval, approved_events
from agentctl.calls.batch import PER_ACTOR, Options, Outcome, ask_items, run_items
from agentctl.calls.batch.engine import Check, Stopped
from agentctl.calls.batch.reader import Malformed, Overlong, argument_sets, requests
from agentctl.calls.batch.wire import BatchCall, MalformedLine, Opened, Recorded
from agentctl.calls.gateway.callers import Callers, again_if_dead
from agentctl.calls.gateway.streams import KEPT_ALIVE, STOPPED, kept_alive, not_expired
from agentctl.calls.gateway.wire import NDJSON
from agentctl.config import Settings
from agentctl.errors import AgentctlError, UsageError, redact
from agentctl.events import Event, Failed, Log, Paused
from agentctl.execution.pool import Pool
from agentctl.processes.approval import Approved

if TYPE_CHECKING:
    from agentctl.calls.gateway.app import Gateway

READ_AHEAD = 64  # item lines received before the batch reads them; then the client's sending waits
MAX_LINE = 1 << 20  # bytes of one body line: a longer one is a malformed item, and not held
OUT_BUFFER = 64  # lines produced and not yet sent before the batch waits for its client to read
BODY = {
    "required": True,
    "content": {
        NDJSON: {
            "schema": {"type": "string"},
            "example": '{"secrets": {"OPENAI_API_KEY": "sk-..."}}\n{"id": "a", "request": "stars for acme/rocket"}\n',
        }
    },
    "description": "NDJSON, sent as it is read: a BatchCall, then one item a line (JSON Lines or text).",
}
STREAMED: dict[int | str, dict[str, Any]] = {
    200: {"content": {NDJSON: {}}, "description": "batch, then log, malformed and record lines as they happen."}
}


def batch_router(callers: Callers, gateway: Gateway) -> APIRouter:
    """The batch endpoint over ``callers``; ``gateway`` stops its batches with the requests in flight."""
    router = APIRouter(prefix="/v1")

    @router.post("/batch", response_class=Response, responses=STREAMED, openapi_extra={"requestBody": BODY})
    async def batch(request: Request) -> Response:
        """Run a batch: the body's first line is who calls and how, each later line an item; stream
        back one line per finished item (its record), malformed item line and warning."""

        body = Body(request.receive)
        call = _call(await body.header())
        not_expired(call)  # its caller went through Ray meanwhile: not run twice
        settings = callers.settings(call)
        job = BatchJob(lambda lines, stop: _outcomes(callers, call, settings, lines, stop), body, call.secrets)
        return _Streamed(body, job, gateway)

    return router


def _call(header: bytes) -> BatchCall:
    """The body's first line as a ``BatchCall``; a ``UsageError`` (400) naming what is wrong."""
    if not header.strip():
        raise UsageError("the body's first line must be the batch's JSON object, e.g. {\"secrets\": {...}}")
    try:
        return BatchCall.model_validate_json(header)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"])
        where = f"{loc}: " if loc else ""
        raise UsageError(f"the batch's first line: {where}{first['msg']}: send one JSON object, e.g. {{}}") from None


def _outcomes(
    callers: Callers, call: BatchCall, settings: Settings, lines: Iterable[str], stop: Check
) -> Generator[Outcome | Opened, None, None]:
    """The batch's outcomes, after the line that says how many run at once (in the job's thread)."""
    served = _Pooled(callers, call, settings, stop)
    concurrency = call.concurrency or PER_ACTOR * served.pool_size  # as agentctl batch on this pool
    options = Options(concurrency, yes=call.approved.everything, approve=frozenset(call.approved.names))
    yield Opened(concurrency=concurrency)
    if call.process is not None:
        yield from run_items(served, call.process, argument_sets(lines), options)
    else:
        yield from ask_items(served, settings, requests(lines), options)


class _Pooled:
    """The gateway's pool for one caller's batch (``calls.batch.Served``): deployments listed once."""

    def __init__(self, callers: Callers, call: BatchCall, settings: Settings, stop: Check) -> None:
        self._pool, self._problems, self._check = callers.ready(call, settings, stop)
        self.on_sqlite = callers.stack.state.database == "sqlite"

    @property
    def pool_size(self) -> int:
        return self._pool.size

    def notices(self) -> Iterator[Log]:
        for problem in self._problems:
            yield Log(time=time.time(), level="WARNING", run_name="agentctl", message=problem)

    def ask(self, request: str, model: str | None, approval: Approval, check: Check) -> Iterator[Event]:
        pool, both = self._pool, self._both(check)
        events = again_if_dead(lambda: pool.ask(request, model, check=both, approved=approval.approved))

        def resume(paused: Paused, approved: Approved) -> Iterator[Event]:  # as a session goes on (calls.session)
            return pool.ask(request, model, check=both, approved=approved, resume=paused)

        return approved_events(events, approval, _runner(pool, both), resume)

    def run(self, name: str, arguments: dict[str, Any], approval: Approval, check: Check) -> Iterator[Event]:
        pool, both = self._pool, self._both(check)
        events = again_if_dead(lambda: pool.run(name, arguments, check=both, approved=approval.approved))
        return approved_events(events, approval, _runner(pool, both))

    def _both(self, check: Check) -> Check:
        def both() -> None:
            check()
            self._check()

        return both


def _runner(pool: Pool, check: Check) -> Callable[[str, dict[str, Any], Any], Iterator[Event]]:
    def run(name: str, arguments: dict[str, Any], approved: Any) -> Iterator[Event]:
        return pool.run(name, arguments, check=check, approved=approved)

    return run


class Body:
    """A request body's lines as they arrive: received on the event loop, read in the batch's thread.

    At most ``READ_AHEAD`` lines wait; while they do, the body is received only to see the client
    go (and at most ``MAX_LINE`` bytes of it), so the client's sending waits. ``gone``: the client
    went away. A line longer than ``MAX_LINE`` is handed on as an ``Overlong`` (a malformed item)
    and skipped up to its line break.
    """

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._pending = b""  # received, not yet a whole line
        self._ended = False
        self._skipping = False  # the rest of an overlong line is dropped as it comes
        self.gone = False
        self._went: Callable[[], None] = lambda: None
        self._send, self._lines = anyio.create_memory_object_stream[str](READ_AHEAD)

    async def header(self) -> bytes:
        """The body's first line, received before the answer starts; a ``UsageError`` (400) when it is overlong."""
        while b"\n" not in self._pending and not self._ended:
            await self._take()
            if len(self._pending) > MAX_LINE and b"\n" not in self._pending[:MAX_LINE]:
                raise UsageError(f"the batch's first line is longer than {MAX_LINE} bytes: send one JSON object a line")
        line, _, self._pending = self._pending.partition(b"\n")
        return line

    async def pump(self, went: Callable[[], None]) -> None:
        """Receive the rest of the body into lines until its end, then wait for the client to go;
        ``went`` as soon as it goes."""
        self._went = went
        await self._received()
        while not self.gone:
            await self._take()
            self._pending = b""  # past the body's end: nothing more is an item

    async def _received(self) -> None:
        async with self._send:  # closed at the end: the batch's reading ends
            while not self.gone:
                for line in self._whole():
                    await self._hand(line)
                    if self.gone:  # nobody waits for what it sent last
                        return
                if b"\n" in self._pending:  # received while a line waited to be handed on
                    continue
                if self._ended:
                    break
                await self._take()
            if self._pending.strip() and not self.gone:  # a last line without its line break
                await self._hand(self._pending.decode("utf-8", errors="replace"))

    def _whole(self) -> list[str]:
        """The whole lines received so far (an overlong one as ``Overlong``); a line not yet whole
        that is overlong already is handed on now, its rest dropped as it comes."""
        *whole, self._pending = self._pending.split(b"\n")
        if self._skipping and whole:
            whole, self._skipping = whole[1:], False  # the overlong line's end
        if self._skipping:
            self._pending = b""
        lines = [_text(line) for line in whole]
        if len(self._pending) > MAX_LINE:
            lines.append(_text(self._pending))
            self._pending, self._skipping = b"", True
        return lines

    async def _hand(self, line: str) -> None:
        """Hand ``line`` to the batch; while it has ``READ_AHEAD`` lines waiting, watch for the client's going."""
        with suppress(anyio.WouldBlock):
            return self._send.send_nowait(line)
        async with anyio.create_task_group() as group:
            group.start_soon(self._watch, group.cancel_scope)
            await self._send.send(line)
            group.cancel_scope.cancel()

    async def _watch(self, handing: anyio.CancelScope) -> None:
        """Receive while a line waits to be handed on (what comes is kept, at most ``MAX_LINE`` bytes
        of it): the client that goes meanwhile stops the batch at once."""
        while not self.gone and len(self._pending) <= MAX_LINE:
            await self._take()
        if self.gone:
            handing.cancel()

    async def _take(self) -> None:
        """One message of the body (or the client's going)."""
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.gone = self._ended = True
            self._went()
            return
        self._pending += message.get("body", b"")
        self._ended = not message.get("more_body", False)

    def lines(self, token: anyio.lowlevel.EventLoopToken) -> Iterator[str]:
        """In the batch's thread: the item lines, each as it is read; ``Stopped`` once the client went."""
        while True:
            try:
                line = anyio.from_thread.run(self._lines.receive, token=token)
            except (anyio.EndOfStream, anyio.ClosedResourceError, RuntimeError):
                break
            if self.gone:
                break
            yield line
        if self.gone:
            raise Stopped


Outcomes = Callable[[Iterable[str], Check], Generator[Outcome | Opened, None, None]]


class BatchJob:
    """One batch's outcomes, produced in a thread as NDJSON lines (redacted), received on the loop."""

    def __init__(self, outcomes: Outcomes, body: Body, secrets: dict[str, str]) -> None:
        self._outcomes, self._body, self._secrets = outcomes, body, list(secrets.values())
        self._token = anyio.lowlevel.current_token()
        self._stop = threading.Event()
        self._send, self.lines = anyio.create_memory_object_stream[bytes](OUT_BUFFER)
        self._thread = threading.Thread(target=self._produce, name="gateway-batch", daemon=True)

    def start(self) -> None:
        """Start the batch."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the batch: no new item starts, those in flight are cancelled in their actors."""
        self._stop.set()

    def join(self, timeout: float) -> None:
        """Wait, at most ``timeout`` seconds, for the batch's thread (its cancels reaching the actors)."""
        self._thread.join(timeout)

    def _check(self) -> None:
        if self._stop.is_set():
            raise Stopped

    def _produce(self) -> None:
        try:
            with closing(self._outcomes(self._body.lines(self._token), self._check)) as outcomes:
                for outcome in outcomes:  # closed however this ends: the items in flight are cancelled
                    self._put(_line(outcome))
        except Stopped:
            pass
        except AgentctlError as exc:
            self._put(_line(Failed(message=str(exc), exit_code=exc.exit_code, error=type(exc).__name__, raised=True)))
        except Exception as exc:  # the batch fails, the gateway serves on
            self._put(_line(Failed(message=f"internal error: {type(exc).__name__}: {exc}", raised=True)))
        finally:
            with suppress(RuntimeError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                anyio.from_thread.run_sync(self._send.close, token=self._token)

    def _put(self, line: str) -> None:
        # Waits while the client reads slowly; raises Stopped once nobody reads (the client went).
        try:
            anyio.from_thread.run(self._send.send, redact(line, self._secrets).encode(), token=self._token)
        except (RuntimeError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise Stopped from None


def _text(line: bytes) -> str:
    """A line of the body as the batch reads it (an ``Overlong`` past ``MAX_LINE`` bytes)."""
    if len(line) > MAX_LINE:
        return Overlong(line[:1].decode("utf-8", errors="replace"))
    return line.decode("utf-8", errors="replace")


def _line(outcome: Outcome | Opened | Failed) -> str:
    """One outcome as a line of the answer (a record without the turn its conversation would keep)."""
    if isinstance(outcome, Malformed):
        return MalformedLine(line=outcome.line, reason=outcome.reason).model_dump_json() + "\n"
    if isinstance(outcome, Log | Opened | Failed):
        return outcome.model_dump_json() + "\n"
    return Recorded(record=outcome).model_dump_json(exclude={"record": {"turn"}}) + "\n"


class _Streamed(Response):
    """The batch's answer: its lines as they come, while the body is still received (an ASGI
    response of its own: Starlette's streaming one would read the body to watch for a disconnect)."""

    def __init__(self, body: Body, job: BatchJob, gateway: Gateway) -> None:
        super().__init__(media_type=NDJSON)
        self.raw_headers = [(b"content-type", NDJSON.encode())]  # no content-length: chunked, as it comes
        self._body, self._job, self._gateway = body, job, gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        self._gateway.jobs.add(self._job)
        self._job.start()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._body.pump, self._job.stop)
                await self._relay(send)
                group.cancel_scope.cancel()
        finally:  # the client gone, the gateway stopping, or the batch over: nothing more starts
            self._job.stop()
            self._job.lines.close()
            self._gateway.jobs.discard(self._job)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _relay(self, send: Send) -> None:

        async with aclosing(kept_alive(self._job.lines)) as lines:
            async for line in lines:
                await send({"type": "http.response.body", "body": line or KEPT_ALIVE, "more_body": True})
        if self._gateway.stopping:
            stopped = Failed(message=STOPPED, error="StackError", raised=True)
            await send({"type": "http.response.body", "body": _line(stopped).encode(), "more_body": True})
