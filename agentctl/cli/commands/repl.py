"""``agentctl repl``: an interactive session that keeps Ray, Prefect and the router pool warm."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from agentctl.cli.commands.common import consoles, redactor, settings

YES_HELP = "Approve every run of the session, of processes that ask first too."


def repl(
    ctx: typer.Context,
    standalone: Annotated[bool, typer.Option("--standalone", help="Ignore a running agentctl up stack.")] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Approve every run of the session, asked first or not.")
    ] = False,
) -> int:
    """Start a warm session and take requests one after another (Ctrl-D or /exit to leave).

    The cluster, the Prefect API and the router pool start once, so every request after the first
    costs only the LLM and the process. Slash commands (/help) inspect and run processes, switch to
    dry runs or JSON output, and change the model. The requests form one conversation: each goes
    to the model with the earlier turns (router.history_tokens); /new starts afresh, /history shows
    them, and `agentctl ask -c` continues it later. With stdin not a terminal, each line is a
    request; the exit code is non-zero when any of them failed. A process that asks first
    (confirm) runs after your y, n or always (this process for the rest of the session); piped,
    it is refused unless --yes.
    """
    from agentctl.cli.repl.lines import run

    config = settings(ctx)
    out, err = consoles(ctx)
    return run(config, out, err, redactor(config), sys.stdin, standalone, yes)
