"""The command line: wires the commands, turns errors into one line and an exit code.

Exit codes: 0 success; 1 a run, the LLM or the stack failed; 2 a usage or configuration error
(bad flag or value, missing API key, an LLM answer that could not be made valid); 130 Ctrl-C.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from agentctl import __version__
from agentctl.commands import ask, evaluate, processes, repl, runs, stack
from agentctl.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, AgentctlError

app = typer.Typer(
    name="agentctl",
    help="Route plain-language requests to typed Prefect processes, run on a Ray pool.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("ask")(ask.ask)
app.add_typer(processes.app, name="processes")
app.command("eval")(evaluate.evaluate)
app.command("repl")(repl.repl)
app.command("up")(stack.up)
app.command("down")(stack.down)
app.command("status")(stack.status)
app.add_typer(runs.app, name="runs")


def _version(value: bool) -> None:
    if value:
        print(f"agentctl {__version__}")
        raise typer.Exit()


VERSION_HELP = "Print the version and exit."
CONFIG_HELP = "Config file (default: AGENTCTL_CONFIG, else $XDG_CONFIG_HOME/agentctl/config.toml)."


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", help=CONFIG_HELP)] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and error details.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help=VERSION_HELP)] = False,
) -> None:
    """agentctl: an LLM front door to your Prefect flows."""
    ctx.obj = {"config": config, "debug": debug}


def main() -> None:
    """Entry point: run the app, print errors as one line, exit without waiting on stragglers."""
    # What agentctl and its children (Prefect's server, Ray, PostgreSQL) create is the user's alone.
    os.umask(0o077)
    code = _run()
    sys.stdout.flush()
    sys.stderr.flush()
    # A normal interpreter exit waits on Ray's and Prefect's background threads; nothing is left to do.
    os._exit(code)


def _run() -> int:
    import click

    debug = "--debug" in sys.argv
    try:
        result = app(standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except (KeyboardInterrupt, click.exceptions.Abort):
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except AgentctlError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"error: {_redacted(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        if debug:
            raise
        message = f"internal error: {type(exc).__name__}: {_redacted(str(exc))} (run with --debug for details)"
        print(f"error: {message}", file=sys.stderr)
        return EXIT_FAILED


def _redacted(text: str) -> str:
    from agentctl.errors import redact

    # The settings may be what failed to load, so hide every variable that looks like a secret.
    secrets = [v for k, v in os.environ.items() if k.endswith(("_API_KEY", "_TOKEN", "_SECRET")) and v]
    return redact(text, secrets)
