"""The agent loop in process: a scripted model and runner, no Ray, Prefect, HTTP or subprocess."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

from agentctl.config import LLMSettings, RouterSettings
from agentctl.errors import AgentctlError
from agentctl.events import ApprovalNeeded, ChatReply, Event, Failed, Log, Paused, Result, Routed, RunInfo, Turn, Usage
from agentctl.llm import TokenCount
from agentctl.processes.registry import Process, Registry
from agentctl.routing.agent import call_key, cut, run_request
from tests.test_sources import echo_process

DEADLINE = 30.0  # seconds a gate waits for the other call before the test fails


def calls(*pairs: tuple[str, dict[str, Any]]) -> Any:
    """A model message calling each (name, arguments)."""
    tool_calls = [
        SimpleNamespace(id=f"id-{name}-{i}", function=SimpleNamespace(name=name, arguments=json.dumps(arguments)))
        for i, (name, arguments) in enumerate(pairs)
    ]
    return SimpleNamespace(content=None, tool_calls=tool_calls, refusal=None)


def text(content: str) -> Any:
    return SimpleNamespace(content=content, tool_calls=None, refusal=None)


@dataclass
class ScriptedModel:
    """Answers with the scripted messages in turn (the last one for ever); records what it was sent."""

    script: list[Any]
    llm: LLMSettings = field(default_factory=LLMSettings)
    usage: TokenCount = field(default_factory=TokenCount)
    sent: list[list[dict[str, Any]]] = field(default_factory=list)

    async def complete(self, messages: list[dict[str, Any]], **options: Any) -> Any:
        self.sent.append(json.loads(json.dumps(messages)))
        message = self.script[min(len(self.sent) - 1, len(self.script) - 1)]
        reason = "tool_calls" if message.tool_calls else "stop"
        completion = SimpleNamespace(
            choices=[SimpleNamespace(message=message, finish_reason=reason)],
            usage=SimpleNamespace(prompt_tokens=10, completion_tokens=5),
        )
        self.usage.add(completion, self.llm.model, None)
        return completion


@dataclass
class Runner:
    """Runs ``echo``: ``word`` "boom" fails, "long" returns 500 characters; ``gate`` parties must all
    have started before any ends. ``confirm``: the processes that wait for approval."""

    gate: int = 1
    confirm: frozenset[str] = frozenset()
    ran: list[dict[str, Any]] = field(default_factory=list)
    _started: int = 0
    _all_in: asyncio.Event | None = None

    def stops(self, process: Process) -> bool:
        return process.name in self.confirm

    async def run(self, process: Process, arguments: dict[str, Any]) -> AsyncIterator[Event]:
        self.ran.append(arguments)
        yield Log(time=0, level="INFO", run_name=arguments["word"], message="started")
        await self._meet()
        if arguments["word"] == "boom":
            yield Failed(message="boom failed", run=RunInfo(state="Failed"))
            return
        value = "x" * 500 if arguments["word"] == "long" else arguments["word"].upper()
        yield Result(process=process.name, value=value, run=RunInfo())

    async def _meet(self) -> None:
        """Wait until ``gate`` calls have started: calls run one after another never get there."""
        self._all_in = self._all_in or asyncio.Event()
        self._started += 1
        if self._started >= self.gate:
            self._all_in.set()
        await asyncio.wait_for(self._all_in.wait(), DEADLINE)


REGISTRY = Registry([echo_process(), replace(echo_process(), name="write")])


def run(model: ScriptedModel, runner: Runner, **options: Any) -> list[Event]:
    settings = RouterSettings(**{k: v for k, v in options.items() if k in RouterSettings.model_fields})
    extra = {k: v for k, v in options.items() if k not in RouterSettings.model_fields}

    async def collect() -> list[Event]:
        return [e async for e in run_request("the request", REGISTRY, model, settings, runner, **extra)]  # type: ignore[arg-type]

    return asyncio.run(collect())


def test_cut_keeps_short_results_and_says_when_and_where_it_cut() -> None:
    assert cut("short", 100) == "short"
    long = cut("y" * 250, 100)
    assert long.startswith("y" * 100 + "\n") and "y" * 101 not in long
    assert "250 characters" in long and "router.max_result_chars" in long


def test_the_same_call_is_the_same_process_with_the_same_arguments() -> None:
    assert call_key("echo", {"word": "a", "times": 2}) == call_key("echo", {"times": 2, "word": "a"})
    assert call_key("echo", {"word": "a"}) != call_key("echo", {"word": "b"})
    assert call_key("echo", {"word": "a"}) != call_key("write", {"word": "a"})


def test_two_calls_run_concurrently_and_their_results_go_back_for_the_answer() -> None:
    model = ScriptedModel([calls(("echo", {"word": "one"}), ("echo", {"word": "two"})), text("ONE and TWO")])
    events = run(model, Runner(gate=2), history=[{"role": "user", "content": "earlier"}])
    routed = [e for e in events if isinstance(e, Routed)]
    assert [(e.step, e.call_id) for e in routed] == [(1, "id-echo-0"), (1, "id-echo-1")]
    assert {(e.call_id, e.value) for e in events if isinstance(e, Result)} == {
        ("id-echo-0", "ONE"),
        ("id-echo-1", "TWO"),
    }
    assert {e.call_id for e in events if isinstance(e, Log)} == {"id-echo-0", "id-echo-1"}
    answer_call = model.sent[1]
    assert answer_call[1] == {"role": "user", "content": "earlier"}  # history between instructions and request
    assert answer_call[-2:] == [
        {"role": "tool", "tool_call_id": "id-echo-0", "content": '"ONE"'},
        {"role": "tool", "tool_call_id": "id-echo-1", "content": '"TWO"'},
    ]
    ends = [e for e in events if isinstance(e, ChatReply | Usage | Turn)]
    assert [(e.kind, getattr(e, "step", None)) for e in ends] == [
        ("usage", 1),
        ("chat", 2),
        ("usage", 2),
        ("turn", None),
        ("usage", None),
    ]
    turn = next(e for e in events if isinstance(e, Turn)).messages
    assert [m["role"] for m in turn] == ["user", "assistant", "tool", "tool", "assistant"]
    assert turn[0]["content"] == "the request" and turn[-1]["content"] == "ONE and TWO"
    assert events[-1] == Usage(requests=2, prompt_tokens=20, completion_tokens=10, total_tokens=30)


def test_one_step_is_todays_one_shot_routing() -> None:
    model = ScriptedModel([calls(("echo", {"word": "one"})), text("never asked")])
    events = run(model, Runner(), max_steps=1)
    assert [e.kind for e in events] == ["routed", "log", "result", "turn", "usage"]
    assert len(model.sent) == 1 and "one tool" in model.sent[0][0]["content"]  # the one-shot instructions
    failing = run(ScriptedModel([calls(("echo", {"word": "boom"}))]), Runner(), max_steps=1)
    assert [e.kind for e in failing] == ["routed", "log", "failed", "usage"]
    assert isinstance(failing[2], Failed) and failing[2].call_id is None  # the request's failure
    several = ScriptedModel([calls(("echo", {"word": "a"}), ("echo", {"word": "b"})), calls(("echo", {"word": "a"}))])
    run(several, Runner(), max_steps=1)
    assert "expected one tool call, got 2" in several.sent[1][-1]["content"]  # repaired, as before


def test_a_model_that_never_stops_calling_ends_at_the_step_limit() -> None:
    model = ScriptedModel([calls(("echo", {"word": "again"}))])
    events = run(model, Runner(), max_steps=3)
    assert len(model.sent) == 3
    ended = [e for e in events if isinstance(e, Failed)]
    assert len(ended) == 1 and ended[0].call_id is None and ended[0].exit_code == 1
    assert "router.max_steps = 3" in ended[0].message and ended[0].error == "StepLimit"
    assert [e.kind for e in events[-2:]] == ["failed", "usage"] and not any(isinstance(e, Turn) for e in events)


def test_a_failed_call_goes_back_and_the_same_call_failing_twice_ends_the_request() -> None:
    boom = calls(("echo", {"word": "boom"}))
    model = ScriptedModel([boom, calls(("echo", {"word": "fine"})), boom, text("unreachable")])
    events = run(model, Runner())
    failures = [e for e in events if isinstance(e, Failed)]
    assert [f.call_id for f in failures] == ["id-echo-0", "id-echo-0", None]  # each failure, then the end
    assert model.sent[1][-1] == {"role": "tool", "tool_call_id": "id-echo-0", "content": "Error: boom failed"}
    assert model.sent[2][-1]["content"] == '"FINE"'  # the retry with other arguments ran
    assert len(model.sent) == 3 and failures[-1].error == "RepeatedFailure"
    assert "echo failed twice with the same arguments (boom failed)" in failures[-1].message


def test_a_result_sent_back_is_cut_to_max_result_chars() -> None:
    model = ScriptedModel([calls(("echo", {"word": "long"})), text("done")])
    events = run(model, Runner(), max_result_chars=100)
    sent = model.sent[1][-1]["content"]
    assert sent.startswith('"' + "x" * 99 + "\n") and "router.max_result_chars" in sent
    assert next(e for e in events if isinstance(e, Result)).value == "x" * 500  # the user sees it whole


def test_calls_that_need_approval_pause_the_step_and_resume_with_the_answers() -> None:
    model = ScriptedModel([calls(("echo", {"word": "free"}), ("write", {"word": "asked"})), text("half done")])
    runner = Runner(confirm=frozenset({"write"}))
    paused_events = run(model, runner)
    assert [e.kind for e in paused_events] == ["routed", "routed", "approval", "paused", "usage"]
    needed, paused = paused_events[2], paused_events[3]
    assert isinstance(needed, ApprovalNeeded) and needed.call_id == "id-write-1" and runner.ran == []
    assert isinstance(paused, Paused) and paused.step == 1
    answering = ScriptedModel([text("half done")])  # each request has a model of its own
    refused = run(answering, runner, resume=paused)  # no id approved: the person said no
    assert runner.ran == [{"word": "free", "times": 1}]
    assert answering.sent[0][-1] == {
        "role": "tool",
        "tool_call_id": "id-write-1",
        "content": "Refused by the user: write did not run.",
    }
    assert isinstance(refused[-1], Usage) and refused[-1].requests == 2  # the usage before the pause counts
    run(ScriptedModel([text("all done")]), runner, resume=paused.model_copy(update={"approved": ["id-write-1"]}))
    assert [ran["word"] for ran in runner.ran] == ["free", "free", "asked"]


def test_a_refused_call_runs_not_though_the_model_gave_it_the_id_of_an_approved_one() -> None:
    both = calls(("echo", {"word": "free"}), ("write", {"word": "asked"}))
    for call in both.tool_calls:
        call.id = "call_0"  # a model that repeats one id for two calls
    runner = Runner(confirm=frozenset({"write"}))
    paused = next(e for e in run(ScriptedModel([both]), runner) if isinstance(e, Paused))
    assert len({c.call_id for c in paused.calls}) == 2  # the step's calls keep apart
    answering = ScriptedModel([text("half done")])
    run(answering, runner, resume=paused.model_copy(update={"approved": ["call_0"]}))  # the id the other call kept
    assert [ran["word"] for ran in runner.ran] == ["free"]  # "asked" was not approved: it did not run
    ids = [m["tool_call_id"] for m in answering.sent[0] if m["role"] == "tool"]
    assert len(ids) == len(set(ids)) == 2  # each call answered under an id of its own


def test_the_local_llm_tells_a_follow_up_from_a_repair() -> None:
    from tests.servers import _kind

    asked = [{"role": "system", "content": "s"}, {"role": "user", "content": "the request"}]
    called = {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]}
    result = {"role": "tool", "tool_call_id": "c1", "content": '"ONE"'}
    repair = {"role": "tool", "tool_call_id": "c2", "content": "Error: bad. Call a tool again, correctly."}
    assert _kind({"messages": asked}) == "route"
    assert _kind({"messages": [*asked, called, repair]}) == "route"  # a repair of the first call
    assert _kind({"messages": [*asked, called, result]}) == "step"
    assert _kind({"messages": [*asked, called, result, called, repair]}) == "step"  # a repair of a follow-up
    assert _kind({"messages": [*asked, called, result, {"role": "user", "content": "and?"}]}) == "route"  # history
    assert _kind({"messages": [*asked, {"role": "user", "content": "Result of echo (step-1): 1"}]}) == "step"


class RaisingSource:
    """A source whose run raises an agentctl error that quotes a secret."""

    kind = "task"

    async def run(
        self, process: Process, arguments: dict[str, Any], model: Any, placement: Any = None
    ) -> AsyncIterator[Event]:
        raise AgentctlError("the service said: bad key sk-secret-123456")
        yield  # an async generator, as sources are


def through_the_actors_runner(source: Any) -> list[Event]:
    """The events of one run of an ``echo`` process with ``source``, through the actor's runner, whose
    request's secret is ``sk-secret-123456``."""
    from agentctl.config import Settings
    from agentctl.execution.actor import _Calls, _Gate
    from agentctl.processes.approval import NOTHING
    from tests.actors import bare_actor

    runner = _Calls(bare_actor(), None, _Gate(Settings(), NOTHING), ["sk-secret-123456"], None)  # type: ignore[arg-type]
    process = replace(echo_process(), source=source)

    async def collect() -> list[Event]:
        return [e async for e in runner.run(process, {"word": "x"})]

    return asyncio.run(collect())


def test_the_actors_runner_reports_a_raised_error_as_the_calls_failure_redacted() -> None:
    [failed] = through_the_actors_runner(RaisingSource())
    assert isinstance(failed, Failed) and failed.message == "the service said: bad key ***" and failed.exit_code == 1


class EchoingSource:
    """A source whose result quotes a secret, in a value and in a key."""

    kind = "task"

    async def run(
        self, process: Process, arguments: dict[str, Any], model: Any, placement: Any = None
    ) -> AsyncIterator[Event]:
        yield Result(process=process.name, value={"said": "key sk-secret-123456", "sk-secret-123456": 1}, run=RunInfo())


def test_the_actors_runner_redacts_a_result_before_it_goes_back_to_the_model() -> None:
    [result] = through_the_actors_runner(EchoingSource())
    assert isinstance(result, Result) and result.value == {"said": "key ***", "***": 1}
