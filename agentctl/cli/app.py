"""The command line: wires the commands, turns errors into one line and an exit code.

Exit codes: 0 success, and for ``--help`` or a bare ``agentctl`` / ``agentctl processes``, which
show the help (as git and prefect do for their help); 1 a run, the LLM or the stack failed; 2 a
usage or configuration error (an unknown option or command, a missing or bad argument or value, a
missing API key, an LLM answer that could not be made valid); 130 Ctrl-C, after one ``interrupted``
line.

Typer runs with its own copy of click (``typer._click``): the app is invoked here below typer's
``main``, so its usage errors, ``Exit`` and ``KeyboardInterrupt`` all reach ``_run`` as they are,
and every error is printed by ``output.print_error``. Help is rendered in typer's markdown mode for the
whole app: paragraphs rewrap, an indented block (an example) stays as it is, ``[`` is literal.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from agentctl import __version__, interrupts
from agentctl.cli.commands import ask, batch, evaluate, mcp, processes, repl, runs, stack
from agentctl.cli.commands.common import CliState
from agentctl.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, AgentctlError
from agentctl.output.emit import print_error

app = typer.Typer(
    name="agentctl",
    help="Route plain-language requests to typed Prefect processes, run on a Ray pool.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
app.command("ask")(ask.ask)
app.command("batch")(batch.batch)
app.add_typer(processes.app, name="processes")
app.command("eval")(evaluate.evaluate)
app.command("repl")(repl.repl)
app.command("up")(stack.up)
app.command("down")(stack.down)
app.command("status")(stack.status)
app.add_typer(runs.app, name="runs")
app.add_typer(mcp.app, name="mcp")


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
    call = ctx.ensure_object(CliState)
    call.config, call.debug = config, debug


def main() -> None:
    """Entry point: run the app, print errors as one line, exit without waiting on stragglers."""
    # What agentctl and its children (Prefect's server, Ray, PostgreSQL) create is the user's alone.
    os.umask(0o077)
    interrupts.install()
    code = _run(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # A normal interpreter exit waits on Ray's and Prefect's background threads; nothing is left to do.
    os._exit(code)


def _run(args: list[str]) -> int:
    call = CliState()
    try:
        return _invoke(args, call)
    except KeyboardInterrupt:
        _print_interrupted()
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (``agentctl ... | head``): say nothing more, as click does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except AgentctlError as exc:
        if call.debug:
            import traceback

            traceback.print_exc()
        print_error(_redacted(str(exc)))
        return exc.exit_code
    except Exception as exc:
        if call.debug:
            raise
        print_error(f"internal error: {type(exc).__name__}: {_redacted(str(exc))} (run with --debug for details)")
        return EXIT_FAILED


def _invoke(args: list[str], call: CliState) -> int:
    """Run the command ``args`` name with ``call`` as its state; typer's and click's own exits become exit codes."""
    from typer._click.exceptions import NoArgsIsHelpError

    command = typer.main.get_command(app)
    _flags_as_flags(command)
    try:
        with command.make_context("agentctl", args, obj=call) as ctx:
            result = command.invoke(ctx)
        return result if isinstance(result, int) else EXIT_OK
    except NoArgsIsHelpError as exc:
        print(exc.format_message(), end="")  # empty when rich already printed the help
        return EXIT_OK
    except typer.Exit as exc:  # --help, --version
        return exc.exit_code
    except typer.Abort:
        _print_interrupted()
        return EXIT_INTERRUPTED
    except typer.TyperException as exc:  # click's usage errors, as typer vendors them
        where = getattr(exc, "ctx", None)
        path = where.command_path if where is not None else _command_path(command, args)
        print_error(f"{_one_line(exc.format_message())}; see {path} --help")
        return EXIT_USAGE


def _one_line(message: str) -> str:
    """click's message on one line, starting lower case like every other error line."""
    message = " ".join(message.split()).rstrip(".")
    return message[:1].lower() + message[1:]


def _command_path(command: Any, args: list[str]) -> str:
    """``agentctl`` and the (sub)commands ``args`` name, for errors click raises without a context."""
    words = ["agentctl"]
    for arg in args:
        sub = getattr(command, "commands", {}).get(arg)
        if sub is None and not arg.startswith("-"):
            break
        if sub is not None:
            words.append(arg)
            command = sub
    return " ".join(words)


def _flags_as_flags(command: Any) -> None:
    """Show on/off options as bare flags in help, with no ``<bool>`` value: they take none."""
    from typer._click import Context
    from typer.core import TyperOption

    help_option = command.get_help_option(Context(command))
    for param in [*command.params, help_option]:
        if isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _flags_as_flags(sub)


def _print_interrupted() -> None:
    # A terminal shows ^C where the cursor was: start the line afresh there only.
    print("\ninterrupted" if sys.stderr.isatty() else "interrupted", file=sys.stderr)


def _redacted(text: str) -> str:
    from agentctl.errors import redact

    # The settings may be what failed to load, so hide every variable that looks like a secret.
    secrets = [v for k, v in os.environ.items() if k.endswith(("_API_KEY", "_TOKEN", "_SECRET")) and v]
    return redact(text, secrets)
