"""Start a flow run of a deployment and follow it through the Prefect API, in the router actor.

The user's worker (or served flow) executes the run; this module only creates it (Prefect's
``arun_deployment``) and polls the API for its state and its log lines (the flow run's and its task
runs') until a final state. Stopping the generator (Ctrl-C, ``--detach``) stops the following only:
the flow run is left to its worker, and ``agentctl runs cancel ID`` cancels it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic_core import to_jsonable_python

from agentctl import runtime
from agentctl.errors import AgentctlError, ProcessFailed, UsageError
from agentctl.events import Event, Failed, Log, Result, RunInfo, Started
from agentctl.processes.python_run import run_url
from agentctl.processes.registry import Process
from agentctl.processes.request_run import Placement, standing

if TYPE_CHECKING:
    from agentctl.processes.deployment_source import Deployment

# Two small API reads per poll: a first log line within ~0.5 s of reaching the API, ~4 requests/s.
POLL_SECONDS = 0.5
# A worker's run sends its last log lines in a batch (every 2 s by default) after its final state.
LOG_GRACE_SECONDS = 3.0
LAST_LINES = 5
WAITING = ("SCHEDULED", "PENDING")
FINISHED = "Finished in state"


async def run(
    process: Process, deployment: Deployment, arguments: dict[str, Any], placement: Placement | None = None
) -> AsyncIterator[Event]:
    """Start a flow run of ``deployment`` with ``arguments`` (a child of its request's run, with a
    ``placement``); yield Started, its states and logs, the outcome."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        flow_run = await _start(client, process, deployment, arguments, placement)
        pool = deployment.work_pool or flow_run.work_pool_name
        yield Started(process=process.name, run=_info(flow_run), work_pool=pool)
        follower = Follower(client, flow_run, pool, runtime.settings().processes.worker_wait)
        async for event in follower.follow():
            yield event
        yield await outcome(process, follower.flow_run, list(follower.last_lines))


async def _start(
    client: Any, process: Process, deployment: Deployment, arguments: dict[str, Any], placement: Placement | None
) -> Any:
    """The new flow run; Prefect's refusals translated: 404 (the deployment is gone), 409 (the server's
    own check of the parameters)."""
    from prefect.exceptions import PrefectHTTPStatusError

    tags = runtime.run_tags(process.name)
    try:
        async with standing(placement, deployment.full_name) as parent:
            return await client.create_flow_run_from_deployment(
                UUID(deployment.id), parameters=arguments, tags=tags, parent_task_run_id=parent
            )
    except PrefectHTTPStatusError as exc:
        status = exc.response.status_code
        if status == 404:
            raise AgentctlError(
                f"deployment {deployment.full_name} is no longer in the Prefect API: agentctl processes list shows"
                " the deployments there are"
            ) from None
        detail = exc.response.json().get("detail") if status == 409 else None
        if detail is None:
            raise
        raise UsageError(f"{process.name}: the Prefect API refused the parameters: {detail}") from None


def _info(flow_run: Any) -> RunInfo:
    state = flow_run.state
    return RunInfo(
        id=str(flow_run.id),
        name=flow_run.name,
        kind="flow",
        state=state.name if state else "Scheduled",
        url=run_url("flow", flow_run.id),
    )


class Follower:
    """Polls one flow run: its state changes and new log lines become ``Log`` events, until it is final.

    Its ``Log`` events carry no ``run_id``: the pool marks a run Crashed when the actor carrying it
    dies, and this run is carried by its worker, not by the actor.
    """

    def __init__(self, client: Any, flow_run: Any, pool: str | None, worker_wait: float) -> None:
        self.client, self.flow_run, self.pool, self.worker_wait = client, flow_run, pool, worker_wait
        self.state = flow_run.state.name if flow_run.state else None
        self.last_lines: deque[str] = deque(maxlen=LAST_LINES)
        self._seen: set[UUID] = set()
        self._since: Any = None
        self._task_names: dict[UUID, str] = {}
        self._created = time.monotonic()
        self._warned = False
        self._finished = False

    async def follow(self) -> AsyncIterator[Log]:
        """Poll until the run is final; then read the log lines still on their way, for a while."""
        while True:
            self.flow_run = await self.client.read_flow_run(self.flow_run.id)
            # Log lines first: a state the run reached follows the lines it wrote on the way.
            for event in [*await self._new_logs(), *self._state_change(), *self._worker_wait()]:
                yield event
            if self.flow_run.state is not None and self.flow_run.state.is_final():
                break
            await asyncio.sleep(POLL_SECONDS)
        deadline = time.monotonic() + LOG_GRACE_SECONDS
        while not self._finished and time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            for event in await self._new_logs():
                yield event

    def _state_change(self) -> list[Log]:
        state = self.flow_run.state
        if state is None or state.name == self.state:
            return []
        self.state = state.name
        text = f"{state.name}: {state.message}" if state.message else state.name
        return [Log(time=time.time(), level="INFO", run_name=self.flow_run.name, message=f"state {text}")]

    def _worker_wait(self) -> list[Log]:
        """Once, when the run has waited ``worker_wait`` seconds for a worker to take it."""
        state = self.flow_run.state
        waiting = state is not None and state.type.value in WAITING
        if self._warned or not waiting or time.monotonic() - self._created < self.worker_wait:
            return []
        self._warned = True
        if self.pool is None:  # a served deployment (flow.serve) has no pool: its serving process runs it
            message = "waiting for the process that serves this deployment (flow.serve): is it running?"
        else:
            message = f"waiting for a worker on pool {self.pool}: is `prefect worker start --pool {self.pool}` running?"
        return [Log(time=time.time(), level="WARNING", run_name="agentctl", message=message)]

    async def _new_logs(self) -> list[Log]:
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId, LogFilterTimestamp
        from prefect.client.schemas.sorting import LogSort

        where = LogFilter(
            flow_run_id=LogFilterFlowRunId(any_=[self.flow_run.id]),
            timestamp=LogFilterTimestamp(after_=self._since) if self._since else None,
        )
        # A page per poll: lines past it come at the next poll, after the last timestamp read.
        records = await self.client.read_logs(log_filter=where, sort=LogSort.TIMESTAMP_ASC, limit=200)
        return [await self._log(record) for record in records if record.id not in self._seen]

    async def _log(self, record: Any) -> Log:
        self._seen.add(record.id)
        self._since = record.timestamp  # ``after_`` is inclusive: ``_seen`` drops what was read
        self._finished = self._finished or (record.task_run_id is None and record.message.startswith(FINISHED))
        self.last_lines.append(record.message)
        name = await self._run_name(record.task_run_id)
        level = logging.getLevelName(record.level)
        return Log(time=record.timestamp.timestamp(), level=level, run_name=name, message=record.message)

    async def _run_name(self, task_run_id: UUID | None) -> str:
        if task_run_id is None:
            return str(self.flow_run.name)
        if task_run_id not in self._task_names:
            self._task_names[task_run_id] = (await self.client.read_task_run(task_run_id)).name
        return self._task_names[task_run_id]


async def outcome(process: Process, flow_run: Any, last_lines: list[str]) -> Result | Failed:
    """The final state as the request's last event: the result, or why there is none."""
    state, info = flow_run.state, _info(flow_run)
    if state.is_completed():
        value, note = await _value(state, last_lines, info.url)
        return Result(process=process.name, value=value, run=info, note=note)
    if state.is_cancelled():
        message = f"{process.name}: flow run {flow_run.name} was cancelled ({state.message or 'no message'})"
    else:
        message = f"{process.name} ended {state.name}: {state.message or 'no message'}"
    return Failed(message=message, error=ProcessFailed.__name__, exit_code=ProcessFailed.exit_code, run=info)


async def _value(state: Any, last_lines: list[str], url: str | None) -> tuple[Any, str | None]:
    """The run's return value if Prefect persisted it where this process can read it; else a note."""
    from prefect.exceptions import MissingResult

    try:
        return to_jsonable_python(await state.aresult(raise_on_failure=False), fallback=str), None
    except MissingResult:
        why = "result not persisted (the flow's persist_result is off)"
    except Exception as exc:  # storage this process cannot reach: the run itself completed
        why = f"result not readable here ({type(exc).__name__}: {exc})"
    lines = "".join(f"\n  {line}" for line in last_lines)
    return None, f"{why}; {'its page: ' + url + '; ' if url else ''}last log lines:{lines or ' none'}"
