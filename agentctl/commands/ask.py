"""``agentctl ask``: route one request to a process and run it."""

from __future__ import annotations

from typing import Annotated

import typer

from agentctl.commands.common import consoles, redactor, settings


def ask(
    ctx: typer.Context,
    request: Annotated[list[str], typer.Argument(help="What you want done, in plain language.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document, nothing else.")] = False,
    model: Annotated[str | None, typer.Option("--model", help="LLM model for this call (llm.model).")] = None,
    pool_size: Annotated[int | None, typer.Option("--pool-size", help="Router actors to start (pool.size).")] = None,
) -> int:
    """Ask for something in plain language: the LLM picks a process and its arguments, Ray runs it
    under Prefect, and the run's logs and result stream back.

    Example: agentctl ask "Give me the stars and contributors for PrefectHQ/prefect"
    """
    from agentctl.render import JsonRenderer, RichRenderer
    from agentctl.session import ask_once

    text = " ".join(request).strip()
    if not text:
        raise typer.BadParameter("the request is empty", param_hint="REQUEST")
    config = settings(ctx, {"llm.model": model, "pool.size": pool_size})
    out, err = consoles()
    hide = redactor(config)
    debug = bool(ctx.obj and ctx.obj.get("debug"))
    renderer = JsonRenderer(out, text, hide) if json_output else RichRenderer(out, err, hide, debug)
    return renderer.render(ask_once(config, text))
