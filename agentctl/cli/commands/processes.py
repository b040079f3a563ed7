"""``agentctl processes``: list, show and run the registered processes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from agentctl.cli.commands.batch import Concurrency, Out, Resume, run_batch_command
from agentctl.cli.commands.common import consoles, redactor, settings, state
from agentctl.errors import UsageError
from agentctl.output.emit import emit
from agentctl.output.untrusted import literal

if TYPE_CHECKING:
    from agentctl.processes.deployments import Listing
    from agentctl.processes.registry import Process, Registry

app = typer.Typer(help="List, inspect and run the registered processes.", no_args_is_help=True)
JSON_HELP = "Print JSON instead of rich output."
PARAM_HELP = "A parameter as NAME=VALUE, parsed against its type (repeatable)."
DETACH_HELP = "For a deployment: print its flow run's id and link once it exists, and leave it to its worker."
BATCH_HELP = "Run once per line of this JSON Lines file (an object of arguments a line, id optional); - for stdin."


@app.command("list")
def list_processes(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """List the processes the LLM can route to, with their parameters and whether each run is
    approved first. Starts no cluster."""
    from agentctl.output.views import processes_output

    emit(processes_output(_registry(ctx), settings(ctx)), json=json_output, out=consoles(ctx)[0])


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The process to show.")],
    json_output: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Show one process: description, whether runs are approved first, parameters, JSON schema and
    where it is defined."""
    from agentctl.output.views import process_output

    emit(process_output(_lookup(ctx, name), settings(ctx)), json=json_output, out=consoles(ctx)[0])


@app.command("run")
def run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The process to run.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help=PARAM_HELP)] = None,
    params_json: Annotated[str | None, typer.Option("--params-json", help="All parameters as one JSON object.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document, nothing else.")] = False,
    standalone: Annotated[bool, typer.Option("--standalone", help="Ignore a running agentctl up stack.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Approve the run if the process asks first.")] = False,
    detach: Annotated[bool, typer.Option("--detach", help=DETACH_HELP)] = False,
    batch: Annotated[str | None, typer.Option("--batch", help=BATCH_HELP, metavar="FILE")] = None,
    out: Out = None,
    concurrency: Concurrency = None,
    resume: Resume = False,
) -> int:
    """Run a process by hand, without the LLM: the same pool, Prefect run and streaming as ask.

    A process that asks first (confirm) runs after your y, or with --yes; with no terminal to ask,
    it is refused (exit 2). With --batch, one run per line of arguments, as agentctl batch runs
    requests: a JSON record per run as it finishes (the fields of --json plus the line's id).

    Example:

    `agentctl processes run github_repo_info --param repo=PrefectHQ/prefect`
    """
    from agentctl.calls.gateway.warm import run_once
    from agentctl.cli.approve import approval
    from agentctl.output.stream import renderer
    from agentctl.processes.deployment_source import check_detachable
    from agentctl.processes.params import parse

    listing = _listing(ctx)
    process = _lookup(ctx, name, listing)
    if batch is not None:
        if detach:
            raise UsageError("--detach does not go with --batch: a batch follows each run to its record")
        return _run_batch(
            ctx, process.name, listing, batch, out, concurrency, resume, yes, standalone, param, params_json
        )
    if out is not None or concurrency is not None or resume:
        raise UsageError("--out, --concurrency and --resume go with --batch FILE: see agentctl processes run --help")
    if detach:
        check_detachable(process)  # before any cluster starts
    arguments = parse(process, param or [], params_json)
    config = settings(ctx)
    call = state(ctx)
    show = renderer(
        call.out, call.err, redactor(config), json=json_output, label=f"processes run {name}", debug=call.debug
    )
    approved = approval(yes, json_output, call.err, show.paused, redactor(config))
    return show.render(run_once(config, process.name, arguments, standalone, listing, approved, detach=detach))


def _run_batch(
    ctx: typer.Context,
    name: str,
    listing: Listing,
    file: str,
    out: Path | None,
    concurrency: int | None,
    resume: bool,
    yes: bool,
    standalone: bool,
    *given: object,
) -> int:
    """``processes run NAME --batch FILE``: one run per argument set of ``FILE``."""
    from agentctl.calls.batch import Options, run_batch
    from agentctl.calls.batch.reader import argument_sets

    if any(given):
        raise UsageError("--param and --params-json do not go with --batch: each line of FILE is one run's arguments")
    config = settings(ctx)
    options = Options(concurrency, yes=yes, standalone=standalone)
    return run_batch_command(
        ctx, config, file, out, resume, argument_sets, lambda reads: run_batch(config, name, reads, options, listing)
    )


def _listing(ctx: typer.Context) -> Listing:
    from agentctl.calls.catalog import list_for

    return list_for(settings(ctx))


def _registry(ctx: typer.Context, listing: Listing | None = None) -> Registry:
    """The processes and the configured Prefect deployments; each problem is one warning line."""
    from agentctl.calls.catalog import catalog

    found = catalog(settings(ctx), listing if listing is not None else _listing(ctx))
    _, err = consoles(ctx)
    for problem in found.problems:
        err.print(Text.assemble(("warning: ", "yellow"), literal(problem)), highlight=False)
    return found.registry


def _lookup(ctx: typer.Context, name: str, listing: Listing | None = None) -> Process:
    registry = _registry(ctx, listing)
    process = registry.get(name)
    if process is None:
        known = ", ".join(p.name for p in registry)
        raise UsageError(f"no process named {name!r}; the processes are: {known} (agentctl processes list)")
    return process
