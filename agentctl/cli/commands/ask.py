"""``agentctl ask``: route one request to a process and run it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from agentctl.cli.commands.common import redactor, settings, state
from agentctl.errors import UsageError

if TYPE_CHECKING:
    from agentctl.calls.approval import Approval
    from agentctl.calls.conversations import Conversation, Store
    from agentctl.config import Settings
    from agentctl.events import Event


STANDALONE_HELP = "Start a temporary cluster and Prefect API for this call even when agentctl up is running."
DRY_RUN_HELP = "Show the route, arguments, the model's reason, the retry policy and approval; run nothing."
YES_HELP = "Approve the run of a process that asks first (confirm), without a question."
DETACH_HELP = "For a deployment: print its flow run's id and link once it exists, and leave it to its worker."
CONTINUE_HELP = "Continue the last conversation: the model sees its earlier requests, calls, results and answers."
CONVERSATION_HELP = "Continue the conversation with this id (ask --json shows it as conversation)."


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
    continue_last: Annotated[bool, typer.Option("--continue", "-c", help=CONTINUE_HELP)] = False,
    conversation: Annotated[str | None, typer.Option("--conversation", metavar="ID", help=CONVERSATION_HELP)] = None,
) -> int:
    """Ask in plain language; the LLM picks a process, Ray runs it under Prefect, logs stream back.

    The LLM chooses one registered process and its arguments; they are validated, the process runs
    as a Prefect flow or task on the router pool, and its log lines and result are shown as they
    happen. When no process fits, the LLM's answer is shown as a chat reply. A process that asks
    first (confirm) runs after your y, or with --yes; with no terminal to ask, it is refused (exit 2).

    Each request starts a conversation, kept in the data dir; -c continues the last one and
    --conversation ID a named one: the model then sees the earlier turns (router.history_tokens).

    Example:

    `agentctl ask "Give me the stars and contributors for PrefectHQ/prefect"`

    `agentctl ask -c "and for octo/tiny?"`
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
    store, joined = _conversation(config, dry_run, continue_last, conversation)
    show = renderer(
        call.out,
        call.err,
        redactor(config),
        json=json_output,
        label=text,
        debug=call.debug,
        verbose=verbose,
        conversation=joined.id if joined else None,
    )
    approved = approval(yes, json_output, call.err, show.paused, redactor(config))
    if joined is None:
        return show.render(_dry_run(config, text))
    return show.render(store.recording(joined, _events(config, text, standalone, approved, detach, joined)))


def _conversation(
    config: Settings, dry_run: bool, continue_last: bool, named: str | None
) -> tuple[Store, Conversation | None]:
    """The store and the conversation this request joins (none for a dry run, which runs nothing)."""
    from agentctl.calls.conversations import Store

    if dry_run and (continue_last or named):
        raise UsageError("--dry-run routes one request alone: drop -c/--conversation to see its route")
    store = Store(config.data_dir, redactor(config))
    return store, None if dry_run else store.pick(continue_last, named)


def _dry_run(config: Settings, text: str) -> Iterator[Event]:
    from agentctl.calls.dry_run import dry_run as route_only

    return route_only(config, text)


def _events(
    config: Settings, text: str, standalone: bool, approved: Approval, detach: bool, joined: Conversation
) -> Iterator[Event]:
    from agentctl.calls.gateway.warm import ask_once

    history = joined.window(config.router.history_tokens)
    return ask_once(config, text, standalone, approved, detach=detach, history=history)
