"""What the commands share: the root options' state, settings from them, and the consoles."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from agentctl.errors import redact

if TYPE_CHECKING:  # the settings' models cost ~90 ms to build: --help never loads them
    from agentctl.config import Settings


@dataclass
class CliState:
    """What the root options set for the whole call, kept on the Typer context (``ctx.obj``).

    ``cli`` makes it before the command line is parsed, so that its error handling reads ``debug``
    from here too, whatever failed.
    """

    config: Path | None = None
    debug: bool = False
    out: Console = field(default_factory=lambda: _console(stderr=False))
    err: Console = field(default_factory=lambda: _console(stderr=True))


def state(ctx: typer.Context) -> CliState:
    """The call's state on ``ctx`` (a fresh one when a command runs without the root callback)."""
    return ctx.ensure_object(CliState)


def settings(ctx: typer.Context, overrides: dict[str, Any] | None = None) -> Settings:
    """Settings from the root ``--config`` option, the environment and ``overrides`` (flags)."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    from agentctl.config import load

    loaded = load(state(ctx).config, given)
    if not loaded.prefect.telemetry:
        # Prefect's client telemetry reads this when Prefect is imported, and a user's process module
        # (discovery) may import it in this process too: off here as in the actors and the server.
        os.environ.setdefault("DO_NOT_TRACK", "1")
    return loaded


def consoles(ctx: typer.Context | None = None) -> tuple[Console, Console]:
    """The call's stdout and stderr consoles (new ones without a context)."""
    call = state(ctx) if ctx is not None else CliState()
    return call.out, call.err


def _console(stderr: bool) -> Console:
    console = Console(stderr=stderr)
    # Off a terminal there is no width to fit: rich would break every long line at 80 columns,
    # cutting an error line in two and a JSON string in a schema. Tables still fit COLUMNS (80).
    console.soft_wrap = not console.is_terminal
    return console


def redactor(settings: Settings) -> Any:
    """A function that hides this configuration's secrets in a text."""
    secrets = settings.secret_values()
    return lambda text: redact(text, secrets)
