"""Terminal output: the event stream as rich text, or as one JSON document for scripts.

Renderers know nothing of where events come from; each returns the exit code the events imply.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.pretty import Pretty
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from agentctl.errors import EXIT_OK, AgentctlError
from agentctl.events import ChatReply, Event, Failed, Log, Result, Routed, Usage
from agentctl.registry import Process

LEVEL_STYLES = {"DEBUG": "dim", "INFO": "cyan", "WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red"}
REPLY_STYLE: dict[str, Any] = {"title": "reply", "title_align": "left", "border_style": "blue"}
Redact = Callable[[str], str]


class RichRenderer:
    """Streams events as they arrive: route line, one line per log, a panel for the result."""

    def __init__(self, out: Console, err: Console, redact: Redact, debug: bool = False, verbose: bool = False) -> None:
        self.out, self.err, self._redact, self._debug, self._verbose = out, err, redact, debug, verbose

    def render(self, events: Iterable[Event]) -> int:
        """Print every event; return the exit code."""
        code = EXIT_OK
        with self.err.status("Asking the LLM…", spinner="dots") as status:
            for event in events:
                code = self._one(event, status) or code
        return code

    def _one(self, event: Event, status: Any) -> int | None:
        if isinstance(event, Routed):
            status.update(f"Running {event.process}…")
            self.out.print(route_line(event, self._redact))
            if event.reason:
                self.out.print(Text(f"  reason: {self._redact(event.reason)}", style="dim"))
            if event.policy is not None:
                self.out.print(policy_text(event.policy))
        elif isinstance(event, Log):
            self.out.print(log_line(event, self._redact))
        elif isinstance(event, Result):
            self.out.print(result_panel(event, self._redact))
        elif isinstance(event, ChatReply):
            self.out.print(Panel(Text(self._redact(event.text)), **REPLY_STYLE))
        elif isinstance(event, Usage):
            if self._verbose:
                self.err.print(Text(usage_line(event), style="dim"))
        elif isinstance(event, Failed):
            self.err.print(Text(f"error: {self._redact(event.message)}", style="bold red"))
            if event.run and event.run.url:
                self.err.print(Text(f"run: {event.run.url}", style="dim"))
            if self._debug and event.detail:
                self.err.print(Text(self._redact(event.detail), style="dim"))
            return event.exit_code
        return None


def route_line(event: Routed, redact: Redact) -> Text:
    """``→ process(arg=value, …)``"""
    args = redact(", ".join(f"{k}={v!r}" for k, v in event.arguments.items()))
    kind = f"  [{event.process_kind}]"
    return Text.assemble(("→ ", "bold green"), (event.process, "bold"), (f"({args})", "green"), (kind, "dim"))


def policy_text(policy: dict[str, Any]) -> Text:
    """The retry policy a dry run reports, and that nothing ran."""
    prefect, budget = policy["prefect"], policy["llm"]
    lines = [
        f"  prefect: retries={prefect['retries']}, retry_delay_seconds={prefect['retry_delay_seconds']}, "
        f"timeout_seconds={prefect['timeout_seconds']}",
        f"  llm: timeout={budget['timeout']:g}s, max_retries={budget['max_retries']}, "
        f"repair_attempts={budget['repair_attempts']} "
        f"(at most {policy['worst_case_routing_requests']} routing requests)",
    ]
    if policy.get("note"):
        lines.append(f"  note: {policy['note']}")
    lines.append("dry run: nothing ran")
    return Text("\n".join(lines), style="dim")


def usage_line(event: Usage) -> str:
    """``tokens: 150 (120 prompt + 30 completion) in 2 LLM requests``"""
    return (f"tokens: {event.total_tokens} ({event.prompt_tokens} prompt + {event.completion_tokens} completion) "
            f"in {event.requests} LLM request{'s' if event.requests != 1 else ''}")


def log_line(event: Log, redact: Redact) -> Text:
    """``12:00:01 INFO     run-name │ message``"""
    stamp = time.strftime("%H:%M:%S", time.localtime(event.time))
    style = LEVEL_STYLES.get(event.level, "")
    level, run = (f"{event.level:<8}", style), (f"{event.run_name} │ ", "magenta")
    return Text.assemble((stamp, "dim"), " ", level, run, redact(event.message))


def result_panel(event: Result, redact: Redact) -> Panel:
    """The result in a panel titled with the process and its Prefect run."""
    run = event.run
    title = f"{event.process} · {run.kind} run {run.name or run.id or '?'} · {run.state}"
    value = json.loads(redact(json.dumps(event.value)))
    body: Any = _table(value) if isinstance(value, dict) else Pretty(value)
    return Panel(body, title=title, title_align="left", subtitle=run.url, subtitle_align="left", border_style="green")


def _table(value: dict[str, Any]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for key, item in value.items():
        if item is not None:
            table.add_row(str(key), _cell(item))
    return table


def _cell(item: Any) -> Any:
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and all(isinstance(v, str | int | float) for v in item.values()):
        return ", ".join(f"{k} {v}" for k, v in item.items())
    return Pretty(item)


class JsonRenderer:
    """Collects the events and prints one JSON document at the end, and nothing else on stdout."""

    def __init__(self, out: Console, request: str, redact: Redact) -> None:
        self.out, self._redact = out, redact
        self.doc: dict[str, Any] = {
            "request": request, "route": None, "arguments": None, "reason": None, "chat": None, "result": None,
            "run": None, "logs": [], "usage": None, "error": None,
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
            self.out.print_json(self._redact(json.dumps(self.doc)), highlight=False)
        return code

    def _one(self, event: Event) -> int | None:
        doc = self.doc
        if isinstance(event, Routed):
            doc["route"], doc["arguments"], doc["reason"] = event.process, event.arguments, event.reason
            if event.policy is not None:
                doc["policy"], doc["dry_run"] = event.policy, True
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


def processes_table(processes: Iterable[Process]) -> Table:
    """The registry as a table: name, kind, description, parameters with types."""
    table = Table(title="processes", title_justify="left", expand=False)
    for column in ("name", "kind", "description", "parameters"):
        table.add_column(column, overflow="fold")
    for p in processes:
        params = "\n".join(f"{n}: {t}" + ("" if req else " (optional)") for n, t, req in p.parameters())
        table.add_row(Text(p.name, style="bold"), p.kind, p.description, params)
    return table


def processes_json(processes: Iterable[Process]) -> list[dict[str, Any]]:
    """The registry as JSON: name, kind, description, entrypoint, JSON schema."""
    return [
        {"name": p.name, "kind": p.kind, "description": p.description, "entrypoint": p.entrypoint, "schema": p.schema()}
        for p in processes
    ]


def process_json(process: Process) -> dict[str, Any]:
    """One process in full, as JSON."""
    return {
        "name": process.name, "kind": process.kind, "description": process.description,
        "entrypoint": process.entrypoint, "source": process.source(), "options": process.options,
        "tags": list(process.tags), "parameters": parameter_rows(process), "schema": process.schema(),
    }


def parameter_rows(process: Process) -> list[dict[str, Any]]:
    """Each parameter: name, type, required, default, description."""
    properties = process.schema().get("properties", {})
    rows = []
    for name, type_label, required in process.parameters():
        prop = properties[name]
        rows.append({"name": name, "type": type_label, "required": required,
                     "default": prop.get("default"), "description": prop.get("description", "")})
    return rows


def process_view(process: Process) -> Group:
    """One process for the terminal: a summary, the parameters and the JSON schema."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    for label, value in (("kind", process.kind), ("description", process.description),
                         ("entrypoint", process.entrypoint), ("source", process.source() or "unknown"),
                         ("options", _cell(process.options) if process.options else "-"),
                         ("tags", ", ".join(process.tags) or "-")):
        head.add_row(label, value)
    params = Table("parameter", "type", "required", "default", "description", title="parameters", title_justify="left")
    for row in parameter_rows(process):
        default = "" if row["required"] else json.dumps(row["default"])
        params.add_row(row["name"], row["type"], "yes" if row["required"] else "no", default, row["description"])
    schema = Syntax(json.dumps(process.schema(), indent=2), "json", theme="ansi_dark", word_wrap=True)
    return Group(Panel(head, title=process.name, title_align="left"), params, schema)


def eval_view(report: dict[str, dict[str, Any]]) -> Group:
    """Per-model routing figures, then the failing cases."""
    table = Table("model", "cases", "accuracy", "argument accuracy", "errors", "p50 s", "p90 s", "p99 s", "tokens",
                  title="routing evaluation", title_justify="left")
    failures = Table("model", "prompt", "expected", "got", title="failing cases", title_justify="left")
    for model, r in report.items():
        args = "-" if r["argument_accuracy"] is None else f"{r['argument_accuracy']:.0%}"
        lat = r["latency"]
        table.add_row(model, str(r["cases"]), f"{r['accuracy']:.0%}", args, str(r["errors"]), f"{lat['p50']:.2f}",
                      f"{lat['p90']:.2f}", f"{lat['p99']:.2f}", str(r["tokens"]["total_tokens"]))
        for f in r["failures"]:
            got = f["error"] or f"{f['got']['process']} {json.dumps(f['got']['arguments'])}"
            expected = f"{f['expected']['process']} {json.dumps(f['expected']['arguments'] or {})}"
            failures.add_row(model, f["prompt"], expected, got)
    return Group(table, failures) if failures.row_count else Group(table, Text("no failing cases", style="green"))


def status_view(report: dict[str, Any]) -> Group:
    """``agentctl status`` as a table of pieces, then what to do about dead ones."""
    table = Table("piece", "state", "where", title="agentctl stack", title_justify="left")
    if "ray" not in report:
        if report.get("unready"):
            fix = "wait for it" if report["starting"] else "agentctl up starts it afresh"
            table.add_row("stack", Text("not ready", style="red"), f"{report['unready']}: {fix}")
        else:
            table.add_row("stack", Text("down", style="red"), "start one with agentctl up")
        return Group(table, Text(_versions(report), style="dim"))
    dead = set(report["dead"])
    ray, prefect = report["ray"], report["prefect"]
    origin = "started by up" if ray["started_by_up"] else "configured"
    table.add_row("Ray", _state("Ray head" not in dead, f"up ({origin})"), ray["address"])
    table.add_row("Prefect API", _state(prefect["healthy"], "healthy", "not answering"), prefect["api_url"])
    table.add_row("Prefect UI", "", prefect["ui_url"] or "none (configured API)")
    table.add_row("database", _state("PostgreSQL" not in dead, "up"), prefect["database"])
    for actor in report["actors"]:
        where = f"router actor, pid {actor['pid']}" if actor["alive"] else "router actor"
        table.add_row(actor["name"], _state(actor["alive"], f"alive, {actor['busy']} busy"), where)
    parts: list[Any] = [table, Text(_versions(report), style="dim")]
    if dead:
        hint = f"dead: {', '.join(sorted(dead))}. agentctl up restarts dead actors; agentctl down cleans up the rest"
        parts.append(Text(hint, style="bold red"))
    return Group(*parts)


def _state(ok: bool, good: str, bad: str = "dead") -> Text:
    return Text(good, style="green") if ok else Text(bad, style="red")


def _versions(report: dict[str, Any]) -> str:
    return "versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items())


def runs_table(rows: list[dict[str, Any]], api_url: str) -> Table:
    """``agentctl runs``: one row per run, newest first; the id is never cut, to copy it."""
    table = Table(title=f"runs · {api_url}", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("id", no_wrap=True, min_width=36)
    for column, width in (("started", 11), ("state", 9), ("duration", 8), ("process", 8), ("run", 8)):
        table.add_column(column, no_wrap=True, overflow="ellipsis", min_width=width)
    for row in rows:
        started = (row["started"] or "")[5:16].replace("T", " ")
        duration = f"{row['duration']:.2f}s" if row["duration"] is not None else ""
        table.add_row(row["id"], started, _run_state(row["state"]), duration, row["process"] or "",
                      f"{row['name']} ({row['kind']})")
    if not rows:
        table.caption = "no runs yet: agentctl ask starts one"
    return table


def _run_state(state: str | None) -> Text:
    styles = {"Completed": "green", "Failed": "red", "Crashed": "red", "Cancelled": "yellow", "Running": "cyan"}
    return Text(state or "?", style=styles.get(state or "", ""))


def run_view(detail: dict[str, Any], redact: Redact) -> Group:
    """``agentctl runs show``: the run, its parameters and result, state history and logs."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column(overflow="fold")
    for label, key in (("id", "id"), ("process", "process"), ("started", "started"), ("UI", "url"),
                       ("message", "message")):
        if detail.get(key):
            head.add_row(label, redact(str(detail[key])))
    duration = detail["duration"]
    head.add_row("duration", f"{duration:.2f} s" if duration is not None else "")
    head.add_row("parameters", _json_cell(detail["parameters"], redact, "not recorded for task runs"))
    head.add_row("result", _json_cell(detail["result"], redact, "none recorded"))
    title = f"{detail['name']} · {detail['kind']} run · {detail['state']}"
    states = Table("time", "state", "message", title="state history", title_justify="left")
    for state in detail["states"]:
        states.add_row(state["time"][:23].replace("T", " "), _run_state(state["state"]), state["message"] or "")
    logs = Table("time", "level", "message", title="logs", title_justify="left")
    for log in detail["logs"]:
        logs.add_row(log["time"][11:23], log["level"], Text(redact(log["message"])))
    return Group(Panel(head, title=title, title_align="left"), states, logs)


def _json_cell(value: Any, redact: Redact, missing: str) -> Any:
    return Text(missing, style="dim") if value is None else Pretty(json.loads(redact(json.dumps(value))))
