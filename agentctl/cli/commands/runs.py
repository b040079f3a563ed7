"""``agentctl runs``: the history of agentctl's runs, read from the Prefect API."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from agentctl.cli.commands.common import consoles, redactor, settings
from agentctl.output.emit import emit
from agentctl.output.untrusted import literal

if TYPE_CHECKING:
    from agentctl.calls.gateway.warm import Warn
    from agentctl.config import Settings
    from agentctl.views import View

app = typer.Typer(help="Recent runs from the Prefect API: name, process, state, duration, started.")
JSON_HELP = "Print one JSON document instead of rich output."
STATE_HELP = "Only runs in this state: completed, failed, crashed, cancelled, running, …"


@app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=200, help="How many runs, newest first.")] = 20,
    state: Annotated[str | None, typer.Option("--state", help=STATE_HELP)] = None,
    process: Annotated[str | None, typer.Option("--process", "-p", help="Only runs of this process.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """List recent runs agentctl started, from the stack's Prefect API (or PREFECT_API_URL).

    With no stack up and no PREFECT_API_URL, a temporary server reads the local history.
    `agentctl runs show ID` shows one run.
    """
    if ctx.invoked_subcommand is not None:
        return
    from agentctl.calls.gateway.warm import runs as read
    from agentctl.calls.history import state_type

    config = settings(ctx)
    chosen = state_type(state) if state else None  # a bad --state fails before any server starts
    view = read(config, limit, chosen, process, _warner(ctx))
    emit(view, json=json_output, out=consoles(ctx)[0], redact=redactor(config))


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="ID", help="A flow or task run id, as agentctl runs lists.")],
    json_output: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Show one run: its parameters, result, state history and logs, and its Prefect UI page."""
    from agentctl.calls.gateway.warm import show as read

    _on_one_run(ctx, run_id, json_output, read)


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="ID", help="A flow or task run id, as agentctl runs lists.")],
    json_output: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Cancel a run agentctl started.

    A deployment's flow run goes Cancelling and its worker stops it. A run in a router actor is set
    Cancelled in Prefect; its code is not interrupted (Ctrl-C in the call that follows it stops it).
    A run that has already ended is left as it is: one line says how it ended, exit 0. An id the
    Prefect API does not know: exit 2.
    """
    from agentctl.calls.gateway.warm import cancel as cancel_run

    _on_one_run(ctx, run_id, json_output, cancel_run)


def _on_one_run(ctx: typer.Context, run_id: str, json_output: bool, act: Callable[[Settings, str, Warn], View]) -> None:
    """``act`` on one run (through the stack's gateway, or the run history here), emit its view."""
    config = settings(ctx)
    view = act(config, run_id, _warner(ctx))
    emit(view, json=json_output, out=consoles(ctx)[0], redact=redactor(config))


def _warner(ctx: typer.Context) -> Warn:
    """One warning line on stderr (stdout stays the view's)."""
    err = consoles(ctx)[1]
    return lambda line: err.print(Text.assemble(("warning: ", "yellow"), literal(line)), highlight=False)
