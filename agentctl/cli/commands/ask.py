"""``agentctl ask``: route one request to a process and run it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from agentctl.cli.commands.common import redactor, settings, state

if TYPE_CHECKING:
    from agentctl.calls.approval import Approval
    from agentctl.config import Settings
    from agentctl.events import Event


STANDALONE_HELP = "Start a temporary cluster and Prefect API for this call even when agentctl up is running."
DRY_RUN_HELP = "Show the route, arguments, the model's reason, the retry policy and approval; run nothing."
YES_HELP = "Approve the run of a process that asks first (confirm), without a question."
DETACH_HELP = "For a deployment: print its flow run's id and link once it exists, and leave it to its worker."


def ask(
    ctx: typer.Context,
    request: Annotated[list[str], typer.Argument(help="What you want done, in plain language.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document, nothing else.")] = False,
    model: Annotated[str | None, typer.Option("--model", help="LLM model for this call (llm.model).")] = None,
    pool_size: Annotated[int | None, typer.Option("--pool-size", help="Router actors to start (pool.size).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_RUN_HELP)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show LLM token usage.")] = False,
    standalone: Annotated[bool, typer.Option("--standalone", help=STANDALONE_HELP)] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help=YES_HELP)] = False,
    detach: Annotated[bool, typer.Option("--detach", help=DETACH_HELP)] = False,
) -> int:
    """Ask in plain language; the LLM picks a process, Ray runs it under Prefect, logs stream back.

    The LLM chooses one registered process and its arguments; they are validated, the process runs
    as a Prefect flow or task on the router pool, and its log lines and result are shown as they
    happen. When no process fits, the LLM's answer is shown as a chat reply. A process that asks
    first (confirm) runs after your y, or with --yes; with no terminal to ask, it is refused (exit 2).

    Example:

    `agentctl ask "Give me the stars and contributors for PrefectHQ/prefect"`
    """
    from agentctl.cli.approve import approval
    from agentctl.output.stream import renderer

    text = " ".join(request).strip()
    if not text:
        raise typer.BadParameter("the request is empty", param_hint="REQUEST")
    # --pool-size is a total: it turns a configured pool.per_node off for this call.
    per_node = None if pool_size is None else 0
    config = settings(ctx, {"llm.model": model, "pool.size": pool_size, "pool.per_node": per_node})
    call = state(ctx)
    show = renderer(
        call.out, call.err, redactor(config), json=json_output, label=text, debug=call.debug, verbose=verbose
    )
    approved = approval(yes, json_output, call.err, show.paused, redactor(config))
    return show.render(_events(config, text, dry_run, standalone, approved, detach))


def _events(
    config: Settings, text: str, dry_run: bool, standalone: bool, approved: Approval, detach: bool
) -> Iterator[Event]:
    if dry_run:
        from agentctl.calls.dry_run import dry_run as route_only

        return route_only(config, text)
    from agentctl.calls.session import ask_once

    return ask_once(config, text, standalone, approved, detach=detach)
