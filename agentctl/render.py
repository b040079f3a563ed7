"""Terminal output: the event stream as rich text, or as one JSON document for scripts.

Renderers know nothing of where events come from; each returns the exit code the events imply.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.panel import Panel
from rich.pretty import Pretty
from rich.status import Status
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from agentctl.errors import EXIT_OK, AgentctlError
from agentctl.events import ChatReply, Event, Failed, Log, Result, RetryPolicy, Routed, Usage
from agentctl.output import print_error
from agentctl.registry import Process
from agentctl.tables import Column, FittedTable
from agentctl.untrusted import cells, literal, printable
from agentctl.views import (
    EvalOutput,
    ParameterRow,
    ProcessesOutput,
    ProcessOutput,
    ProcessSummary,
    RunDetail,
    RunsOutput,
    StackDown,
    StackUp,
    View,
)

LEVEL_STYLES = {"DEBUG": "dim", "INFO": "cyan", "WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red"}
REPLY_STYLE: dict[str, Any] = {"title": "reply", "title_align": "left", "border_style": "blue"}
Redact = Callable[[str], str]


class RichRenderer:
    """Streams events as they arrive: route line, one line per log, a panel for the result."""

    def __init__(self, out: Console, err: Console, redact: Redact, debug: bool = False, verbose: bool = False) -> None:
        self.out, self.err, self._redact, self._debug, self._verbose = out, err, redact, debug, verbose
        self._status: Status | None = None

    def render(self, events: Iterable[Event]) -> int:
        """Print every event; return the exit code."""
        code = EXIT_OK
        with self.err.status("Asking the LLM…", spinner="dots") as self._status:
            for event in events:
                code = self._one(event) or code
        return code

    def _show(self, *renderables: RenderableType) -> None:
        """Print on stdout with the spinner out of the way.

        The spinner lives on the stderr console, which does not see what the stdout console writes:
        on a terminal the two would share a line. Stopping it clears its line; it starts again after.
        """
        status = self._status
        if status is not None:
            status.stop()
        for renderable in renderables:
            self.out.print(renderable)
        if status is not None:
            status.start()

    def _one(self, event: Event) -> int | None:
        if isinstance(event, Routed):
            if self._status is not None:
                self._status.update(literal(f"Running {event.process}…", lines=False))
            self._show(*route_view(event, self._redact))
        elif isinstance(event, Log):
            self._show(log_line(event, self._redact))
        elif isinstance(event, Result):
            self._show(result_panel(event, self._redact))
        elif isinstance(event, ChatReply):
            self._show(Panel(literal(self._redact(event.text)), **REPLY_STYLE))
        elif isinstance(event, Usage):
            if self._verbose:
                self.err.print(Text(usage_line(event), style="dim"))
        elif isinstance(event, Failed):
            self._failed(event)
            return event.exit_code
        return None

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


def usage_line(event: Usage) -> str:
    """``tokens: 150 (120 prompt + 30 completion) in 2 LLM requests``"""
    return (
        f"tokens: {event.total_tokens} ({event.prompt_tokens} prompt + {event.completion_tokens} completion) "
        f"in {event.requests} LLM request{'s' if event.requests != 1 else ''}"
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
    subtitle = literal(run.url, lines=False) if run.url else None
    return Panel(
        body,
        title=literal(title, lines=False),
        title_align="left",
        subtitle=subtitle,
        subtitle_align="left",
        border_style="green",
    )


def _table(value: dict[str, Any]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for key, item in value.items():
        if item is not None:
            table.add_row(literal(str(key)), _cell(item))
    return table


def _described(value: Any) -> RenderableType:
    """A value of ``Source.describe()`` in ``processes show``: unknown, none, a list, a mapping, text."""
    if value is None:
        return "unknown"
    if not value:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return _cell(value) if isinstance(value, dict) else str(value)


def _cell(item: Any) -> RenderableType:
    """A value of a result: text as typed, a flat mapping on one line, anything else by ``Pretty``."""
    if isinstance(item, str):
        return literal(item)
    if isinstance(item, dict) and all(isinstance(v, str | int | float) for v in item.values()):
        return literal(", ".join(f"{k} {v}" for k, v in item.items()))
    return Pretty(item)  # strings inside are shown as their repr: escaped, never markup


def renderer(
    out: Console, err: Console, redact: Redact, *, json: bool, label: str, debug: bool = False, verbose: bool = False
) -> RichRenderer | JsonRenderer:
    """The renderer of an event stream: one JSON document titled ``label`` with ``json``, else rich."""
    return JsonRenderer(out, label, redact) if json else RichRenderer(out, err, redact, debug, verbose)


class JsonRenderer:
    """Collects the events and prints one JSON document at the end, and nothing else on stdout."""

    def __init__(self, out: Console, request: str, redact: Redact) -> None:
        self.out, self._redact = out, redact
        self.doc: dict[str, Any] = {
            "request": request,
            "route": None,
            "arguments": None,
            "reason": None,
            "chat": None,
            "result": None,
            "run": None,
            "logs": [],
            "usage": None,
            "error": None,
        }

    def render(self, events: Iterable[Event]) -> int:
        """Consume every event, print the document, return the exit code."""
        code = EXIT_OK
        try:
            for event in events:
                code = self._one(event) or code
        except AgentctlError as exc:
            self.doc["error"] = {"message": str(exc), "type": type(exc).__name__, "exit_code": exc.exit_code}
            raise
        finally:
            # Plain text, not through rich: a console would wrap long strings and break the JSON.
            print(self._redact(json.dumps(self.doc, indent=2)), file=self.out.file, flush=True)
        return code

    def _one(self, event: Event) -> int | None:
        doc = self.doc
        if isinstance(event, Routed):
            doc["route"], doc["arguments"], doc["reason"] = event.process, event.arguments, event.reason
            if event.policy is not None:
                doc["policy"], doc["dry_run"] = event.policy.model_dump(mode="json"), True
        elif isinstance(event, Usage):
            doc["usage"] = event.model_dump(exclude={"kind"})
        elif isinstance(event, Log):
            doc["logs"].append(event.model_dump(exclude={"kind"}))
        elif isinstance(event, Result):
            doc["result"], doc["run"] = event.value, event.run.model_dump()
        elif isinstance(event, ChatReply):
            doc["chat"] = event.text
        elif isinstance(event, Failed):
            doc["error"] = {"message": event.message, "type": event.error, "exit_code": event.exit_code}
            doc["run"] = event.run.model_dump() if event.run else doc["run"]
            return event.exit_code
        return None


PROCESS_COLUMNS = [Column("name"), Column("kind"), Column("description", wrap=True), Column("parameters", wrap=True)]


def processes_output(processes: Iterable[Process]) -> ProcessesOutput:
    """The registry as a view: name, kind, description, entrypoint, JSON schema, parameters."""
    return ProcessesOutput(
        processes=[
            ProcessSummary(
                name=p.name,
                kind=p.kind,
                description=p.description,
                entrypoint=p.entrypoint,
                schema=p.schema(),
                parameters=parameter_rows(p),
            )
            for p in processes
        ]
    )


def processes_table(view: ProcessesOutput) -> FittedTable:
    """The registry as a table: name, kind, description, parameters with types; names are never cut."""
    table = FittedTable(PROCESS_COLUMNS, title="processes", title_justify="left")
    for p in view.processes:
        params = "\n".join(f"{r.name}: {r.type}" + ("" if r.required else " (optional)") for r in p.parameters)
        table.add_row(literal(p.name, style="bold"), p.kind, p.description, params)
    return table


def process_output(process: Process) -> ProcessOutput:
    """One process in full, as a view."""
    return ProcessOutput(
        name=process.name,
        kind=process.kind,
        description=process.description,
        details=process.source.describe(),
        parameters=parameter_rows(process),
        schema=process.schema(),
    )


def parameter_rows(process: Process) -> list[ParameterRow]:
    """Each parameter: name, type, required, default, description."""
    properties = process.schema().get("properties", {})
    return [
        ParameterRow(
            name=name,
            type=type_label,
            required=required,
            default=properties[name].get("default"),
            description=properties[name].get("description", ""),
        )
        for name, type_label, required in process.parameters()
    ]


def process_view(view: ProcessOutput) -> Group:
    """One process for the terminal: a summary, the parameters and the JSON schema."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    described = {name: _described(value) for name, value in view.details.items()}
    for label, value in {"kind": view.kind, "description": view.description, **described}.items():
        head.add_row(*cells(label, value))
    params = Table("parameter", "type", "required", "default", "description", title="parameters", title_justify="left")
    for row in view.parameters:
        default = "" if row.required else json.dumps(row.default)
        required = "yes" if row.required else "no"
        params.add_row(*cells(row.name, row.type, required, default, row.description))
    schema = JsonBlock(view.schema_)
    return Group(Panel(head, title=literal(view.name, lines=False), title_align="left"), params, schema)


EVAL_COLUMNS = [
    Column("model"),
    Column("cases", drop=5, justify="right"),
    Column("accuracy", justify="right"),
    Column("argument accuracy", wrap=True, justify="right"),
    Column("errors", drop=4, justify="right"),
    Column("p50 s", drop=6, justify="right"),
    Column("p90 s", drop=2, justify="right"),
    Column("p99 s", drop=1, justify="right"),
    Column("tokens", drop=3, justify="right"),
]
FAILURE_COLUMNS = [Column("model"), *(Column(header, wrap=True) for header in ("prompt", "expected", "got"))]


class JsonBlock:
    """JSON to read: highlighted and wrapped on a terminal, whole lines (valid JSON to copy) off one."""

    def __init__(self, value: Any) -> None:
        self.text = json.dumps(value, indent=2)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        # Soft wrap (no terminal, see commands.common.consoles) asks for lines unbroken; Syntax would crop them.
        yield Text(self.text) if options.no_wrap else Syntax(self.text, "json", theme="ansi_dark", word_wrap=True)


def eval_view(view: EvalOutput) -> Group:
    """Per-model routing figures, then the failing cases; model names are never cut."""
    table = FittedTable(EVAL_COLUMNS, title="routing evaluation", title_justify="left")
    failures = FittedTable(FAILURE_COLUMNS, title="failing cases", title_justify="left")
    for model, r in view.models.items():
        args = "-" if r.argument_accuracy is None else f"{r.argument_accuracy:.0%}"
        lat = r.latency
        table.add_row(
            model,
            str(r.cases),
            f"{r.accuracy:.0%}",
            args,
            str(r.errors),
            f"{lat.p50:.2f}",
            f"{lat.p90:.2f}",
            f"{lat.p99:.2f}",
            str(r.tokens.total_tokens),
        )
        for f in r.failures:
            got = f.error or f"{f.got.process} {json.dumps(f.got.arguments)}"
            expected = f"{f.expected.process} {json.dumps(f.expected.arguments or {})}"
            failures.add_row(model, f.prompt, expected, got)
    return Group(table, failures) if failures.row_count else Group(table, Text("no failing cases", style="green"))


RUNS_COLUMNS = [
    Column("id"),
    Column("started", drop=3),
    Column("state"),
    Column("duration", drop=2, justify="right"),
    Column("process"),
    Column("run", wrap=True, drop=1),
]


def runs_table(view: RunsOutput) -> FittedTable:
    """``agentctl runs``: one row per run, newest first; the id and the process are never cut."""
    caption = None if view.runs else "no runs yet: agentctl ask starts one"
    table = FittedTable(
        RUNS_COLUMNS,
        title=literal(f"runs · {view.api_url}", lines=False),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        caption=caption,
    )
    for row in view.runs:
        started = (row.started or "")[5:16].replace("T", " ")
        duration = f"{row.duration:.2f}s" if row.duration is not None else ""
        table.add_row(row.id, started, _run_state(row.state), duration, row.process, f"{row.name} ({row.kind})")
    return table


def _run_state(state: str | None) -> Text:
    styles = {"Completed": "green", "Failed": "red", "Crashed": "red", "Cancelled": "yellow", "Running": "cyan"}
    return literal(state or "?", style=styles.get(state or "", ""), lines=False)


def run_view(detail: RunDetail, redact: Redact) -> Group:
    """``agentctl runs show``: the run, its parameters and result, state history and logs."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column(overflow="fold")
    for label, value in (
        ("id", detail.id),
        ("process", detail.process),
        ("started", detail.started),
        ("UI", detail.url),
        ("message", detail.message),
    ):
        if value:
            head.add_row(*cells(label, redact(value)))
    duration = detail.duration
    head.add_row(*cells("duration", f"{duration:.2f} s" if duration is not None else ""))
    head.add_row("parameters", _json_cell(detail.parameters, redact, "not recorded for task runs"))
    head.add_row("result", _json_cell(detail.result, redact, "none recorded"))
    title = literal(f"{detail.name} · {detail.kind} run · {detail.state}", lines=False)
    states = Table("time", "state", "message", title="state history", title_justify="left")
    for state in detail.states:
        message = redact(state.message or "")
        states.add_row(*cells(state.time[:23].replace("T", " "), _run_state(state.state), message))
    logs = Table("time", "level", "message", title="logs", title_justify="left")
    for log in detail.logs:
        logs.add_row(*cells(log.time[11:23], log.level, redact(log.message)))
    return Group(Panel(head, title=title, title_align="left"), states, logs)


def _json_cell(value: Any, redact: Redact, missing: str) -> Any:
    return Text(missing, style="dim") if value is None else Pretty(json.loads(redact(json.dumps(value))))


def renderable(view: View, redact: Redact) -> RenderableType:
    """The rich rendering of a command's view."""
    if isinstance(view, RunDetail):  # before RunRow's views: a detail is a row too
        return run_view(view, redact)
    if isinstance(view, RunsOutput):
        return runs_table(view)
    if isinstance(view, EvalOutput):
        return eval_view(view)
    if isinstance(view, ProcessesOutput):
        return processes_table(view)
    if isinstance(view, ProcessOutput):
        return process_view(view)
    if isinstance(view, StackDown | StackUp):
        from agentctl.render_stack import status_view

        return status_view(view)
    raise TypeError(f"no rich rendering for {type(view).__name__}")
