"""The small typed records that travel from a router actor to the terminal.

One request yields, in order: ``Routed`` (or ``ChatReply``), for a deployment ``Started`` (its flow
run exists), any number of ``Log``, then ``Result`` or ``Failed`` (a detached request ends at
``Started``); or, for a process a person approves first, ``Routed`` then ``ApprovalNeeded`` and
nothing more ran. They are plain pydantic models so they cross Ray and become JSON unchanged.

A request of several steps repeats this per step: each step's calls (``Routed`` with its ``step``
and ``call_id``) and their events, marked with the same ``call_id`` (their streams interleave: the
calls run at once); a ``Failed`` with a ``call_id`` is that call's failure, sent back to the model,
and the request goes on; one without ends the request. The model's text answer is a ``ChatReply``;
``Turn`` carries what the request adds to a conversation; a request that stops for approval ends with
its ``ApprovalNeeded`` events and a ``Paused`` that its caller sends back to go on; ``Usage`` comes
per step (``step`` set) and once for the whole request (``step`` None). ``RequestStarted`` comes
before the first call's events: the request's own Prefect run, parent of its process runs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

# How agentctl's runs are found again in Prefect (``agentctl runs``): their tags and result artifact.
RUN_TAG = "agentctl"
PROCESS_TAG = "process:"
REQUEST_TAG = "agentctl:request"  # a request's own flow run, the parent of its process runs
RESULT_ARTIFACT = "agentctl result"


def run_page(ui_url: str | None, kind: str, run_id: str | None) -> str | None:
    """The run's page in the Prefect UI at ``ui_url``, or None without a UI or an id."""
    ui = (ui_url or "").rstrip("/")
    return f"{ui}/runs/{kind}-run/{run_id}" if ui and run_id else None


class PrefectRetries(BaseModel):
    """The Prefect options of a process that decide its retries."""

    retries: int | None
    retry_delay_seconds: Any  # Prefect takes a number, a list of numbers or a callable's result
    timeout_seconds: int | float | None


class LLMBudget(BaseModel):
    """The LLM client's and the router's own retry budget."""

    timeout: float
    max_retries: int
    repair_attempts: int


class RetryPolicy(BaseModel):
    """What would retry, and how often, if a process ran now (``ask --dry-run``)."""

    prefect: PrefectRetries
    note: str | None
    llm: LLMBudget
    worst_case_routing_requests: int


class RouteOutcome(BaseModel):
    """What a router actor's ``route`` decided for one request, nothing run (for ``eval``)."""

    process: str | None = None
    arguments: dict[str, Any] | None = None
    error: str | None = None
    latency: float = 0.0
    usage: dict[str, int | float | None] = {}  # spending.TokenCount.as_dict(): counts and cost


class Routed(BaseModel):
    """The LLM chose a process and its arguments validated."""

    kind: Literal["routed"] = "routed"
    process: str
    process_kind: str
    arguments: dict[str, Any]
    reason: str | None = None
    policy: RetryPolicy | None = None
    needs_approval: bool | None = None  # told by a dry run only
    step: int = 1  # the LLM turn that made the call, from 1
    call_id: str | None = None  # the model's id of the call; the events of its run carry it too


class ApprovalNeeded(BaseModel):
    """The chosen process waits for a person's yes; nothing was created. Ask, then run these arguments."""

    kind: Literal["approval"] = "approval"
    process: str
    arguments: dict[str, Any]
    call_id: str | None = None


class ChatReply(BaseModel):
    """No process fits: the LLM answered in plain text."""

    kind: Literal["chat"] = "chat"
    text: str
    step: int = 1


class Log(BaseModel):
    """One log record of the Prefect run."""

    kind: Literal["log"] = "log"
    time: float
    level: str
    run_name: str
    message: str
    run_id: str | None = None  # the Prefect run the record belongs to, once known
    run_kind: str | None = None
    call_id: str | None = None


class RunInfo(BaseModel):
    """Which Prefect run carried out the process, and how it ended."""

    id: str | None = None
    name: str | None = None
    kind: str = "flow"
    state: str = "Completed"
    url: str | None = None  # the run's page in the Prefect UI, when a UI is up


class RequestStarted(BaseModel):
    """A request of several steps has its own Prefect flow run, parent of every process run it makes
    (created at its first call; again when a paused request goes on)."""

    kind: Literal["request_started"] = "request_started"
    run: RunInfo


class Started(BaseModel):
    """A flow run of a deployment was created: its worker executes it; the request follows it (or detaches)."""

    kind: Literal["started"] = "started"
    process: str
    run: RunInfo
    work_pool: str | None = None
    call_id: str | None = None


class Result(BaseModel):
    """The process finished; ``value`` is its JSON-able return value.

    ``note`` says why there is no value to show (a deployment run whose result Prefect did not persist).
    """

    kind: Literal["result"] = "result"
    process: str
    value: Any
    run: RunInfo
    note: str | None = None
    call_id: str | None = None


class Failed(BaseModel):
    """The request failed; ``exit_code`` follows agentctl.errors."""

    kind: Literal["failed"] = "failed"
    message: str
    exit_code: int = 1
    error: str = "AgentctlError"
    run: RunInfo | None = None
    detail: str | None = None
    call_id: str | None = None  # set: one call of a step failed and the request goes on
    raised: bool = False  # the caller's side raised it (the pool, the stack), not the actor: a client raises it again


class Usage(BaseModel):
    """What the request cost on the LLM: requests and tokens, nested calls included."""

    kind: Literal["usage"] = "usage"
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float | None = None  # with llm.prices for the model: what these tokens cost
    step: int | None = None  # None: the whole request


class Turn(BaseModel):
    """What the request adds to a conversation: chat messages (OpenAI's format) of the request, the
    calls, their results as the model saw them, and the answer; the next request can carry them."""

    kind: Literal["turn"] = "turn"
    messages: list[dict[str, Any]]


class PendingCall(BaseModel):
    """A validated call that waits for a person's answer."""

    call_id: str
    process: str
    arguments: dict[str, Any]


class Paused(BaseModel):
    """A request stopped before running calls that need approval (its ``ApprovalNeeded`` events came
    first): everything the actor needs to go on, so it keeps no state while a person thinks. The caller
    sends it back (``resume``) with ``approved``: the ids of the calls the person said yes to; the
    others go to the model as refused."""

    kind: Literal["paused"] = "paused"
    messages: list[dict[str, Any]]  # the conversation so far, the step's assistant message last
    turn_from: int  # where this request's own messages start (after the instructions and earlier turns)
    step: int
    calls: list[PendingCall]
    usage: dict[str, int | float | None]  # what the request spent on the LLM so far (cost included)
    step_start: dict[str, int | float | None] = {}  # what it had spent when this step began
    failed: list[str] = []  # the calls that failed once already (``agent.call_key``)
    approved: list[str] = []
    request_run: str | None = None  # the request's flow run, where the resumed request goes on


Event = Annotated[
    Routed | ApprovalNeeded | RequestStarted | Started | ChatReply | Log | Result | Failed | Usage | Turn | Paused,
    Field(discriminator="kind"),
]


def follow(runs: dict[str, str], event: Event) -> None:
    """Keep ``runs`` (id: kind) the runs in progress after ``event``: the request's, and those logging
    until their outcome (what a caller that loses the request marks Crashed)."""
    if isinstance(event, RequestStarted) and event.run.id:
        runs[event.run.id] = event.run.kind
    elif isinstance(event, Log) and event.run_id:
        runs[event.run_id] = event.run_kind or "flow"
    elif isinstance(event, Result | Failed) and event.run is not None and event.run.id:
        runs.pop(event.run.id, None)
