"""What the commands show: one pydantic model per view, behind both rich output and ``--json``.

``document()`` is what ``--json`` prints (by default the model itself); ``render`` draws the same
model for the terminal. No rich here: a view is data.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_core import to_jsonable_python

from agentctl.events import (
    ChatReply,
    Event,
    Failed,
    Log,
    RequestStarted,
    Result,
    RetryPolicy,
    Routed,
    RunInfo,
    Started,
    Turn,
    Usage,
)


class View(BaseModel):
    """A command's output; ``--json`` prints ``document()``."""

    def document(self) -> Any:
        """The JSON document of this view."""
        return self.model_dump(mode="json")


class Choice(BaseModel):
    """A process and its arguments, as expected by a case or as chosen by the router."""

    process: str | None
    arguments: dict[str, Any] | None


class EvalFailure(BaseModel):
    """One case a model got wrong."""

    prompt: str
    expected: Choice
    got: Choice
    error: str | None


class Latency(BaseModel):
    """Routing latency percentiles, in seconds."""

    p50: float
    p90: float
    p99: float


class Tokens(BaseModel):
    """LLM tokens spent."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ModelSummary(BaseModel):
    """One model's figures over the cases."""

    cases: int
    accuracy: float
    argument_accuracy: float | None
    errors: int
    latency: Latency
    tokens: Tokens
    failures: list[EvalFailure]


class EvalOutput(View):
    """``agentctl eval``: the case file and each model's summary."""

    cases: str
    models: dict[str, ModelSummary]


class RunRow(BaseModel):
    """One run of ``agentctl runs``."""

    id: str
    name: str
    kind: str
    process: str | None
    state: str | None
    started: str | None
    duration: float | None
    url: str | None


class RunsOutput(View):
    """``agentctl runs``: the runs, newest first, and the API they came from."""

    runs: list[RunRow]
    api_url: str

    def document(self) -> Any:
        """The runs alone, as a JSON list."""
        return [row.model_dump(mode="json") for row in self.runs]


class StateRow(BaseModel):
    """One state a run went through."""

    time: str
    state: str
    message: str | None


class LogRow(BaseModel):
    """One log record of a run, as the Prefect API stores it."""

    time: str
    level: str
    logger: str
    message: str


class RunNode(RunRow):
    """A run and the runs under it: a request's process runs, a flow's task runs and subflows."""

    children: list[RunNode] = []


class RunDetail(RunRow, View):
    """``agentctl runs show``: a run with its parameters, result, state history and logs, and the
    tree of runs under it (a request's process runs, a flow's task runs and subflows)."""

    parameters: dict[str, Any] | None
    message: str | None
    result: Any
    states: list[StateRow]
    logs: list[LogRow]
    children: list[RunNode] = []


class CancelOutput(View):
    """``agentctl runs cancel``: the run and the state the request left it in.

    ``cancelled`` is false when the run had ended already (``state`` is then its final state).
    """

    id: str
    kind: str
    name: str
    state: str
    cancelled: bool
    message: str
    url: str | None = None


class ParameterRow(BaseModel):
    """One parameter of a process."""

    name: str
    type: str
    required: bool
    default: Any
    description: str


class ProcessSummary(BaseModel):
    """One process of ``agentctl processes list``."""

    name: str
    kind: str
    description: str
    entrypoint: str
    needs_approval: bool  # a person approves each run first (processes.confirm, auto_approve, its flag)
    schema_: dict[str, Any] = Field(alias="schema", serialization_alias="schema")
    parameters: list[ParameterRow] = Field(default=[], exclude=True)  # the table's, not the JSON's


class ProcessesOutput(View):
    """``agentctl processes list``: the registry."""

    processes: list[ProcessSummary]

    def document(self) -> Any:
        """The processes alone, as a JSON list."""
        return [p.model_dump(mode="json", by_alias=True) for p in self.processes]


class ProcessOutput(View):
    """``agentctl processes show``: one process in full."""

    name: str
    kind: str
    description: str
    needs_approval: bool
    details: dict[str, Any]  # what the process's source says of itself (entry point, options, ...)
    parameters: list[ParameterRow]
    schema_: dict[str, Any] = Field(alias="schema", serialization_alias="schema")

    def document(self) -> Any:
        """The process, its source's details at the top level, its schema under ``schema``."""
        head = self.model_dump(mode="json", include={"name", "kind", "description", "needs_approval"})
        rest = self.model_dump(mode="json", by_alias=True, include={"parameters", "schema_"})
        return {**head, **to_jsonable_python(self.details), **rest}


class ActorStatus(BaseModel):
    """One named router actor: alive, its requests in flight, its pid and its Ray node's id (None when dead)."""

    name: str
    alive: bool
    busy: int | None = None
    pid: int | None = None
    node: str | None = None


class RayStatus(BaseModel):
    """The stack's Ray: where, and whether up started it or it is configured."""

    address: str
    started_by_up: bool


class PrefectStatus(BaseModel):
    """The stack's Prefect API, its UI, whether it answers, and its database (never a password)."""

    api_url: str
    ui_url: str | None
    healthy: bool
    started_by_up: bool
    database: str


class StackDown(View):
    """No stack recorded, or one not ready (``unready`` says why; ``starting``: its up still runs)."""

    up: Literal[False] = False
    state_file: str
    dead: list[str] = []
    unready: str | None
    starting: bool
    versions: dict[str, str]


class GatewayStatus(BaseModel):
    """The stack's gateway: its HTTP API, its process, whether it answers."""

    url: str | None
    pid: int | None
    alive: bool
    mcp_url: str | None = None  # its MCP endpoint (streamable HTTP, the same token)


class StackUp(View):
    """A ready stack: ``up`` unless a piece is in ``dead``."""

    up: bool
    dead: list[str]
    state_file: str
    started_at: float
    ray: RayStatus
    prefect: PrefectStatus
    actors: list[ActorStatus]
    gateway: GatewayStatus | None = None  # None: disabled (gateway.enabled = false)
    versions: dict[str, str]


StatusView = StackDown | StackUp


class ErrorInfo(BaseModel):
    """Why a request failed: the one-line message, the error's type and its exit code."""

    message: str
    type: str
    exit_code: int

    @classmethod
    def of(cls, failed: Failed) -> ErrorInfo:
        """The error a ``Failed`` event tells."""
        return cls(message=failed.message, type=failed.error, exit_code=failed.exit_code)


class CallRecord(BaseModel):
    """One call of a step: the process the model chose, its arguments, and how its run went."""

    route: str
    arguments: dict[str, Any]
    run: RunInfo | None = None
    result: Any = None
    error: ErrorInfo | None = None
    logs: list[Log] = []
    call_id: str | None = Field(default=None, exclude=True)  # how the call's events name it
    ended: bool = Field(default=False, exclude=True)  # its Result or Failed came

    def add(self, event: Log | Started | Result | Failed) -> None:
        """Fold one event of this call's run into it."""
        if isinstance(event, Log):
            self.logs.append(event)
        elif isinstance(event, Started):
            self.run = event.run
        elif isinstance(event, Result):
            self.result, self.run, self.ended = event.value, event.run, True
        else:
            self.error, self.run, self.ended = ErrorInfo.of(event), event.run or self.run, True


class StepRecord(BaseModel):
    """One turn of the model: the calls it made (none for the turn that answered) and its usage."""

    calls: list[CallRecord] = []
    usage: Usage | None = None


_LOGS: dict[str, Any] = {"__all__": {"kind"}}
_USAGE: dict[str, Any] = {"kind": True, "step": True}  # a usage's step is where it sits in the document


class AskOutput(View):
    """One request's record: ``ask``, ``processes run`` and the REPL print it with ``--json``.

    ``steps`` holds every call the model made, step by step, each with its run, result or error and
    logs; ``answer`` the text the model ended with; ``usage`` the whole request's. The top-level
    ``route``, ``arguments``, ``reason``, ``run``, ``result`` and ``note`` are the last call's (the
    one call's, for a request of one call), ``logs`` every log of the request, ``chat`` the answer
    of a request that called no process, and ``error`` the request's own failure only: a call that
    failed on the way has its error in its call. ``policy``, ``needs_approval`` and ``dry_run``
    appear only in a dry run's document; ``conversation`` only for a request of a conversation
    (``ask``, the REPL; not a batch item); ``request_run`` only for a request that has its own
    Prefect run (one of several steps that called a process). ``turn`` holds the messages the request adds to its
    conversation, for the caller to keep; the document leaves it out.
    """

    request: str
    route: str | None = None
    arguments: dict[str, Any] | None = None
    reason: str | None = None
    chat: str | None = None
    result: Any = None
    run: RunInfo | None = None
    logs: list[Log] = []
    steps: list[StepRecord] = []
    answer: str | None = None
    usage: Usage | None = None
    error: ErrorInfo | None = None
    policy: RetryPolicy | None = None
    needs_approval: bool | None = None
    dry_run: bool | None = None
    note: str | None = None  # why ``result`` is null though the run completed (not persisted)
    conversation: str | None = None  # the id of the conversation the request belongs to
    request_run: RunInfo | None = None  # the request's own Prefect run, parent of its process runs
    turn: list[dict[str, Any]] | None = None

    def document(self) -> dict[str, Any]:
        """The record, without the events' ``kind`` tags, dry-run keys outside a dry run, an empty note
        or conversation, or the turn's messages."""
        step: dict[str, Any] = {"calls": {"__all__": {"logs": _LOGS}}, "usage": _USAGE}
        exclude: Any = {"logs": _LOGS, "usage": _USAGE, "steps": {"__all__": step}, "turn": True}
        doc = self.model_dump(mode="json", exclude=exclude)
        if self.policy is None:
            del doc["policy"], doc["needs_approval"], doc["dry_run"]
        for optional in ("note", "conversation", "request_run"):
            if doc[optional] is None:
                del doc[optional]
        return doc

    @property
    def calls(self) -> list[CallRecord]:
        """Every call of the request, in the order the model made them."""
        return [call for step in self.steps for call in step.calls]

    def call_of(self, event: Log | Started | Result | Failed) -> CallRecord | None:
        """The call an event belongs to: the last one its ``call_id`` names (None names a one-call request's)."""
        return next((call for call in reversed(self.calls) if call.call_id == event.call_id), None)

    def add(self, event: Event) -> int | None:
        """Fold one of the request's events into the record; the exit code of a failure that ended it."""
        if isinstance(event, Failed) and event.call_id is None:
            return self._ended(event)
        if isinstance(event, Routed):
            self._routed(event)
        elif isinstance(event, Usage):
            self._usage(event)
        elif isinstance(event, ChatReply):
            self.answer, self.chat = event.text, None if self.calls else event.text
        elif isinstance(event, Turn):
            self.turn = event.messages
        elif isinstance(event, RequestStarted):
            self.request_run = self.request_run or event.run  # a resumed request names its run once more
        elif isinstance(event, Log | Started | Result | Failed):
            self._of_call(event)
        return None

    def _step(self, number: int) -> StepRecord:
        while len(self.steps) < number:
            self.steps.append(StepRecord())
        return self.steps[number - 1]

    def _routed(self, event: Routed) -> None:
        self.route, self.arguments, self.reason = event.process, event.arguments, event.reason
        if event.policy is not None:
            self.policy, self.needs_approval, self.dry_run = event.policy, event.needs_approval, True
        call = CallRecord(route=event.process, arguments=event.arguments, call_id=event.call_id)
        self._step(event.step).calls.append(call)

    def _usage(self, event: Usage) -> None:
        if event.step is None:
            self.usage = event
        else:
            self._step(event.step).usage = event

    def _of_call(self, event: Log | Started | Result | Failed) -> None:
        call = self.call_of(event)
        if call is not None:
            call.add(event)
        if isinstance(event, Log):
            self.logs.append(event)
        elif call is None or call is self.calls[-1]:
            self.run = event.run or self.run
            if isinstance(event, Result):
                self.result, self.note = event.value, event.note

    def _ended(self, event: Failed) -> int:
        """The request failed: its error, also that of each call it cut short."""
        for call in self.calls:
            if not call.ended:
                call.add(event)
        self.error, self.run = ErrorInfo.of(event), event.run or self.run
        return event.exit_code


class BatchRecord(AskOutput):
    """One item of a batch as it finished: the ``ask --json`` record (``processes run --json`` for a
    run batch) and the item's ``id``, first."""

    id: str | int

    def document(self) -> dict[str, Any]:
        """The item's id, then the request's record."""
        doc = super().document()
        return {"id": doc.pop("id"), **doc}

    @property
    def succeeded(self) -> bool:
        """Whether the item needs no redoing: it ended with no error."""
        return self.error is None
