"""Sources: how a process is executed, plugged in behind the router's view of a process (in-process)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from agentctl.config import Settings
from agentctl.errors import UsageError
from agentctl.events import Event, Log, Result, RunInfo, Started
from agentctl.execution.actor import RouterActor, _Gate
from agentctl.llm import ChatModel
from agentctl.output.views import process_output
from agentctl.processes.approval import NOTHING
from agentctl.processes.builtin import builtin_registry
from agentctl.processes.registry import Process, from_signature
from agentctl.routing.policy import retry_policy
from agentctl.routing.router import tool_for
from tests.actors import bare_actor


class EchoSource:
    """A source that runs nowhere: it logs the arguments it was given and returns them."""

    kind = "task"
    entrypoint = "echo-server:echo"

    def __init__(self) -> None:
        self.prepared: list[str] = []

    def describe(self) -> dict[str, Any]:
        return {"entrypoint": self.entrypoint, "server": "echo-server"}

    def retries(self) -> dict[str, Any]:
        return {"prefect": {"retries": 0, "retry_delay_seconds": 0, "timeout_seconds": None}, "note": "never"}

    def prepare(self, process: Process) -> None:
        self.prepared.append(process.name)

    async def run(
        self, process: Process, arguments: dict[str, Any], model: ChatModel | None, placement: Any = None
    ) -> AsyncIterator[Event]:
        yield Log(time=time.time(), level="INFO", run_name="echo", message=f"echo {arguments}")
        yield Result(process=process.name, value=arguments, run=RunInfo(kind=self.kind, state="Completed"))


def echo(word: str, times: int = 1) -> str:
    """Say a word back.

    Args:
        word: The word to say back.
    """
    return word * times


def echo_process() -> Process:
    return from_signature(echo, name="echo", source=EchoSource())


async def _collect(events: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in events]


def test_a_process_runs_through_its_source_in_the_actor() -> None:
    actor = bare_actor()  # the actor's run path, without Ray or Prefect
    process = echo_process()
    arguments = process.validate({"word": "hi", "times": "2"})
    events = asyncio.run(
        _collect(RouterActor._execute(actor, process, arguments, None, None, _Gate(Settings(), NOTHING)))
    )  # type: ignore[arg-type]
    assert [e.kind for e in events] == ["routed", "log", "result"]
    assert events[0].process_kind == "task"  # type: ignore[union-attr]
    assert events[1].message == "echo {'word': 'hi', 'times': 2}"  # type: ignore[union-attr]
    assert events[2].value == {"word": "hi", "times": 2}  # type: ignore[union-attr]


def test_the_router_sees_name_description_and_schema_only() -> None:
    tool = tool_for(echo_process(), strict=False)["function"]
    assert tool["name"] == "echo" and tool["description"] == "Say a word back."
    assert tool["parameters"]["properties"]["word"]["description"] == "The word to say back."
    assert "echo-server" not in str(tool)


def test_show_and_dry_run_describe_the_source() -> None:
    process = echo_process()
    shown = process_output(process, Settings()).document()
    assert (shown["kind"], shown["entrypoint"], shown["server"]) == ("task", "echo-server:echo", "echo-server")
    assert retry_policy(process, Settings()).note == "never"


def test_builtins_are_declared_once_with_their_docstring() -> None:
    for process in builtin_registry():
        fn = process.source.load()  # type: ignore[attr-defined]
        assert process.entrypoint == f"agentctl.processes.builtin:{process.name}"
        assert list(inspect.signature(fn).parameters) == list(process.schema()["properties"])
        assert process.description == inspect.getdoc(fn).split("\n\n")[0]  # type: ignore[union-attr]


def test_the_actor_prepares_every_process_through_its_source() -> None:
    from agentctl.execution.actor import _preload
    from agentctl.processes.registry import Registry

    process = echo_process()
    _preload(Registry([process]))
    assert process.source.prepared == ["echo"]  # type: ignore[attr-defined]


class StartedSource(EchoSource):
    """A deployment-like source: a run exists (Started), logs follow; it records being closed early."""

    kind = "deployment"

    def __init__(self) -> None:
        super().__init__()
        self.started = self.closed_early = False

    async def run(
        self, process: Process, arguments: dict[str, Any], model: ChatModel | None, placement: Any = None
    ) -> AsyncIterator[Event]:
        self.started = True
        try:
            yield Started(process=process.name, run=RunInfo(id="r1", name="otter", state="Scheduled"))
            yield Log(time=time.time(), level="INFO", run_name="otter", message="after the start")
            yield Result(process=process.name, value=1, run=RunInfo(id="r1"))
        except GeneratorExit:
            self.closed_early = True
            raise


def _detached(process: Process) -> list[Event]:
    actor = bare_actor()
    gate = _Gate(Settings(), NOTHING, detach=True)
    run = RouterActor._execute(actor, process, {"word": "hi"}, None, None, gate)  # type: ignore[arg-type]
    return asyncio.run(_collect(run))


def test_detach_ends_a_deployment_request_at_started_and_closes_its_source() -> None:
    source = StartedSource()
    events = _detached(from_signature(echo, name="echo", source=source))
    assert [e.kind for e in events] == ["routed", "started"] and source.closed_early


def test_detach_waits_for_approval_before_a_deployment_run_exists() -> None:
    source = StartedSource()
    events = _detached(replace(from_signature(echo, name="echo", source=source), confirm=True))
    assert [e.kind for e in events] == ["routed", "approval"] and not source.started


class CountedSource(EchoSource):
    """An in-actor-like source that counts its runs."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0

    async def run(
        self, process: Process, arguments: dict[str, Any], model: ChatModel | None, placement: Any = None
    ) -> AsyncIterator[Event]:
        self.runs += 1
        async for event in super().run(process, arguments, model, placement):
            yield event


@pytest.mark.parametrize("confirm", [False, True])
def test_detach_refuses_a_process_that_is_not_a_deployment_before_it_runs_or_is_asked_for(confirm: bool) -> None:
    source = CountedSource()
    with pytest.raises(UsageError, match="^--detach needs a deployment process; echo is a task run"):
        _detached(replace(from_signature(echo, name="echo", source=source), confirm=confirm))
    assert source.runs == 0
