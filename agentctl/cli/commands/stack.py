"""``agentctl up``, ``down`` and ``status``: a local stack that stays up between calls."""

from __future__ import annotations

from typing import Annotated

import typer

from agentctl.cli.commands.common import consoles, settings

JSON_HELP = "Print one JSON document instead of rich output."
POSTGRES_HELP = "Prefect on PostgreSQL (database.url, else a server of the system's installation)."


def up(
    ctx: typer.Context,
    postgres: Annotated[bool, typer.Option("--postgres", help=POSTGRES_HELP)] = False,
) -> None:
    """Start a Ray head, a Prefect server with its UI and named router actors, in the background.

    Pieces that are configured (RAY_ADDRESS, PREFECT_API_URL, database.url) are used, not started.
    Later ask, repl and processes run calls use the stack. A second up starts nothing, only router
    actors that died. Everything listens on 127.0.0.1; the state is in <data_dir>/stack.json.
    """
    from agentctl.output.stack import describe
    from agentctl.output.untrusted import literal
    from agentctl.stack.lifecycle import up as start
    from agentctl.stack.worker_env import secrets_of

    config = settings(ctx)
    out, err = consoles()
    with err.status("Starting the stack…"):
        stack, already = start(
            config,
            secrets_of(config),
            postgres,
            lambda: err.print("waiting for another agentctl up or down to finish…"),  # a line: seen off a terminal too
        )
    out.print("already up" if already else "up", style="bold green")
    out.print(literal(describe(stack.state)), highlight=False)  # paths and URLs of the user's: never markup


def down(ctx: typer.Context) -> None:
    """Stop what agentctl up started, and nothing else (configured Ray or Prefect stay up)."""
    from agentctl.output.untrusted import literal
    from agentctl.stack.lifecycle import down as stop

    out, err = consoles()
    stopped = stop(settings(ctx), lambda: err.print("waiting for another agentctl up or down to finish…"))
    out.print(
        literal("\n".join(f"stopped {piece}" for piece in stopped) if stopped else "nothing was up"), highlight=False
    )


def status(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> int:
    """Show what agentctl up runs: addresses, health, actors alive and busy, versions.

    Exits 0 when everything is up, 1 when no stack is up or a piece of it died.
    """
    from agentctl.calls.gateway.warm import status as read
    from agentctl.output.emit import emit

    view = read(settings(ctx))
    emit(view, json=json_output, out=consoles(ctx)[0])
    return 0 if view.up else 1
