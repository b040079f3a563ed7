"""Run one process of the in-actor source (``python_source``) as a Prefect flow or task run,
yielding its log lines as they happen.

A logging handler on Prefect's run loggers forwards records to the run that the current context
belongs to (a context variable set around the call), so concurrent runs in one actor keep their
logs apart; Prefect copies the context into the threads that run its tasks.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic_core import to_jsonable_python

from agentctl import runtime
from agentctl.errors import AgentctlError, ProcessFailed, redact
from agentctl.events import RESULT_ARTIFACT, Event, Failed, Log, Result, RunInfo, run_page
from agentctl.llm import ChatModel
from agentctl.processes.prefect_client import RunLogs, busy_retried
from agentctl.processes.registry import Process
from agentctl.processes.request_run import Placement, standing
from agentctl.secrecy import masked

if TYPE_CHECKING:
    from agentctl.processes.python_source import PythonSource

_sink: contextvars.ContextVar[Callable[[logging.LogRecord], None] | None] = contextvars.ContextVar(
    "agentctl_log_sink", default=None
)
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
CANCEL_GRACE = 4.0  # seconds for the engine to end a cancelled run, then for Prefect to record it Cancelled


class _Forward(logging.Handler):
    """Hands each run-logger record to the sink of the context that emitted it."""

    def emit(self, record: logging.LogRecord) -> None:
        sink = _sink.get()
        if sink is not None:
            sink(record)


_handler = _Forward(level=logging.DEBUG)


def _attach_handler() -> None:
    # Prefect configures its loggers on first use and drops foreign handlers then, so attach late.
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if _handler not in logger.handlers:
            logger.addHandler(_handler)


class _Capture:
    """Collects one run's records into a queue, and remembers the run's name."""

    def __init__(self, loop: asyncio.AbstractEventLoop, run_id: str, run_kind: str) -> None:
        self.queue: asyncio.Queue[Log | None] = asyncio.Queue()
        self.run_name: str | None = None
        self.run_id = run_id
        self.run_kind = run_kind
        self._loop = loop

    def __call__(self, record: logging.LogRecord) -> None:
        task_name = getattr(record, "task_run_name", None)
        flow_name = getattr(record, "flow_run_name", None)
        name = task_name or flow_name or "-"
        if self.run_name is None and name not in ("-", "<unknown>"):
            self.run_name = flow_name if flow_name not in (None, "<unknown>") else task_name
        log = Log(
            time=record.created,
            level=record.levelname,
            run_name=name,
            message=record.getMessage(),
            run_id=self.run_id,
            run_kind=self.run_kind,
        )
        self._loop.call_soon_threadsafe(self.queue.put_nowait, log)


async def run(
    process: Process,
    source: PythonSource,
    arguments: dict[str, Any],
    model: ChatModel | None = None,
    placement: Placement | None = None,
) -> AsyncIterator[Event]:
    """Run ``process`` (of ``source``) with validated ``arguments``; yield Log events, then a Result or Failed.

    The run is created first, in its request's run tree when ``placement`` is given. LLM calls the
    process makes (the text-processing task's) use ``model`` and count in its usage.
    """
    target = prefect_callable(process, source)
    ran = run_in_actor(process, target, source.kind, source.tags, _native(process, arguments), model, placement)
    async for event in ran:
        yield event


async def run_in_actor(
    process: Process,
    target: Any,
    kind: str,
    tags: tuple[str, ...],
    parameters: dict[str, Any],
    model: ChatModel | None = None,
    placement: Placement | None = None,
) -> AsyncIterator[Event]:
    """Run ``target``, the Prefect flow or task (``kind``) that carries out ``process``, in this actor
    with ``parameters``: its logs as they are emitted, then its Result or Failed (any in-actor source)."""
    created = await _created(process, kind, tags, target, parameters, placement)
    capture = _Capture(asyncio.get_running_loop(), str(created.id), kind)
    call = _start(target, created, parameters, tags, model, capture)
    try:
        while (log := await capture.queue.get()) is not None:
            yield log
    finally:
        if not call.done():  # cancelled (Ctrl-C) or abandoned by the consumer
            await _cancel(call, capture)
    state = await call
    if run_logs.alone():
        await run_logs.flush()
    yield await _outcome(process, kind, state, capture)


async def _created(
    process: Process,
    kind: str,
    own_tags: tuple[str, ...],
    target: Any,
    native: dict[str, Any],
    placement: Placement | None,
) -> Any:
    """The process's Prefect run, created before it starts with agentctl's tags and its place in a
    request's tree: its id is known from the start, and written nowhere else."""
    tags = [*runtime.run_tags(process.name), *own_tags]
    make = _task_run if kind == "task" else _flow_run
    created = await make(target, native, tags, placement)
    if placement is not None:
        await placement.settled()
    return created


async def _task_run(target: Any, native: dict[str, Any], tags: list[str], placement: Placement | None) -> Any:
    """A task run made locally, as Prefect's engine makes it (the server records it from its state
    events); in the API at once as well when it belongs to a request, so that the request's tree is whole."""
    from prefect.client.orchestration import get_client

    task_run = await target.create_local_run(parameters=native)
    task_run.tags = sorted({*task_run.tags, *tags})
    if placement is not None:
        task_run.flow_run_id = placement.flow_run_id
        async with placement.adding(), get_client() as client:
            await busy_retried(client, "/task_runs/", _task_run_body(target, task_run))
    return task_run


def _task_run_body(target: Any, task_run: Any) -> dict[str, Any]:
    """What Prefect's ``create_task_run`` sends for ``task_run`` of task ``target``."""
    from prefect.client.schemas.actions import TaskRunCreate
    from prefect.client.schemas.objects import TaskRunPolicy

    policy = TaskRunPolicy(retries=target.retries, retry_jitter_factor=target.retry_jitter_factor)
    fields = task_run.model_dump(include={"id", "name", "flow_run_id", "task_key", "dynamic_key", "tags"})
    created = TaskRunCreate(**fields, task_version=target.version, empirical_policy=policy, task_inputs={})
    return created.model_dump(mode="json")


async def _flow_run(target: Any, native: dict[str, Any], tags: list[str], placement: Placement | None) -> Any:
    """A flow run made through the API, as Prefect's engine would; under its stand-in in a request."""
    from prefect.client.orchestration import get_client

    parameters = target.serialize_parameters(native)
    if placement is None:
        async with get_client() as client:
            return await client.create_flow_run(target, parameters=parameters, tags=tags)
    async with standing(placement, target.name) as parent, get_client() as client:
        return await _placed_flow_run(client, target, {"parameters": parameters, "tags": tags}, parent)


async def _placed_flow_run(client: Any, target: Any, fields: dict[str, Any], parent: Any) -> Any:
    """What Prefect's ``create_flow_run`` does, through ``busy_retried``: the runs of a step are made
    at once, and a write that meets another would wait 2 s in Prefect's client."""
    from prefect.client.schemas.actions import FlowRunCreate
    from prefect.client.schemas.objects import FlowRun, FlowRunPolicy
    from prefect.states import Pending, to_state_create

    flow = await busy_retried(client, "/flows/", {"name": target.name})
    policy = FlowRunPolicy(retries=target.retries, retry_delay=int(target.retry_delay_seconds or 0))
    created = FlowRunCreate(
        **fields, flow_id=flow["id"], flow_version=target.version, parent_task_run_id=parent,
        state=to_state_create(Pending()), empirical_policy=policy,
    )  # fmt: skip
    return FlowRun.model_validate(await busy_retried(client, "/flow_runs/", created.model_dump(mode="json")))


def _start(
    target: Any, created: Any, native: dict[str, Any], tags: tuple[str, ...], model: ChatModel | None, capture: _Capture
) -> asyncio.Future[Any]:
    """The run, started as a task whose records go to ``capture``, which hears of its end.

    ``tags`` are the process's own, entered as Prefect's tags context: they reach the tasks of a
    flow. agentctl's own are on the run only: each tagged task run costs a concurrency-slot request,
    which SQLite can answer 503 (a 2 s client retry).
    """
    _attach_handler()
    # The run's task copies the context as it is now: the sink and the chat model go with it.
    token = _sink.set(capture)
    try:
        with runtime.lending(model):
            call = asyncio.ensure_future(_call(target, created, native, tags))
    finally:
        _sink.reset(token)
    call.add_done_callback(lambda _: capture.queue.put_nowait(None))
    return call


# Prefect's log worker is one per process: so is the count of the requests whose lines it holds.
run_logs = RunLogs()


def _native(process: Process, arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments as Python values (enums, models), as a task would be called with; flows accept them too."""
    model = process.arguments.model_validate(arguments)
    return {name: getattr(model, name) for name in type(model).model_fields}


async def _cancel(call: asyncio.Future[Any], capture: _Capture) -> None:
    """Stop the run, then record it as Cancelled in Prefect, so it is left neither Running nor Crashed.

    Prefect's engine reports an interrupted run Crashed and forces that state over any other, so
    Cancelled is set once the engine is done (or after ``CANCEL_GRACE``): the run's history shows the
    crash, its state is Cancelled. A sync process runs in a thread that cannot be stopped: its result is
    dropped, but the thread finishes on its own, and Prefect then records the state it ends in
    (Completed or Failed) over Cancelled.
    """
    call.cancel()
    await asyncio.wait([call], timeout=CANCEL_GRACE)
    try:
        # The API may be what died: Prefect's client would retry it for a minute.
        async with asyncio.timeout(CANCEL_GRACE):
            await _mark_cancelled(capture)
    except Exception as exc:  # the request is being stopped: this must not replace why
        logging.getLogger(__name__).warning(
            "could not mark the run Cancelled in Prefect: %s", exc or type(exc).__name__
        )


async def _mark_cancelled(capture: _Capture) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    state: Any = Cancelled(message="cancelled from agentctl (Ctrl-C)")
    async with get_client() as client:
        if capture.run_kind == "flow":
            await client.set_flow_run_state(UUID(capture.run_id), state, force=True)
        else:
            await client.set_task_run_state(UUID(capture.run_id), state, force=True)


_prepared: dict[str, Any] = {}


def prepare(process: Process, source: PythonSource) -> None:
    """Import Prefect's engines and the process's flow or task, so that its first run starts at once."""
    import prefect.flow_engine  # noqa: F401
    import prefect.task_engine  # noqa: F401

    prefect_callable(process, source)


def prefect_callable(process: Process, source: PythonSource) -> Any:
    """The Prefect flow or task to run: a plain function becomes the flow or task it is declared as;
    @process options applied; its exceptions carry no secret (``secrecy.masked``)."""
    if process.name not in _prepared:
        _prepared[process.name] = _prefect_object(process.name, source)
    return _prepared[process.name]


def _prefect_object(name: str, source: PythonSource) -> Any:
    from prefect import Flow, Task, flow, task

    obj = source.load()
    if isinstance(obj, Flow | Task):
        # A copy, whose function raises its errors redacted: Prefect stores their message as
        # the run's state message, in its database and UI.
        prepared = obj.with_options(**source.options)
        prepared.fn = masked(prepared.fn)
        return prepared
    make = task if source.kind == "task" else flow
    return make(masked(obj), name=name.replace("_", "-"), **source.options)


def run_tags_of(process: Process, source: PythonSource) -> tuple[str, ...]:
    """Tags of the process's Prefect runs: ``agentctl`` and ``process:<name>`` find them in the history."""
    return (*runtime.run_tags(process.name), *source.tags)


async def _call(target: Any, created: Any, native: dict[str, Any], tags: tuple[str, ...]) -> Any:
    from prefect import tags as run_tags

    _outside_any_flow()
    if getattr(target, "isasync", False):
        with run_tags(*tags):
            return await _engine(target, created, native)
    return await asyncio.to_thread(_call_sync, target, created, native, tags)


def _outside_any_flow() -> None:
    """Say, in this run's context, that no flow run encloses it.

    Prefect's events worker attaches to each event the flow and task run of the context the event was
    sent from, over the worker's own context where that one has none; the worker's own holds the runs
    that were running when the worker started. Without this, a task run's events would name that
    flow run, and the server would record the task run as that flow run's.
    """
    from prefect.context import FlowRunContext, TaskRunContext

    FlowRunContext.__var__.set(None)  # type: ignore[arg-type]
    TaskRunContext.__var__.set(None)  # type: ignore[arg-type]


def _engine(target: Any, created: Any, native: dict[str, Any]) -> Any:
    """Prefect's engine on the run created ahead: a state, or for an async process a coroutine of one."""
    from prefect.flow_engine import run_flow
    from prefect.task_engine import run_task

    if hasattr(created, "task_key"):  # a TaskRun (flow runs have none)
        return run_task(target, task_run=created, parameters=native, return_type="state")
    return run_flow(target, flow_run=created, parameters=native, return_type="state")


def _call_sync(target: Any, created: Any, native: dict[str, Any], tags: tuple[str, ...]) -> Any:
    from prefect import tags as run_tags
    from prefect.context import SyncClientContext
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    # A sync flow joins its heartbeat thread on exit, which sleeps in 1 s steps: ~1 s per run.
    # With the heartbeat off in this thread a sync run costs ~0.1 s.
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}), run_tags(*tags):
        # Its own sync client: a client's enter/exit count is not thread-safe, and user code in
        # threads may enter the actor's shared one (prefect_client).
        SyncClientContext.__var__.set(None)  # type: ignore[arg-type]
        _outside_any_flow()
        return _engine(target, created, native)


async def _outcome(process: Process, kind: str, state: Any, capture: _Capture) -> Result | Failed:
    run_id = capture.run_id
    info = RunInfo(id=run_id, name=capture.run_name, kind=kind, state=state.name, url=run_url(kind, run_id))
    value = await state.aresult(raise_on_failure=False)
    if state.is_completed():
        result = Result(process=process.name, value=to_jsonable_python(value, fallback=str), run=info)
        await _record(result)
        return result
    return Failed(
        message=_failure(process, state, value),
        error=ProcessFailed.__name__,
        exit_code=ProcessFailed.exit_code,
        run=info,
    )


async def _record(result: Result) -> None:
    """Keep the result with its run, as a markdown artifact, for ``agentctl runs show`` and the UI."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    if result.run.id is None:
        return
    text = redact(json.dumps(result.value, indent=2), runtime.secret_values())
    run_id, flow = UUID(result.run.id), result.run.kind == "flow"
    artifact = ArtifactCreate(
        type="markdown",
        description=RESULT_ARTIFACT,
        data=f"```json\n{text}\n```",
        flow_run_id=run_id if flow else None,
        task_run_id=None if flow else run_id,
    )
    async with get_client() as client:
        try:
            await client.create_artifact(artifact=artifact)
        except Exception as exc:  # the run is done either way; only runs show loses its result
            logging.getLogger(__name__).warning("could not keep the result with the run: %s", exc)


def run_url(kind: str, run_id: Any) -> str | None:
    """The run's page in the Prefect UI, where Prefect's own "View at" line points: ``PREFECT_UI_URL``
    (agentctl up sets it; "" for none), else the UI beside a configured API."""
    from prefect.settings import get_current_settings

    return run_page(get_current_settings().ui_url, kind, run_id)


def _failure(process: Process, state: Any, value: Any) -> str:
    if isinstance(value, AgentctlError):
        reason = str(value)
    elif isinstance(value, BaseException):
        reason = f"{type(value).__name__}: {value}"
    else:
        reason = state.message or "no message"
    return f"{process.name} ended {state.name}: {reason}"
