"""Running a deployment: ``DeploymentSource.run`` in this process against the real Prefect API, with a
real ``prefect worker`` executing the runs (the ``deployed`` fixture); no Ray. ``runs cancel`` over
the same API. The flows wait on FIFOs the tests hold, never on time."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import pytest

from agentctl import prefect_rest, runtime
from agentctl.calls.history import cancel, history
from agentctl.config import Settings
from agentctl.errors import AgentctlError, UsageError
from agentctl.events import Event, Failed, Log, Result, Started
from agentctl.processes.deployment_run import Follower
from agentctl.processes.deployment_source import Deployment, DeploymentSource
from agentctl.processes.registry import Process, from_signature
from tests.deployments import Deployed

DEADLINE = 180.0  # seconds a scenario may take on a loaded 2-core machine before it counts as hung


def held(gate: str, word: str = "hello") -> dict[str, str]:
    """The deployed ``held`` flow's parameters."""
    raise NotImplementedError


def fails(reason: str) -> None:
    """The deployed ``fails`` flow's parameters."""
    raise NotImplementedError


def quiet(n: int = 1) -> int:
    """The deployed ``quiet`` flow's parameters."""
    raise NotImplementedError


def _process(fn: Callable[..., Any], deployment: Deployment) -> Process:
    return from_signature(fn, name=fn.__name__, source=DeploymentSource(deployment))


@contextmanager
def _serving(api_url: str, worker_wait: float = 30.0) -> Iterator[None]:
    """What a router actor has while it serves a request: the Prefect API and the request's settings."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    settings = Settings.model_validate({"processes": {"worker_wait": worker_wait}})
    with temporary_settings(updates={PREFECT_API_URL: api_url}), runtime.serving(settings, {}):
        yield


async def _until(events: AsyncGenerator[Event, None], wanted: Callable[[Event], bool], seen: list[Event]) -> Event:
    async for event in events:
        seen.append(event)
        if wanted(event):
            return event
    raise AssertionError(f"the events ended without the one awaited: {seen}")


def _line(text: str) -> Callable[[Event], bool]:
    return lambda event: isinstance(event, Log) and event.message == text


async def _flow_run(api_url: str, run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.read_flow_run(UUID(run_id))


def _open_gate(gate: Path, text: str) -> None:
    with gate.open("w") as fifo:  # blocks until the flow has the FIFO open for reading
        fifo.write(text)


def _fifo(tmp_path: Path) -> Path:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    return gate


def test_logs_stream_while_the_run_goes_and_its_result_is_read_back(deployed: Deployed, tmp_path: Path) -> None:
    gate, process = _fifo(tmp_path), _process(held, deployed.ready["held"])

    async def scenario() -> tuple[list[Event], str, list[Event], Any]:
        events = process.source.run(process, {"gate": str(gate), "word": "hi"}, None)
        seen: list[Event] = []
        await _until(events, _line("waiting on the gate"), seen)
        assert isinstance(seen[0], Started) and seen[0].run.id
        while_held = (await _flow_run(deployed.api_url, seen[0].run.id)).state.type.value
        await asyncio.to_thread(_open_gate, gate, "opened")
        rest = [event async for event in events]
        return seen, while_held, rest, await _flow_run(deployed.api_url, seen[0].run.id)

    with _serving(deployed.api_url):
        seen, while_held, rest, flow_run = asyncio.run(asyncio.wait_for(scenario(), DEADLINE))
    started = seen[0]
    assert isinstance(started, Started) and started.run.state == "Scheduled" and started.work_pool == deployed.pool
    assert started.run.url is not None and started.run.url.endswith(f"/runs/flow-run/{started.run.id}")
    assert while_held == "RUNNING"  # the line arrived while the run was still going
    assert any(isinstance(e, Log) and e.run_name.startswith("shout") and e.message == "shouting hi" for e in rest)
    result = rest[-1]
    assert isinstance(result, Result) and result.value == {"word": "HI", "gate": "opened"} and result.note is None
    assert result.run.state == "Completed" and result.run.id == started.run.id
    assert {"agentctl", "process:held"} <= set(flow_run.tags)  # agentctl runs lists it


def test_a_failing_deployment_ends_failed_with_the_states_message(deployed: Deployed) -> None:
    process = _process(fails, deployed.ready["fails"])

    async def scenario() -> list[Event]:
        return [event async for event in process.source.run(process, {"reason": "bad input"}, None)]

    with _serving(deployed.api_url):
        events = asyncio.run(asyncio.wait_for(scenario(), DEADLINE))
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.exit_code == 1 and failed.run is not None
    assert failed.message == "fails ended Failed: Flow run encountered an exception: ValueError: bad input"
    assert any(isinstance(e, Log) and e.message == "about to fail" for e in events)


def test_a_result_prefect_did_not_persist_says_so_with_the_last_lines(deployed: Deployed) -> None:
    process = _process(quiet, deployed.ready["quiet"])

    async def scenario() -> list[Event]:
        return [event async for event in process.source.run(process, {"n": 3}, None)]

    with _serving(deployed.api_url):
        result = asyncio.run(asyncio.wait_for(scenario(), DEADLINE))[-1]
    assert isinstance(result, Result) and result.value is None and result.run.state == "Completed"
    assert result.note is not None and result.note.startswith("result not persisted")
    assert "\n  quiet run" in result.note and f"its page: {result.run.url}" in result.note


def test_a_run_waiting_for_a_worker_says_so_closing_leaves_it_and_runs_cancel_ends_it(deployed: Deployed) -> None:
    process = _process(quiet, deployed.idle["quiet"])

    async def scenario() -> tuple[list[Event], str]:
        events = process.source.run(process, {}, None)
        seen: list[Event] = []
        await _until(events, lambda e: isinstance(e, Log) and e.level == "WARNING", seen)
        await events.aclose()  # what Ctrl-C and --detach do to the source in the actor
        assert isinstance(seen[0], Started)
        return seen, (await _flow_run(deployed.api_url, str(seen[0].run.id))).state.type.value

    with _serving(deployed.api_url, worker_wait=0.5):
        seen, after_close = asyncio.run(asyncio.wait_for(scenario(), DEADLINE))
    assert seen[-1].message.startswith("waiting for a worker on pool no-worker")  # type: ignore[union-attr]
    assert after_close == "SCHEDULED"  # left alone: no cancel, no crash
    run_id = str(seen[0].run.id)  # type: ignore[union-attr]
    with history(Settings.model_validate({"prefect": {"api_url": deployed.api_url}})) as h:
        done, again = cancel(h, run_id), cancel(h, run_id)
        with pytest.raises(UsageError, match="no run .* in the Prefect API"):
            cancel(h, str(uuid4()))
    assert done.cancelled and done.state == "Cancelled"  # no worker took it: straight to Cancelled
    assert not again.cancelled and again.message.endswith("had already ended Cancelled: nothing to cancel")


def test_runs_cancel_stops_a_running_deployment_run_through_its_worker(deployed: Deployed, tmp_path: Path) -> None:
    gate, process = _fifo(tmp_path), _process(held, deployed.ready["held"])
    api = Settings.model_validate({"prefect": {"api_url": deployed.api_url}})

    def cancel_it(run_id: str) -> str:
        with history(api) as h:
            return cancel(h, run_id).state

    async def scenario() -> tuple[str, list[Event]]:
        events = process.source.run(process, {"gate": str(gate)}, None)
        seen: list[Event] = []
        await _until(events, _line("waiting on the gate"), seen)
        state = await asyncio.to_thread(cancel_it, str(seen[0].run.id))  # type: ignore[union-attr]
        return state, [event async for event in events]

    with _serving(deployed.api_url):
        state, rest = asyncio.run(asyncio.wait_for(scenario(), DEADLINE))
    assert state == "Cancelling"
    failed = rest[-1]
    assert isinstance(failed, Failed) and failed.exit_code == 1 and failed.run is not None
    assert failed.run.state == "Cancelled" and " was cancelled (" in failed.message


def test_the_worker_wait_notice_comes_once() -> None:
    waiting = SimpleNamespace(name="Scheduled", message=None, type=SimpleNamespace(value="SCHEDULED"))
    follower = Follower(None, SimpleNamespace(id=uuid4(), name="run", state=waiting), "pool-x", worker_wait=0)
    first, second = follower._worker_wait(), follower._worker_wait()
    assert [log.message for log in first] == [
        "waiting for a worker on pool pool-x: is `prefect worker start --pool pool-x` running?"
    ]
    assert second == []


def test_runs_cancel_sets_a_run_of_the_router_actors_cancelled_at_once(prefect_api: str) -> None:
    import httpx

    with httpx.Client(base_url=prefect_api, trust_env=False, timeout=30) as http:
        flow_id = http.post("/flows/", json={"name": "in-actor"}).raise_for_status().json()["id"]
        body = {"flow_id": flow_id, "tags": ["agentctl"], "state": {"type": "RUNNING", "name": "Running"}}
        run_id = http.post("/flow_runs/", json=body).raise_for_status().json()["id"]  # no deployment: an actor's
    with history(Settings.model_validate({"prefect": {"api_url": prefect_api}})) as h:
        done = cancel(h, run_id)
    assert done.cancelled and done.state == "Cancelled"
    assert done.message.endswith("is Cancelled: it ran in a router actor, which is not interrupted")


def test_a_run_cancelled_while_pending_is_recorded_cancelled_when_cancelled_again(deployed: Deployed) -> None:

    with prefect_rest.client(deployed.api_url, timeout=30) as http:
        run_id = http.post(f"/deployments/{deployed.idle['quiet'].id}/create_flow_run", json={}).json()["id"]
        pending = {"state": {"type": "PENDING", "name": "Pending"}, "force": True}  # as a worker that took it
        http.post(f"/flow_runs/{run_id}/set_state", json=pending).raise_for_status()
    with history(Settings.model_validate({"prefect": {"api_url": deployed.api_url}})) as h:
        first, second = cancel(h, run_id), cancel(h, run_id)
    assert first.state == "Cancelling"  # left so by a worker whose run had not started
    assert second.state == "Cancelled"
    assert second.message.endswith("was Cancelling already, and is now recorded Cancelled")


def test_a_deployment_gone_from_the_api_is_one_line_naming_processes_list(prefect_api: str) -> None:
    gone = Deployment(id=str(uuid4()), flow_name="etl", name="nightly")
    process = _process(quiet, gone)

    async def scenario() -> list[Event]:
        return [event async for event in process.source.run(process, {}, None)]

    with _serving(prefect_api), pytest.raises(AgentctlError) as raised:
        asyncio.run(scenario())
    assert str(raised.value) == (
        "deployment etl/nightly is no longer in the Prefect API: "
        "agentctl processes list shows the deployments there are"
    )


def test_parameters_the_prefect_api_refuses_are_a_usage_error_with_its_reason(deployed: Deployed) -> None:
    process = _process(quiet, deployed.ready["held"])  # an argument model that lets `gate` out

    async def scenario() -> list[Event]:
        return [event async for event in process.source.run(process, {}, None)]

    with _serving(deployed.api_url), pytest.raises(UsageError) as raised:
        asyncio.run(scenario())
    assert str(raised.value) == (
        "quiet: the Prefect API refused the parameters: "
        "Error creating flow run: Validation failed. Failure reason: 'gate' is a required property"
    )


def test_a_served_deployment_waits_for_its_serving_process_not_a_pool() -> None:
    waiting = SimpleNamespace(name="Scheduled", message=None, type=SimpleNamespace(value="SCHEDULED"))
    follower = Follower(None, SimpleNamespace(id=uuid4(), name="run", state=waiting), None, worker_wait=0)
    assert [log.message for log in follower._worker_wait()] == [
        "waiting for the process that serves this deployment (flow.serve): is it running?"
    ]


def test_a_refused_run_in_a_request_leaves_nothing_under_the_requests_run(deployed: Deployed) -> None:
    from agentctl.processes.request_run import RequestRun

    process = _process(quiet, deployed.ready["held"])  # an argument model that lets `gate` out
    tree = RequestRun("run held without its gate", [])

    async def scenario() -> None:
        placement, _ = await tree.place()
        async for _ in process.source.run(process, {}, None, placement):
            pass

    with _serving(deployed.api_url), pytest.raises(UsageError):
        asyncio.run(scenario())
    with prefect_rest.client(deployed.api_url, timeout=30) as http:
        under = http.post("/task_runs/filter", json={"task_runs": {"flow_run_id": {"any_": [tree.run_id]}}})
    assert under.raise_for_status().json() == []  # its stand-in was taken back with the run not created
