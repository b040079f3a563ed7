"""``agentctl mcp``: agentctl as a Model Context Protocol server."""

from __future__ import annotations

from typing import Annotated

import typer

from agentctl.cli.commands.common import consoles, settings
from agentctl.output.untrusted import literal

app = typer.Typer(help="agentctl and the Model Context Protocol.", no_args_is_help=True)
HTTP_HELP = "Serve streamable HTTP on 127.0.0.1 (with a bearer token) instead of stdio."
PORT_HELP = "The --http port (default mcp.serve.port, 8765; 0 picks a free one)."


@app.command("serve")
def serve(
    ctx: typer.Context,
    http: Annotated[bool, typer.Option("--http", help=HTTP_HELP)] = False,
    port: Annotated[int | None, typer.Option("--port", min=0, max=65535, help=PORT_HELP)] = None,
    standalone: Annotated[bool, typer.Option("--standalone", help="Ignore a running agentctl up stack.")] = False,
) -> int:
    """Serve the processes as MCP tools (plus `ask`, a plain-language request) until the client leaves.

    Over stdio by default, as desktop clients launch servers: stdout carries the protocol alone, and
    everything else goes to stderr. With --http, streamable HTTP at http://127.0.0.1:PORT/mcp; every
    request needs `Authorization: Bearer <token>`, the token made at the first --http start, printed
    that once and kept in `<data_dir>/mcp_token`. With the stack of agentctl up running and its gateway
    answering, --http without --port serves nothing more: it names the gateway's MCP endpoint (its /mcp, with the token
    in `<data_dir>/gateway_token`) and exits 0; --standalone serves one of its own anyway. Calls run on
    the stack when it is up, else on a session the server keeps warm, as Prefect runs tagged agentctl
    and mcp. A process that asks first (confirm) asks the client (elicitation); a client that cannot be
    asked gets the call refused, unless the process is in processes.auto_approve.
    """
    from agentctl.calls.mcp.serve import serve as run_server

    if port is not None and not http:
        from agentctl.errors import UsageError

        raise UsageError("--port goes with --http: stdio has no port")
    _, err = consoles(ctx)
    return run_server(settings(ctx), lambda line: err.print(literal(line), highlight=False), http, port, standalone)
