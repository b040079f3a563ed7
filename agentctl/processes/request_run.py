"""A request's own Prefect flow run ("agentctl request"), parent of every process run the request
makes, so that the Prefect UI shows the request as one tree and ``agentctl runs`` lists requests.

It is created through the API at the request's first call, already Running (a request the model
answers without calling anything leaves no run), and ends with the request: Completed with the answer
kept as its result, Failed with the request's error, Paused while a call waits for approval (the
resumed request goes on in the same run), Cancelled when the request is stopped.

A source creates its run where ``Placement`` says: a task run (an in-actor task) belongs to the
request's flow run; a flow run (an in-actor flow, a deployment's run) gets a task run in the request's
flow run that stands for it, as Prefect's own subflows do, and the server keeps that task run's
state with the child's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

from agentctl import runtime
from agentctl.errors import StackError, redact
from agentctl.events import (
    REQUEST_TAG,
    RESULT_ARTIFACT,
    ChatReply,
    Event,
    Failed,
    Paused,
    RequestStarted,
    RunInfo,
    run_page,
)
from agentctl.processes.prefect_client import busy_retried

FLOW_NAME = "agentctl request"
NAME_CHARS = 80  # of the request, in its run's name
REQUEST_CHARS = 10_000  # of the request, in its run's parameter (the API refuses large bodies)
PAUSE_EXPIRY = 3600  # seconds a request's run stays Paused for an approval before Prefect fails it
END_WITHIN = 4.0  # seconds for the API to record the request's end (it may be what failed)


@dataclass
class Placement:
    """Where a process run goes in its request's tree: into the request's flow run.

    Runs are added under it one at a time (``adding``), and a call starts its run only once every
    run being added is there (``settled``): on SQLite, two writes at once make the server answer 503,
    on which Prefect's client waits 2 s, and the calls of a step start together.
    """

    flow_run_id: UUID
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _adding: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    @contextlib.asynccontextmanager
    async def adding(self) -> AsyncIterator[None]:
        """Add a run under the request's run, after those being added already."""
        self._adding += 1
        self._idle.clear()
        try:
            async with self._lock:
                yield
        finally:
            self._adding -= 1
            if not self._adding:
                self._idle.set()

    async def settled(self) -> None:
        """Wait until no run is being added (the other calls of the step are all created)."""
        if self._adding:
            await self._idle.wait()

    async def stand_in(self, name: str) -> UUID:
        """A task run named ``name`` in the request's flow run (untagged: ``runs`` lists the child)."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import TaskRunCreate
        from prefect.states import Pending, to_state_create

        task_key, dynamic_key = f"{FLOW_NAME}.{name}", uuid4().hex
        created = TaskRunCreate(
            id=uuid4(), name=name, flow_run_id=self.flow_run_id, task_key=task_key, dynamic_key=dynamic_key
        )
        created.state = to_state_create(Pending())
        body = created.model_dump(mode="json")
        async with get_client() as client:
            await busy_retried(client, "/task_runs/", body)
        return created.id  # type: ignore[return-value]


@contextlib.asynccontextmanager
async def standing(placement: Placement | None, name: str) -> AsyncIterator[UUID | None]:
    """The id of a task run in the request's flow run that stands for the child flow run the body
    creates (None outside a request), added in turn (``Placement.adding``); the stand-in is deleted
    when the child is not created."""
    if placement is None:
        yield None
        return
    async with placement.adding():
        stand_in = await placement.stand_in(name)
        try:
            yield stand_in
        except BaseException:
            await _deleted(stand_in)
            raise


async def _deleted(task_run_id: UUID) -> None:
    from prefect.client.orchestration import get_client

    try:
        async with asyncio.timeout(END_WITHIN), get_client() as client:
            await client.delete_task_run(task_run_id)
    except Exception as exc:  # the child's own failure is what the caller reports
        logging.getLogger(__name__).warning("could not delete the stand-in of a run not created: %s", exc)


class RequestRun:
    """One request's flow run, created at its first call (``place``), ended by ``recorded``."""

    def __init__(self, request: str, hidden: list[str], run_id: str | None = None) -> None:
        self._request = redact(request, hidden)  # the request text goes into Prefect: its name, a parameter
        self._hidden = hidden
        self._id = UUID(run_id) if run_id else None
        self._creating = asyncio.Lock()
        self._placement: Placement | None = None  # once its run exists (again, for a resumed request)

    @property
    def run_id(self) -> str | None:
        """The flow run's id, once it exists."""
        return str(self._id) if self._id else None

    async def place(self) -> tuple[Placement, RequestStarted | None]:
        """Where the next process run goes, creating the request's run first (or making a paused
        one Running again) if need be; the event that announces it."""
        async with self._creating:
            if self._placement is not None:
                return self._placement, None
            try:
                started = await (self._reopen() if self._id else self._create())
            except Exception as exc:  # the API's or its client's: the request cannot place its runs
                raise StackError(f"the Prefect API did not record the request's run: {exc}") from None
            self._placement = Placement(self._id)  # type: ignore[arg-type]
            return self._placement, started

    async def _create(self) -> RequestStarted:
        """The request's flow run, created Running."""
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            flow = await busy_retried(client, "/flows/", {"name": FLOW_NAME})
            run = await busy_retried(client, "/flow_runs/", _creation(UUID(flow["id"]), self._request))
        self._id = UUID(run["id"])
        return RequestStarted(run=_info(run["id"], run["name"], "Running"))

    async def _reopen(self) -> RequestStarted:
        """A paused request's run, Running again."""
        from prefect.states import Running

        await self._set(Running(message="resumed"))
        return RequestStarted(run=_info(str(self._id), None, "Running"))

    async def recorded(self, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        """``events`` as they come; the request's run, if it has one, ended as they end."""
        ending = Ending()
        try:
            # Closed early, the request's calls are stopped before its run is ended.
            async with contextlib.aclosing(events) as stream:  # type: ignore[type-var]
                async for event in stream:
                    yield ending.saw(event, self.run_id)
        except BaseException as exc:
            ending.failed(exc)
            raise
        finally:
            if self._id is not None:
                await self._end(ending)

    async def _end(self, ending: Ending) -> None:
        try:
            async with asyncio.timeout(END_WITHIN):
                kept = [] if ending.answer is None else [self._keep(ending.answer)]
                await asyncio.gather(self._set(ending.state(self._hidden)), *kept)
        except Exception as exc:  # the request is over either way; its run stays as it was
            logging.getLogger(__name__).warning("could not record the request's end in Prefect: %s", exc)

    async def _set(self, state: Any) -> None:
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            await client.set_flow_run_state(self._id, state, force=True)  # type: ignore[arg-type]

    async def _keep(self, answer: str) -> None:
        """The answer as the run's result, where ``agentctl runs show`` and the UI find results."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import ArtifactCreate

        text = json.dumps(redact(answer, self._hidden), indent=2)
        artifact = ArtifactCreate(
            type="markdown", description=RESULT_ARTIFACT, data=f"```json\n{text}\n```", flow_run_id=self._id
        )
        async with get_client() as client:
            await client.create_artifact(artifact=artifact)


class Ending:
    """How a request ends, from its events: an answer, a failure of the request, a pause, or none
    of them (it was stopped)."""

    def __init__(self) -> None:
        self.answer: str | None = None
        self._failure: str | None = None
        self._paused = False

    def saw(self, event: Event, run_id: str | None) -> Event:
        """Note what ``event`` says of the end; a pause carries the run's id, to go on in it."""
        if isinstance(event, ChatReply):
            self.answer = event.text
        elif isinstance(event, Failed) and event.call_id is None:  # a call's failure goes to the model
            self._failure = event.message
        elif isinstance(event, Paused):
            self._paused = True
            return event.model_copy(update={"request_run": run_id})
        return event

    def failed(self, exc: BaseException) -> None:
        """The request raised ``exc``: Failed, or Cancelled when it was stopped."""
        if isinstance(exc, Exception):
            self._failure = self._failure or f"{type(exc).__name__}: {exc}"

    def state(self, hidden: list[str]) -> Any:
        """The request's final state (Paused while it waits), its message carrying no secret."""
        from prefect.states import Cancelled, Completed, Failed, Paused

        if self._failure is not None:
            return Failed(message=redact(self._failure, hidden))
        if self._paused:
            return Paused(message="waiting for approval", timeout_seconds=PAUSE_EXPIRY)
        if self.answer is not None:
            return Completed(message="answered")
        return Cancelled(message="the request was stopped")


def _creation(flow_id: UUID, request: str) -> dict[str, Any]:
    """The body that creates the request's flow run: named after it, with it as parameter, Running."""
    from prefect.client.schemas.actions import FlowRunCreate
    from prefect.states import Running, to_state_create

    parameters = {"request": request[:REQUEST_CHARS]}
    tags = [*runtime.run_tags(None), REQUEST_TAG]
    state = to_state_create(Running())
    created = FlowRunCreate(flow_id=flow_id, name=_run_name(request), parameters=parameters, tags=tags, state=state)
    return created.model_dump(mode="json", exclude_unset=True)


def _run_name(request: str) -> str:
    line = " ".join(request.split())
    return line if len(line) <= NAME_CHARS else line[: NAME_CHARS - 1] + "…"


def _info(run_id: str, name: str | None, state: str) -> RunInfo:
    from prefect.settings import get_current_settings

    url = run_page(get_current_settings().ui_url, "flow", run_id)
    return RunInfo(id=run_id, name=name, kind="flow", state=state, url=url)
