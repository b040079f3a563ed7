"""The event stream of a request on the terminal: as rich text, or as one JSON document for scripts.

Renderers know nothing of where events come from; each returns the exit code the events imply.
Both fold the events into an ``AskOutput``: it says which call an event belongs to and which
failure ends the request (a call's failure does not: the model sees it and goes on).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from rich.console import Console, RenderableType
from rich.panel import Panel
from rich.pretty import Pretty
from rich.rule import Rule
from rich.status import Status
from rich.table import Table
from rich.text import Text

from agentctl.errors import EXIT_OK, AgentctlError
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
    Usage,
)
from agentctl.output.emit import Redact, print_error
from agentctl.output.untrusted import literal, markdown, printable
from agentctl.spending import plain
from agentctl.views import AskOutput, CallRecord, ErrorInfo

LEVEL_STYLES = {"DEBUG": "dim", "INFO": "cyan", "WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red"}
APPROVAL = {True: "asked before it runs (--yes approves)", False: "not needed"}
REPLY_STYLE: dict[str, Any] = {"title": "reply", "title_align": "left", "border_style": "blue"}
ANSWER_STYLE: dict[str, Any] = {**REPLY_STYLE, "title": "answer"}
ASKING = "Asking the LLM…"


class Following:
    """The deployment runs a request follows, until their outcomes: what to say when the following
    stops first (Ctrl-C, ``--detach``), since the runs go on in their workers. Calls of one step
    run at once: each call's run is followed apart (by ``call_id``)."""

    def __init__(self) -> None:
        self.runs: dict[str | None, RunInfo] = {}

    def see(self, event: Event) -> None:
        """Remember the run a ``Started`` names; forget it at its call's outcome."""
        if isinstance(event, Started):
            self.runs[event.call_id] = event.run
        elif isinstance(event, Result | Failed):
            self.runs.pop(event.call_id, None)
            # A one-shot request's failure carries no call id, but its run: that run has ended too.
            ended = event.run.id if event.run is not None else None
            self.runs = {call: run for call, run in self.runs.items() if ended is None or run.id != ended}

    def left(self, why: str) -> str | None:
        """A line per run left to its worker, naming how to cancel it; None when none is left."""
        lines = [
            f"{why}: flow run {run.name} ({run.id}) goes on in its worker; to cancel it: agentctl runs cancel {run.id}"
            for run in self.runs.values()
        ]
        return "\n".join(lines) or None

    @contextlib.contextmanager
    def told(self, say: Callable[[str], None]) -> Iterator[None]:
        """Around the rendering: on Ctrl-C (wherever it lands) or at an end with no outcome, ``say`` the line."""
        try:
            yield
        except KeyboardInterrupt:
            if (line := self.left("stopped following")) is not None:
                say(line)
            raise
        if (line := self.left("detached")) is not None:
            say(line)


class RichRenderer:
    """Streams events as they arrive: per step its calls' route lines, their logs (each prefixed by
    its run's name, so calls running at once stay apart) and a panel per call; then the answer.

    Step 1 has no header, so a request of one call looks as it always did; later steps start with
    one (``── step 2 ──``).
    """

    def __init__(self, out: Console, err: Console, redact: Redact, debug: bool = False, verbose: bool = False) -> None:
        self.out, self.err, self._redact, self._debug, self._verbose = out, err, redact, debug, verbose
        self._status: Status | None = None
        self._record = AskOutput(request="")

    def render(self, events: Iterable[Event]) -> int:
        """Print every event; return the exit code."""
        code, following = EXIT_OK, Following()
        self._record = AskOutput(request="")
        with following.told(self._note), self.err.status(ASKING, spinner="dots") as self._status:
            for event in events:
                following.see(event)
                code = self._record.add(event) or code
                self._one(event)
        return code

    def _note(self, line: str) -> None:
        if self._status is not None:
            self._status.stop()
        self.err.print(literal(self._redact(line), style="yellow"))

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The spinner out of the way meanwhile: for lines on stdout, and for a question asked on the terminal.

        The spinner lives on the stderr console, which does not see what the stdout console writes
        nor what is typed: on a terminal they would share a line. Stopping it clears its line.
        """
        status = self._status
        if status is not None:
            status.stop()
        try:
            yield
        finally:
            if status is not None:
                status.start()

    def _show(self, *renderables: RenderableType) -> None:
        """Print on stdout with the spinner out of the way."""
        with self.paused():
            for renderable in renderables:
                self.out.print(renderable)

    def _say(self, doing: str) -> None:
        if self._status is not None:
            self._status.update(literal(doing, lines=False))

    def _one(self, event: Event) -> None:
        if isinstance(event, Routed):
            self._routed(event)
        elif isinstance(event, RequestStarted):
            if event.run.name is not None:  # not again when a paused request goes on
                self._show(request_line(event.run))
        elif isinstance(event, Started):
            self._say(f"Following flow run {event.run.name}…")
            self._show(started_line(event))
        elif isinstance(event, Log):
            self._show(log_line(event, self._redact))
        elif isinstance(event, Result) or (isinstance(event, Failed) and event.call_id is not None):
            self._outcome(event)
        elif isinstance(event, Failed):
            self._failed(event)
        elif isinstance(event, ChatReply):
            self._reply(event)
        elif isinstance(event, Usage) and self._verbose and event.step is None:
            self.err.print(Text(usage_line(event), style="dim"))

    def _routed(self, event: Routed) -> None:
        if event.step > 1 and len(self._record.steps[event.step - 1].calls) == 1:  # the step's first call
            self._show(Rule(f"step {event.step}", style="dim", align="left"))
        self._say(f"Running {', '.join(call.route for call in self._record.calls if not call.ended)}…")
        self._show(*route_view(event, self._redact))

    def _outcome(self, event: Result | Failed) -> None:
        """A call's panel: its result, or its error (the request goes on: the model is told)."""
        if isinstance(event, Result):
            self._show(result_panel(event, self._redact))
        else:
            self._show(call_error_panel(self._record.call_of(event), event, self._redact))
        if all(call.ended for call in self._record.calls):
            self._say(ASKING)  # the model sees the results next

    def _reply(self, event: ChatReply) -> None:
        """The model's text: the answer after calls (markdown), else a reply, shown as typed."""
        text = self._redact(event.text)
        if self._record.calls:
            self._show(Panel(markdown(text), **ANSWER_STYLE))
        else:
            self._show(Panel(literal(text), **REPLY_STYLE))

    def _failed(self, event: Failed) -> None:
        print_error(self._redact(event.message), self.err)
        if event.run and event.run.url:
            self.err.print(literal(f"run: {event.run.url}", style="dim"))
        if self._debug and event.detail:
            self.err.print(literal(self._redact(event.detail), style="dim"))


def route_view(event: Routed, redact: Redact) -> list[RenderableType]:
    """The route line, the model's reason and, on a dry run, the retry policy."""
    shown: list[RenderableType] = [route_line(event, redact)]
    if event.reason:
        shown.append(literal(f"  reason: {redact(event.reason)}", style="dim"))
    if event.needs_approval is not None:
        shown.append(literal(f"  approval: {APPROVAL[event.needs_approval]}", style="dim"))
    if event.policy is not None:
        shown.append(policy_text(event.policy))
    return shown


def route_line(event: Routed, redact: Redact) -> Text:
    """``→ process(arg=value, …)``"""
    args = printable(redact(", ".join(f"{k}={v!r}" for k, v in event.arguments.items())), lines=False)
    kind = printable(f"  [{event.process_kind}]")
    name = printable(event.process, lines=False)
    return Text.assemble(("→ ", "bold green"), (name, "bold"), (f"({args})", "green"), (kind, "dim"))


def policy_text(policy: RetryPolicy) -> Text:
    """The retry policy a dry run reports, and that nothing ran."""
    prefect, budget = policy.prefect, policy.llm
    lines = [
        f"  prefect: retries={prefect.retries}, retry_delay_seconds={prefect.retry_delay_seconds}, "
        f"timeout_seconds={prefect.timeout_seconds}",
        f"  llm: timeout={budget.timeout:g}s, max_retries={budget.max_retries}, "
        f"repair_attempts={budget.repair_attempts} "
        f"(at most {policy.worst_case_routing_requests} routing requests)",
    ]
    if policy.note:
        lines.append(f"  note: {policy.note}")
    lines.append("dry run: nothing ran")
    return literal("\n".join(lines), style="dim")


def request_line(run: RunInfo) -> Text:
    """``request run NAME (ID) · URL``: the Prefect run that holds the request's process runs."""
    link = f" · {run.url}" if run.url else ""
    return literal(f"request run {run.name} ({run.id}){link}", style="dim", lines=False)


def started_line(event: Started) -> Text:
    """``⇢ flow run NAME (ID) on pool P · URL``: a deployment's run exists, its worker will execute it."""
    run = event.run
    where = f" on pool {event.work_pool}" if event.work_pool else ""
    link = f" · {run.url}" if run.url else ""
    return Text.assemble(("⇢ ", "bold blue"), printable(f"flow run {run.name} ({run.id}){where}{link}", lines=False))


def usage_line(event: Usage) -> str:
    """``tokens: 150 (120 prompt + 30 completion) in 2 LLM requests · cost 0.000036``; no cost when a
    model of the request has no price in llm.prices."""
    cost = "" if event.cost is None else f" · cost {plain(event.cost)}"
    return (
        f"tokens: {event.total_tokens} ({event.prompt_tokens} prompt + {event.completion_tokens} completion) "
        f"in {event.requests} LLM request{'s' if event.requests != 1 else ''}{cost}"
    )


def log_line(event: Log, redact: Redact) -> Text:
    """``12:00:01 INFO     run-name │ message``"""
    stamp = time.strftime("%H:%M:%S", time.localtime(event.time))
    style = LEVEL_STYLES.get(event.level, "")
    level, run = (f"{event.level:<8}", style), (printable(f"{event.run_name} │ ", lines=False), "magenta")
    return Text.assemble((stamp, "dim"), " ", level, run, printable(redact(event.message)))


def result_panel(event: Result, redact: Redact) -> Panel:
    """The result in a panel titled with the process and its Prefect run."""
    run = event.run
    title = f"{event.process} · {run.kind} run {run.name or run.id or '?'} · {run.state}"
    value = json.loads(redact(json.dumps(event.value)))
    body: Any = _table(value) if isinstance(value, dict) else Pretty(value)
    if event.note and value is None:
        body = literal(redact(event.note))
    subtitle = literal(run.url, lines=False) if run.url else None
    return Panel(
        body,
        title=literal(title, lines=False),
        title_align="left",
        subtitle=subtitle,
        subtitle_align="left",
        border_style="green",
    )


def call_error_panel(call: CallRecord | None, event: Failed, redact: Redact) -> Panel:
    """A call's failure in a panel titled as its result would be: the model is told and the request goes on."""
    run = event.run
    where = f" · {run.kind} run {run.name or run.id or '?'} · {run.state}" if run else " · failed"
    subtitle = literal(run.url, lines=False) if run and run.url else None
    return Panel(
        literal(redact(event.message)),
        title=literal((call.route if call else "call") + where, lines=False),
        title_align="left",
        subtitle=subtitle,
        subtitle_align="left",
        border_style="red",
    )


def _table(value: dict[str, Any]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for key, item in value.items():
        if item is not None:
            table.add_row(literal(str(key)), value_cell(item))
    return table


def value_cell(item: Any) -> RenderableType:
    """A value in a result's table: text as typed, a flat mapping on one line, anything else by ``Pretty``."""
    if isinstance(item, str):
        return literal(item)
    if isinstance(item, dict) and all(isinstance(v, str | int | float) for v in item.values()):
        return literal(", ".join(f"{k} {v}" for k, v in item.items()))
    return Pretty(item)  # strings inside are shown as their repr: escaped, never markup


def renderer(
    out: Console,
    err: Console,
    redact: Redact,
    *,
    json: bool,
    label: str,
    debug: bool = False,
    verbose: bool = False,
    conversation: str | None = None,
) -> RichRenderer | JsonRenderer:
    """The renderer of an event stream: one JSON document titled ``label`` with ``json`` (naming the
    request's ``conversation``, if any), else rich."""
    if json:
        return JsonRenderer(out, label, redact, err, conversation)
    return RichRenderer(out, err, redact, debug, verbose)


class JsonRenderer:
    """Collects the events into an ``AskOutput`` and prints its document at the end, and nothing else on stdout."""

    def __init__(
        self, out: Console, request: str, redact: Redact, err: Console | None = None, conversation: str | None = None
    ) -> None:
        self.out, self._redact, self.err = out, redact, err
        self.view = AskOutput(request=request, conversation=conversation)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Nothing to pause: this renderer draws nothing until the end."""
        yield

    def render(self, events: Iterable[Event]) -> int:
        """Consume every event, print the document, return the exit code."""
        code, following = EXIT_OK, Following()
        try:
            with following.told(self._note):
                for event in events:
                    following.see(event)
                    code = self._one(event) or code
        except AgentctlError as exc:
            self.view.error = ErrorInfo(message=str(exc), type=type(exc).__name__, exit_code=exc.exit_code)
            raise
        finally:
            # Plain text, not through rich: a console would wrap long strings and break the JSON.
            print(self._redact(json.dumps(self.view.document(), indent=2)), file=self.out.file, flush=True)
        return code

    def _one(self, event: Event) -> int | None:
        return self.view.add(event)

    def _note(self, line: str) -> None:
        # stdout carries the document alone: the line goes to stderr.
        if self.err is not None:
            self.err.print(literal(self._redact(line)))
