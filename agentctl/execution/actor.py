"""The router actor: routes a request with the LLM and runs the chosen process, streaming events.

This module is imported inside Ray workers; it is the boundary where every error of routing and
running becomes a ``Failed`` event instead of a Ray traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import traceback
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from agentctl import llm, runtime, secrecy
from agentctl.config import Settings
from agentctl.errors import AgentctlError, StackError, UsageError, redact, redact_all
from agentctl.events import (
    ApprovalNeeded,
    ChatReply,
    Event,
    Failed,
    Log,
    Paused,
    Result,
    Routed,
    Started,
    follow,
)
from agentctl.processes.approval import NOTHING, Approved, needs_approval
from agentctl.processes.deployment_source import check_detachable
from agentctl.processes.deployments import from_records
from agentctl.processes.discovery import Discovered, discover, with_deployments, with_mcp_tools
from agentctl.processes.mcp_sessions import SESSIONS
from agentctl.processes.params import validated
from agentctl.processes.prefect_client import SharedClient, flush_all
from agentctl.processes.python_run import run_logs
from agentctl.processes.registry import Process, Registry
from agentctl.processes.request_run import RequestRun
from agentctl.routing import agent, router

Caller = dict[str, Any]  # {"settings": Settings JSON, "secrets": {variable: value}}
Records = list[dict[str, Any]] | None  # Prefect deployments as processes.deployments.to_records makes them


OWNER_CHECK_EVERY = 1.0  # seconds between two asks whether a request's caller still lives
CALLER_DIED = "its caller (a CLI, or the stack's gateway) died while it ran: stopped by agentctl"


class _Owners:
    """The requests in flight of each caller (its Ray job), and one watch per caller that cancels
    them once its job has ended, as a caller's own cancel would (their runs then marked Crashed:
    ``RouterActor._watched``).

    Ray lets a streaming call run on when its caller dies: its events go nowhere, and a run it ends
    Completed would replace the Crashed mark the caller's client set.
    """

    def __init__(self) -> None:
        self._requests: dict[str, set[asyncio.Task[Any]]] = {}
        self._watches: dict[str, asyncio.Task[None]] = {}
        self.gone: set[str] = set()  # the callers whose job ended while their requests ran

    @contextlib.asynccontextmanager
    async def watching(self, owner: str | None) -> AsyncIterator[None]:
        """The request running in this task is cancelled if ``owner``'s job ends before it does."""
        task = asyncio.current_task()
        if owner is None or task is None:  # a caller that sent no job (an older client): not watched
            yield
            return
        self._requests.setdefault(owner, set()).add(task)
        if owner not in self._watches:
            self._watches[owner] = asyncio.create_task(self._watch(owner))
        try:
            yield
        finally:
            self._forget(owner, task)

    def _forget(self, owner: str, task: asyncio.Task[Any]) -> None:
        requests = self._requests.get(owner, set())
        requests.discard(task)
        if not requests:
            self._requests.pop(owner, None)
            self._watches.pop(owner).cancel()
            self.gone.discard(owner)

    async def _watch(self, owner: str) -> None:
        while not await _ended(owner):
            await asyncio.sleep(OWNER_CHECK_EVERY)
        self.gone.add(owner)
        for task in self._requests.get(owner, set()):
            task.cancel()


async def _crashed(runs: dict[str, str]) -> None:
    """Mark ``runs`` Crashed, over the Cancelled their sources set as they stopped: their caller died
    (and its client, if it lived on, said so: "marked Crashed")."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    state: Any = Crashed(message=CALLER_DIED)
    try:
        async with asyncio.timeout(10 * OWNER_CHECK_EVERY), get_client() as client:
            for run_id, kind in runs.items():
                setter = client.set_flow_run_state if kind == "flow" else client.set_task_run_state
                await setter(UUID(run_id), state, force=True)
    except Exception as exc:  # the request is over either way; its runs stay Cancelled
        logging.getLogger(__name__).warning("could not mark the runs of a dead caller Crashed: %s", exc)


async def _ended(job: str) -> bool:
    """Whether Ray's job ``job`` has ended (its driver exited or died); not when it cannot be told."""
    import ray

    # Ray's own client of its control store: no public call reads one job without the dashboard.
    worker: Any = ray._private.worker.global_worker
    try:
        jobs = await worker.gcs_client.async_get_all_job_info(
            job_or_submission_id=job,
            skip_submission_job_info_field=True,
            skip_is_running_tasks_field=True,
            timeout=10 * OWNER_CHECK_EVERY,
        )
    except Exception as exc:  # the control store busy or restarting: ask again later, never stop a request on it
        # In the actor's log, so that a Ray whose API moved shows why callers' deaths go unnoticed.
        logging.getLogger(__name__).debug("cannot ask Ray whether job %s ended: %r", job, exc)
        return False
    return any(info.is_dead for info in jobs.values())


def _preload(registry: Registry) -> None:
    """Make every process ready to run (for the in-actor source: import Prefect and its flow or task)."""
    for process in registry:
        with contextlib.suppress(Exception):  # a process that fails to prepare reports it when it runs
            process.source.prepare(process)


@dataclass(frozen=True)
class _Gate:
    """A request's settings, what its caller approved and whether it detaches: whether a chosen
    process may run now, and whether the request follows it to its end."""

    settings: Settings
    approved: Approved
    detach: bool = False  # end at ``Started``: a deployment's worker carries the run on

    def stops(self, process: Process) -> bool:
        """Whether ``process`` waits for an approval this request does not carry; a UsageError when the
        request detaches and ``process`` cannot (before anyone is asked to approve it)."""
        if self.detach:
            check_detachable(process)
        return needs_approval(process, self.settings) and not self.approved.covers(process.name)


@dataclass(frozen=True)
class _Calls:
    """How a request's loop runs its calls in this actor: the request's gate, chat model and sources."""

    actor: RouterActor
    chat: llm.ChatModel
    gate: _Gate
    hidden: list[str]  # the secrets no message may carry: it goes to the model and the terminal
    tree: RequestRun | None  # the request's own Prefect run, parent of its process runs

    def stops(self, process: Process) -> bool:
        """Whether ``process`` waits for an approval the request does not carry."""
        return self.gate.stops(process)

    async def run(self, process: Process, arguments: dict[str, Any]) -> AsyncIterator[Event]:
        """The events of one run of ``process``, its result redacted (it goes back to the model); what
        it raises becomes its ``Failed``."""
        try:
            async for event in self.actor._source_events(process, arguments, self.chat, self.gate, self.tree):
                yield self._redacted(event) if isinstance(event, Result) else event
        except AgentctlError as exc:
            yield Failed(message=redact(str(exc), self.hidden), exit_code=exc.exit_code, error=type(exc).__name__)

    def _redacted(self, result: Result) -> Result:
        value = redact_all(result.value, lambda text: redact(text, self.hidden))
        return result.model_copy(update={"value": value})


class RouterActor:
    """Holds the LLM clients and the registry; handles requests as async generators."""

    def __init__(self, settings_json: str, secrets: dict[str, str], api_deadline: float) -> None:
        os.environ.update(secrets)
        self._own = dict(secrets)
        self._secrets = [v for v in secrets.values() if v]
        self.settings = Settings.model_validate_json(settings_json)
        runtime.install(self.settings)
        secrecy.install()  # before Prefect logs anything: its records reach its API and Ray's log files
        self._clients = llm.Clients()  # connections reused across requests, per caller's settings and key
        found = discover(self.settings)
        self.registry, self._problems = found.registry, found.problems
        self._api_deadline = api_deadline
        self._api_ready = False
        self._in_flight = 0
        self._owners = _Owners()
        self._prefect = SharedClient()  # one Prefect client for every run of this actor
        # Prefect's import (~1 s) overlaps with the first routing call instead of following it.
        self._preload = threading.Thread(target=_preload, args=(self.registry,), daemon=True)
        self._preload.start()

    async def stats(self) -> dict[str, int | str]:
        """Requests in flight in this actor, its process id and its Ray node's id (for status)."""
        import ray

        return {"busy": self._in_flight, "pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}

    async def flushed(self) -> bool:
        """Send Prefect every event and log line this actor holds (before it is stopped)."""
        await flush_all()
        return True

    async def ready(self) -> bool:
        """Wait until Prefect and the processes are imported and the Prefect API answers."""
        await asyncio.to_thread(self._preload.join)
        await self._wait_for_api()
        return True

    async def handle(
        self,
        request: str,
        model: str | None = None,
        caller: Caller | None = None,
        deployments: Records = None,
        approved: Approved = NOTHING,
        detach: bool = False,
        resume: dict[str, Any] | None = None,
        history: list[dict[str, Any]] | None = None,
        owner: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Carry out ``request`` (with ``model``, if given) step by step (``routing.agent``); yield events as dicts.

        ``caller`` carries the settings and secrets of the CLI call, for an actor that outlives it;
        ``deployments`` the caller's listing of Prefect deployments, processes for this request too.
        A call that needs approval and is not ``approved`` runs not: ``ApprovalNeeded`` says so, and
        ``Paused`` holds what ``resume`` (with the ids of the calls approved) takes to go on.
        ``detach``: end at ``Started``, leaving a deployment's run to its worker (one step only).
        ``history``: earlier turns' messages, between the instructions and the request.
        ``owner``: the caller's Ray job; the request is cancelled if it ends first (the caller died).
        """
        settings, secrets = self._caller(caller)
        chat = self._chat_model(settings, secrets, caller, model)
        found = await self._found(deployments, settings, self._environ(settings, secrets, caller))
        paused = None if resume is None else Paused.model_validate(resume)
        hidden = self._hidden(secrets)
        one_shot = agent.is_one_shot(settings.router, detach)
        tree = None if one_shot else RequestRun(request, hidden, paused.request_run if paused else None)
        events = agent.run_request(
            request,
            found.registry,
            chat,
            settings.router,
            _Calls(self, chat, _Gate(settings, approved, detach), hidden, tree),
            one_shot=one_shot,
            history=history,
            resume=paused,
        )
        recorded = events if tree is None else self._recorded(tree, events)
        async for event in self._guarded(recorded, settings, secrets, found.problems, owner):
            yield event

    async def _recorded(self, tree: RequestRun, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        """``events``, the request's run ended with them (through the actor's Prefect client)."""
        recording = tree.recorded(events)
        async with self._prefect.bound(), contextlib.aclosing(recording) as recorded:  # type: ignore[type-var]
            async for event in recorded:
                yield event

    async def run(
        self,
        name: str,
        arguments: dict[str, Any],
        caller: Caller | None = None,
        deployments: Records = None,
        approved: Approved = NOTHING,
        detach: bool = False,
        owner: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Run process ``name`` with ``arguments``, no LLM involved; yield events as JSON-able dicts.

        A process that needs approval and is not ``approved`` runs not: ``ApprovalNeeded`` says so.
        ``detach`` and ``owner`` as for ``handle``.
        """
        settings, secrets = self._caller(caller)
        chat = self._chat_model(settings, secrets, caller, None)
        found = await self._found(deployments, settings, self._environ(settings, secrets, caller))
        async for event in self._guarded(
            self._run(name, arguments, chat, found.registry, _Gate(settings, approved, detach)),
            settings,
            secrets,
            found.problems,
            owner,
        ):
            yield event

    def _hidden(self, secrets: dict[str, str]) -> list[str]:
        """The secrets no output may carry: the actor's own and the caller's."""
        return [*self._secrets, *(v for v in secrets.values() if v)]

    async def _found(self, deployments: Records, settings: Settings, environ: Mapping[str, str]) -> Discovered:
        """This actor's processes, plus the request's deployments when it brings any, plus the tools of
        the request's MCP servers on this actor's sessions with them (started on first use)."""
        own = Discovered(self.registry, self._problems)
        disabled = self.settings.processes.disable
        found = with_deployments(own, from_records(deployments), disabled) if deployments else own
        if not settings.mcp.servers:
            return found
        return with_mcp_tools(found, await SESSIONS.listing(settings.mcp.servers, environ), disabled)

    def _environ(self, settings: Settings, secrets: dict[str, str], caller: Caller | None) -> Mapping[str, str]:
        """The environment a request sees: its caller's secrets in place of any this process holds."""
        # Without a caller the actor serves with what it was constructed with, already in os.environ.
        return os.environ if caller is None else runtime.request_environ(settings, secrets)

    def _caller(self, caller: Caller | None) -> tuple[Settings, dict[str, str]]:
        if caller is None:
            return self.settings, self._own
        return Settings.model_validate_json(caller["settings"]), caller["secrets"]

    def _chat_model(
        self, settings: Settings, secrets: dict[str, str], caller: Caller | None, name: str | None
    ) -> llm.ChatModel:
        """The request's chat model: its settings and secrets, ``name`` or their model, a new count."""
        return llm.ChatModel.of(settings, self._environ(settings, secrets, caller), self._clients, name)

    async def _guarded(
        self,
        events: AsyncIterator[Event],
        settings: Settings,
        secrets: dict[str, str],
        problems: list[str],
        owner: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        for problem in problems:
            yield Log(time=time.time(), level="WARNING", run_name="agentctl", message=problem).model_dump(mode="json")
        hidden = self._hidden(secrets)
        self._in_flight += 1
        try:
            with runtime.serving(settings, secrets), run_logs.serving():
                async for event in self._watched(events, owner):
                    yield event.model_dump(mode="json")
        except AgentctlError as exc:
            yield self._failed(str(exc), exc.exit_code, type(exc).__name__, hidden)
        except Exception as exc:  # the boundary: anything else is reported, never raised into Ray
            failed = self._failed(f"internal error: {type(exc).__name__}: {exc}", 1, "InternalError", hidden)
            yield {**failed, "detail": redact(traceback.format_exc(), hidden)}
        finally:
            self._in_flight -= 1

    async def _watched(self, events: AsyncIterator[Event], owner: str | None) -> AsyncIterator[Event]:
        """``events``, stopped if ``owner``'s job ends first; the runs they leave are then marked Crashed
        (once they have stopped: closing ``events`` ends them first)."""
        runs: dict[str, str] = {}
        async with self._owners.watching(owner):
            try:
                async with contextlib.aclosing(events) as stream:  # type: ignore[type-var]
                    async for event in stream:
                        follow(runs, event)
                        yield event
            finally:
                if owner in self._owners.gone and runs:
                    await _crashed(runs)

    async def route(
        self, request: str, model: str | None = None, caller: Caller | None = None, deployments: Records = None
    ) -> dict[str, Any]:
        """Route ``request`` only, nothing runs: the decision, its latency and usage (for eval)."""
        started = time.perf_counter()
        settings, secrets = self._caller(caller)
        chat = self._chat_model(settings, secrets, caller, model)
        usage = chat.usage
        try:
            with runtime.serving(settings, secrets):  # the log records redacted with the caller's secrets
                found = await self._found(deployments, settings, self._environ(settings, secrets, caller))
                decision = await router.decide(request, found.registry, chat, settings.router)
        except AgentctlError as exc:
            hidden = self._hidden(secrets)
            return {
                "error": redact(str(exc), hidden),
                "latency": time.perf_counter() - started,
                "usage": usage.as_dict(),
            }
        chosen = (
            {"process": None, "arguments": None}
            if isinstance(decision, ChatReply)
            else {"process": decision.process.name, "arguments": decision.arguments}
        )
        return {**chosen, "error": None, "latency": time.perf_counter() - started, "usage": usage.as_dict()}

    async def _run(
        self, name: str, arguments: dict[str, Any], chat: llm.ChatModel, registry: Registry, gate: _Gate
    ) -> AsyncIterator[Event]:
        process = registry.get(name)
        if process is None:
            raise UsageError(f"no process named {name!r} in the router actors: check processes.modules")
        async for event in self._execute(process, validated(process, arguments), None, chat, gate):
            yield event

    async def _execute(
        self, process: Process, arguments: dict[str, Any], reason: str | None, chat: llm.ChatModel, gate: _Gate
    ) -> AsyncIterator[Event]:
        yield Routed(process=process.name, process_kind=process.kind, arguments=arguments, reason=reason)
        if gate.stops(process):  # decided before anything is created: no Prefect run exists yet
            yield ApprovalNeeded(process=process.name, arguments=arguments)
            return
        async for event in self._source_events(process, arguments, chat, gate, None):
            yield event

    async def _source_events(
        self, process: Process, arguments: dict[str, Any], chat: llm.ChatModel, gate: _Gate, tree: RequestRun | None
    ) -> AsyncIterator[Event]:
        """Run ``process`` through its source, with the actor's Prefect clients bound; in ``tree``, the
        request's run (created with the first call)."""
        await self._wait_for_api()
        async with self._prefect.bound():
            placement, started = await tree.place() if tree else (None, None)
            if started is not None:
                yield started
            async with contextlib.aclosing(process.source.run(process, arguments, chat, placement)) as events:
                async for event in events:
                    yield event
                    if gate.detach and isinstance(event, Started):
                        return  # closing the source stops the following; the worker carries the run

    def _failed(self, message: str, exit_code: int, error: str, hidden: list[str]) -> dict[str, Any]:
        failed = Failed(message=redact(message, hidden), exit_code=exit_code, error=error)
        return failed.model_dump(mode="json")

    async def _wait_for_api(self) -> None:
        """Wait for the Prefect API the session is starting, until the session's deadline."""
        if self._api_ready:
            return
        import httpx

        url = os.environ.get("PREFECT_API_URL", "").rstrip("/") + "/health"
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.time() < self._api_deadline:
                try:
                    if (await client.get(url)).status_code == 200:
                        self._api_ready = True
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        raise StackError(f"the Prefect API at {url} did not answer in time (prefect.startup_timeout)")
