"""``agentctl processes``: the registered processes."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from agentctl.commands.common import consoles

app = typer.Typer(help="List and inspect the registered processes.", no_args_is_help=True)


@app.command("list")
def list_processes(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the processes the LLM can route to, with their parameters. Starts no cluster."""
    from agentctl.processes import builtin_registry
    from agentctl.render import processes_json, processes_table

    registry = builtin_registry()
    out, _ = consoles()
    if json_output:
        print(json.dumps(processes_json(registry), indent=2))
    else:
        out.print(processes_table(registry))
