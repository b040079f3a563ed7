"""The rich rendering of the commands' views (processes, eval, runs), and the views built from processes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.panel import Panel
from rich.pretty import Pretty
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from agentctl.config import Settings
from agentctl.output.emit import Redact
from agentctl.output.stream import value_cell
from agentctl.output.tables import Column, FittedTable
from agentctl.output.untrusted import cells, literal
from agentctl.processes.approval import needs_approval
from agentctl.processes.registry import Process
from agentctl.views import (
    CancelOutput,
    EvalOutput,
    ParameterRow,
    ProcessesOutput,
    ProcessOutput,
    ProcessSummary,
    RunDetail,
    RunNode,
    RunsOutput,
    StackDown,
    StackUp,
    View,
)

PROCESS_COLUMNS = [
    Column("name"),
    Column("kind"),
    Column("description", wrap=True),
    Column("parameters", wrap=True),
    Column("approval"),
]
APPROVAL = {True: "asks first", False: "-"}


def processes_output(processes: Iterable[Process], settings: Settings) -> ProcessesOutput:
    """The registry as a view: name, kind, whether runs wait for approval (under ``settings``),
    description, entrypoint, JSON schema, parameters."""
    return ProcessesOutput(
        processes=[
            ProcessSummary(
                name=p.name,
                kind=p.kind,
                description=p.description,
                entrypoint=p.entrypoint,
                needs_approval=needs_approval(p, settings),
                schema=p.schema(),
                parameters=parameter_rows(p),
            )
            for p in processes
        ]
    )


def _described(value: Any) -> RenderableType:
    """A value of ``Source.describe()`` in ``processes show``: unknown, none, a list, a mapping, text."""
    if value is None:
        return "unknown"
    if not value:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return value_cell(value) if isinstance(value, dict) else str(value)


def processes_table(view: ProcessesOutput) -> FittedTable:
    """The registry as a table: name, kind, description, parameters with types; names are never cut."""
    table = FittedTable(PROCESS_COLUMNS, title="processes", title_justify="left")
    for p in view.processes:
        params = "\n".join(f"{r.name}: {r.type}" + ("" if r.required else " (optional)") for r in p.parameters)
        table.add_row(literal(p.name, style="bold"), p.kind, p.description, params, APPROVAL[p.needs_approval])
    return table


def process_output(process: Process, settings: Settings) -> ProcessOutput:
    """One process in full, as a view; whether its runs wait for approval under ``settings``."""
    return ProcessOutput(
        name=process.name,
        kind=process.kind,
        description=process.description,
        needs_approval=needs_approval(process, settings),
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
    approval = "asked before each run (--yes approves)" if view.needs_approval else "not needed"
    head_rows = {"kind": view.kind, "description": view.description, "approval": approval, **described}
    for label, value in head_rows.items():
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
        what = row.process or ("request" if row.kind == "request" else None)  # on a narrow terminal, run is dropped
        table.add_row(row.id, started, _run_state(row.state), duration, what, f"{row.name} ({row.kind})")
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
    tree = [run_tree(detail.children)] if detail.children else []
    return Group(Panel(head, title=title, title_align="left"), *tree, states, logs)


def run_tree(children: list[RunNode]) -> Tree:
    """The runs under a run, as a tree: a request's process runs, a flow's task runs and subflows."""
    tree = Tree(Text("runs under it", style="bold"), guide_style="dim")
    _branches(tree, children)
    return tree


def _branches(tree: Tree, nodes: list[RunNode]) -> None:
    for node in nodes:
        _branches(tree.add(_node_line(node)), node.children)


def _node_line(node: RunNode) -> Text:
    """``Completed  github_repo_info · flow run NAME · 0.41s · ID``"""
    duration = f" · {node.duration:.2f}s" if node.duration is not None else ""
    what = f"{node.process} · " if node.process else ""
    line = literal(f"{what}{node.kind} run {node.name}{duration} · ", lines=False)
    return Text.assemble(_run_state(node.state), "  ", line, (node.id, "dim"))


def cancel_line(view: CancelOutput, redact: Redact) -> Text:
    """``agentctl runs cancel``: the one line that says what became of the run, and its page."""
    link = f" · {view.url}" if view.url else ""
    return literal(redact(view.message + link), style="yellow" if view.cancelled else "", lines=False)


def _json_cell(value: Any, redact: Redact, missing: str) -> Any:
    return Text(missing, style="dim") if value is None else Pretty(json.loads(redact(json.dumps(value))))


def renderable(view: View, redact: Redact) -> RenderableType:
    """The rich rendering of a command's view."""
    if isinstance(view, RunDetail):  # before RunRow's views: a detail is a row too
        return run_view(view, redact)
    if isinstance(view, RunsOutput):
        return runs_table(view)
    if isinstance(view, CancelOutput):
        return cancel_line(view, redact)
    if isinstance(view, EvalOutput):
        return eval_view(view)
    if isinstance(view, ProcessesOutput):
        return processes_table(view)
    if isinstance(view, ProcessOutput):
        return process_view(view)
    if isinstance(view, StackDown | StackUp):
        from agentctl.output.stack import status_view

        return status_view(view)
    raise TypeError(f"no rich rendering for {type(view).__name__}")
