"""What the commands share: loading settings from the root options, and the consoles."""

from __future__ import annotations

import os
from typing import Any

import typer
from rich.console import Console

from agentctl.config import Settings, load
from agentctl.errors import redact


def settings(ctx: typer.Context, overrides: dict[str, Any] | None = None) -> Settings:
    """Settings from the root ``--config`` option, the environment and ``overrides`` (flags)."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    loaded = load(ctx.obj.get("config") if ctx.obj else None, given)
    if not loaded.prefect.telemetry:
        # Prefect's client telemetry reads this when Prefect is imported, and a user's process module
        # (discovery) may import it in this process too: off here as in the actors and the server.
        os.environ.setdefault("DO_NOT_TRACK", "1")
    return loaded


def consoles() -> tuple[Console, Console]:
    """stdout and stderr consoles."""
    return _console(stderr=False), _console(stderr=True)


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
