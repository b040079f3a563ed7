"""The agent loop: one request's steps, from the request to the model's answer.

Each step is one LLM turn (``router.step``) offering the processes as tools. Its calls, validated
and repaired as in one-shot routing, run concurrently through the caller's ``Runner`` (their events
merged, each stamped with its call's id); their results and errors go back to the model as tool
messages, cut to ``router.max_result_chars``. A text answer ends the request; so does the same call
failing twice (``RepeatedFailure``), and the model still calling at ``router.max_steps``
(``StepLimit``). ``max_steps = 1`` is one-shot routing: route once, run, no answer call.

Calls that need approval stop the request before any call of their step runs: their
``ApprovalNeeded`` events, then a ``Paused`` the caller sends back with the person's answers; the
loop goes on from there, a refused call reported to the model as refused.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentctl.config import RouterSettings
from agentctl.errors import AgentctlError
from agentctl.events import (
    ApprovalNeeded,
    ChatReply,
    Event,
    Failed,
    Paused,
    PendingCall,
    Result,
    Routed,
    Started,
    Turn,
    Usage,
)
from agentctl.llm import Model, TokenCount
from agentctl.processes.registry import Process, Registry
from agentctl.routing import router
from agentctl.routing.router import Call, Route
from agentctl.routing.shortlist import shortlist
from agentctl.spending import Spent

REFUSED = "Refused by the user: {name} did not run."


class StepLimit(AgentctlError):
    """The model was still calling processes when the request reached ``router.max_steps`` (exit 1:
    processes ran, the request did not finish)."""


class RepeatedFailure(AgentctlError):
    """The same call (process and arguments) failed twice in one request."""


class CountedModel(Model, Protocol):
    """A chat model that counts what the request spends."""

    usage: TokenCount


class Runner(Protocol):
    """How the loop's calls run: the actor's gate and its process sources."""

    def stops(self, process: Process) -> bool:
        """Whether ``process`` waits for an approval the request does not carry."""

    def run(self, process: Process, arguments: dict[str, Any]) -> AsyncIterator[Event]:
        """Run ``process`` with validated ``arguments``: its events, a failure as a ``Failed`` (what it
        raises ends the request)."""


def cut(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters and a note that says so and names the setting."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[cut: {len(text)} characters, only the first {limit} sent (router.max_result_chars)]"


def call_key(process: str, arguments: dict[str, Any]) -> str:
    """What makes two calls the same call: the process and its arguments."""
    return json.dumps([process, arguments], sort_keys=True, default=str)


def outcome_text(outcome: Event | None, process: str) -> str:
    """What the model is told of a call's outcome."""
    if isinstance(outcome, Result):
        value = outcome.note if outcome.value is None and outcome.note else outcome.value
        return json.dumps(value, default=str)
    if isinstance(outcome, Failed):
        return f"Error: {outcome.message}"
    if isinstance(outcome, Started):
        return f"Started flow run {outcome.run.name} ({outcome.run.id}); its worker carries it on."
    return REFUSED.format(name=process)


def result_message(mode: router.Mode, call: Call, content: str) -> dict[str, Any]:
    """A call's outcome as the model reads it: a tool message, or in json_schema mode (no tool
    calls there) a user message that names the call."""
    if mode == "tools":
        return {"role": "tool", "tool_call_id": call.call_id, "content": content}
    return {"role": "user", "content": f"Result of {call.route.process.name} ({call.call_id}): {content}"}


def stamped(event: Event, call_id: str | None) -> Event:
    """``event`` marked as the call's, when its kind carries a call id."""
    if call_id is None or not hasattr(event, "call_id"):
        return event
    return event.model_copy(update={"call_id": call_id})


async def merged(streams: list[AsyncIterator[Event]]) -> AsyncIterator[Event]:
    """The events of ``streams`` as they come, the streams running concurrently; an error in one
    ends them all (they are cancelled, as they are when the request is)."""
    if len(streams) == 1:
        async with aclosing(streams[0]) as only:  # type: ignore[type-var]
            async for event in only:
                yield event
        return
    queue: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()

    async def pump(stream: AsyncIterator[Event]) -> None:
        try:
            async for event in stream:
                queue.put_nowait(event)
            queue.put_nowait(None)
        except Exception as exc:  # handed to the consumer, which raises it
            queue.put_nowait(exc)

    tasks = [asyncio.ensure_future(pump(stream)) for stream in streams]
    try:
        left = len(tasks)
        while left:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            if item is None:
                left -= 1
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class State:
    """Where a request is: its messages, its step, the calls that failed once, whether it ended."""

    messages: list[dict[str, Any]]
    turn_from: int
    step: int = 1
    failed: set[str] = field(default_factory=set)
    step_start: Spent = field(default_factory=dict)
    over: bool = False


@dataclass
class Agent:
    """One request's loop over ``offered``, with ``chat``, ``options`` and ``runner``."""

    offered: Registry
    chat: CountedModel
    options: RouterSettings
    runner: Runner
    one_shot: bool

    async def steps(self, state: State) -> AsyncIterator[Event]:
        """LLM turns and their calls until an answer, an ending or a pause."""
        while not state.over:
            state.step_start = self.chat.usage.as_dict()
            decision = await self._decide(state)
            state.messages.append(decision.message)
            if not decision.calls:
                yield ChatReply(text=decision.text or "", step=state.step)
                async for event in self._ended(state):
                    yield event
                return
            async for event in self._called(state, decision.calls):
                yield event

    async def resumed(self, state: State, paused: Paused) -> AsyncIterator[Event]:
        """The paused step's calls, the person's answers applied, then the next steps."""
        calls = [self._pending(call) for call in paused.calls]
        refused = {c.call_id for c in calls if c.call_id not in paused.approved and self.runner.stops(c.route.process)}
        async for event in self._ran(state, calls, refused):
            yield event
        async for event in self.steps(state):
            yield event

    def _pending(self, call: PendingCall) -> Call:
        process = self.offered.get(call.process)
        if process is None:
            raise AgentctlError(f"{call.process} is no longer offered to this request: ask again")
        return Call(Route(process, call.arguments), call.call_id)

    async def _decide(self, state: State) -> router.Decision:
        mode = self.chat.llm.mode
        return await router.step(
            state.messages,
            self.offered,
            self.chat,
            repair_attempts=self.options.repair_attempts,
            strict=self.chat.llm.strict_tools,
            mode=mode,
            several=not self.one_shot and mode == "tools",
            number=state.step,
        )

    async def _called(self, state: State, calls: list[Call]) -> AsyncIterator[Event]:
        """A step's calls: shown, then paused for approval or run."""
        for call in calls:
            route = call.route
            yield Routed(
                process=route.process.name,
                process_kind=route.process.kind,
                arguments=route.arguments,
                reason=route.reason,
                step=state.step,
                call_id=call.call_id,
            )
        stopped = [call for call in calls if self.runner.stops(call.route.process)]
        if stopped:
            for call in stopped:
                yield ApprovalNeeded(
                    process=call.route.process.name, arguments=call.route.arguments, call_id=call.call_id
                )
            yield self._paused(state, calls)
            state.over = True
            return
        async for event in self._ran(state, calls, refused=set()):
            yield event

    def _paused(self, state: State, calls: list[Call]) -> Paused:
        pending = [
            PendingCall(call_id=c.call_id, process=c.route.process.name, arguments=c.route.arguments) for c in calls
        ]
        return Paused(
            messages=state.messages,
            turn_from=state.turn_from,
            step=state.step,
            calls=pending,
            usage=self.chat.usage.as_dict(),
            step_start=dict(state.step_start),
            failed=sorted(state.failed),
        )

    async def _ran(self, state: State, calls: list[Call], refused: set[str]) -> AsyncIterator[Event]:
        """Run the calls not ``refused`` at once; their outcomes go to the model; the step's end."""
        outcomes: dict[str, Event] = {}
        running = [self._one(call, outcomes) for call in calls if call.call_id not in refused]
        if running:
            async for event in merged(running):
                yield event
        for call in calls:
            content = cut(
                outcome_text(outcomes.get(call.call_id), call.route.process.name), self.options.max_result_chars
            )
            state.messages.append(result_message(self.chat.llm.mode, call, content))
        async for event in self._step_end(state, calls, outcomes):
            yield event

    async def _one(self, call: Call, outcomes: dict[str, Event]) -> AsyncIterator[Event]:
        """One call's events, stamped with its id; its outcome kept. In one-shot routing a failure ends
        the request (no call id): nothing goes back to the model."""
        mark = None if self.one_shot else call.call_id
        async for event in self.runner.run(call.route.process, call.route.arguments):
            if isinstance(event, Result | Failed | Started):
                outcomes[call.call_id] = event
            yield stamped(event, call.call_id if not isinstance(event, Failed) else mark)

    async def _step_end(self, state: State, calls: list[Call], outcomes: dict[str, Event]) -> AsyncIterator[Event]:
        """After a step's calls: the request ends (one-shot, a repeated failure, the step limit) or goes on."""
        if self.one_shot:
            if not any(isinstance(outcome, Failed) for outcome in outcomes.values()):
                async for event in self._ended(state, step_usage=False):
                    yield event
            state.over = True
            return
        ending = self._repeated(state, calls, outcomes) or self._limit(state)
        yield Usage.model_validate({**self.chat.usage.since(state.step_start), "step": state.step})
        if ending is not None:
            yield Failed(message=str(ending), exit_code=ending.exit_code, error=type(ending).__name__)
            state.over = True
        state.step += 1

    def _repeated(self, state: State, calls: list[Call], outcomes: dict[str, Event]) -> AgentctlError | None:
        """A call that failed before with the same arguments; remembers this step's failures."""
        for call in calls:
            failed = outcomes.get(call.call_id)
            if not isinstance(failed, Failed):
                continue
            key = call_key(call.route.process.name, call.route.arguments)
            if key in state.failed:
                return RepeatedFailure(
                    f"{call.route.process.name} failed twice with the same arguments ({failed.message}): "
                    "the request ends"
                )
            state.failed.add(key)
        return None

    def _limit(self, state: State) -> AgentctlError | None:
        if state.step < self.options.max_steps:
            return None
        return StepLimit(
            f"the model was still calling processes after router.max_steps = {self.options.max_steps} steps: "
            "raise router.max_steps, or ask for less at once"
        )

    async def _ended(self, state: State, step_usage: bool = True) -> AsyncIterator[Event]:
        """The end of a request that finished normally: its step's usage, then what it adds to a conversation."""
        if step_usage and not self.one_shot:
            yield Usage.model_validate({**self.chat.usage.since(state.step_start), "step": state.step})
        yield Turn(messages=state.messages[state.turn_from :])
        state.over = True


def is_one_shot(options: RouterSettings, detach: bool = False) -> bool:
    """Whether a request routes once and runs, no answer step: ``router.max_steps = 1``, or detached."""
    return detach or options.max_steps == 1


async def run_request(
    request: str,
    registry: Registry,
    chat: CountedModel,
    options: RouterSettings,
    runner: Runner,
    *,
    one_shot: bool = False,
    history: list[dict[str, Any]] | None = None,
    resume: Paused | None = None,
) -> AsyncIterator[Event]:
    """One request's events, from its first step (after ``history``'s turns) or from ``resume``, to the
    request's total ``Usage``. ``one_shot`` (or ``router.max_steps = 1``): route once and run."""
    one_shot = one_shot or is_one_shot(options)
    offered = Registry(shortlist(request, list(registry), options.max_tools))
    agent = Agent(offered, chat, options, runner, one_shot)
    if resume is None:
        messages = router.opening(chat.llm.mode, request, history, agent=not one_shot)
        events = agent.steps(State(messages, turn_from=len(messages) - 1))
    else:
        chat.usage.restore(resume.usage)
        state = State(list(resume.messages), resume.turn_from, resume.step, set(resume.failed), resume.step_start)
        events = agent.resumed(state, resume)
    async with aclosing(events) as stream:  # type: ignore[type-var]
        async for event in stream:
            yield event
    yield Usage.model_validate(chat.usage.as_dict())
