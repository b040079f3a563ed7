"""``agentctl processes``: list, show and run the registered processes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from agentctl.cli.commands.common import consoles, redactor, settings, state
from agentctl.output.emit import emit
from agentctl.output.untrusted import literal

if TYPE_CHECKING:
    from agentctl.processes.registry import Process, Registry

app = typer.Typer(help="List, inspect and run the registered processes.", no_args_is_help=True)
JSON_HELP = "Print JSON instead of rich output."
PARAM_HELP = "A parameter as NAME=VALUE, parsed against its type (repeatable)."
DETACH_HELP = "For a deployment: print its flow run's id and link once it exists, and leave it to its worker."


@app.command("list")
def list_processes(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """List the processes the LLM can route to, with their parameters. Starts no cluster."""
    from agentctl.output.views import processes_output

    emit(processes_output(_registry(ctx)), json=json_output, out=consoles(ctx)[0])


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The process to show.")],
    json_output: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Show one process: description, parameters, JSON schema and where it is defined."""
    from agentctl.output.views import process_output

    emit(process_output(_lookup(ctx, name)), json=json_output, out=consoles(ctx)[0])


@app.command("run")
def run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The process to run.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help=PARAM_HELP)] = None,
    params_json: Annotated[str | None, typer.Option("--params-json", help="All parameters as one JSON object.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document, nothing else.")] = False,
    standalone: Annotated[bool, typer.Option("--standalone", help="Ignore a running agentctl up stack.")] = False,
    detach: Annotated[bool, typer.Option("--detach", help=DETACH_HELP)] = False,
) -> int:
    """Run a process by hand, without the LLM: the same pool, Prefect run and streaming as ask.

    Example:

    `agentctl processes run github_repo_info --param repo=PrefectHQ/prefect`
    """
    from agentctl.calls.session import run_once
    from agentctl.output.stream import renderer
    from agentctl.processes.deployment_source import check_detachable
    from agentctl.processes.params import parse

    process = _lookup(ctx, name)
    if detach:
        check_detachable(process)  # before any cluster starts
    arguments = parse(process, param or [], params_json)
    config = settings(ctx)
    call = state(ctx)
    show = renderer(
        call.out, call.err, redactor(config), json=json_output, label=f"processes run {name}", debug=call.debug
    )
    return show.render(run_once(config, process.name, arguments, standalone, detach))


def _registry(ctx: typer.Context) -> Registry:
    from agentctl.processes.discovery import discover

    found = discover(settings(ctx))
    _, err = consoles(ctx)
    for problem in found.problems:
        err.print(Text.assemble(("warning: ", "yellow"), literal(problem)), highlight=False)
    return found.registry


def _lookup(ctx: typer.Context, name: str) -> Process:
    from agentctl.errors import UsageError

    registry = _registry(ctx)
    process = registry.get(name)
    if process is None:
        known = ", ".join(p.name for p in registry)
        raise UsageError(f"no process named {name!r}; the processes are: {known} (agentctl processes list)")
    return process
