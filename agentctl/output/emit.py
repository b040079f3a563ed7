"""The one output path of the commands: a view as rich output or as JSON, and error lines.

``emit`` serves both ``--json`` and the terminal from the same view model; ``print_error`` is the
one place an ``error:`` line is written, by the CLI, the renderers and the REPL alike.
"""

from __future__ import annotations

import json as jsonlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console

from agentctl.output.untrusted import literal, printable

if TYPE_CHECKING:
    from agentctl.views import View

Redact = Callable[[str], str]


def _same(text: str) -> str:
    return text


def emit(view: View, *, json: bool, out: Console, redact: Redact = _same) -> None:
    """Print ``view``: its JSON document (redacted) with ``json``, else its rich rendering."""
    if json:
        # Plain text, not through rich: a console would wrap long strings and break the JSON.
        print(redact(jsonlib.dumps(view.document(), indent=2)), file=out.file, flush=True)
        return
    from agentctl.output.views import renderable

    out.print(renderable(view, redact))


def print_error(message: str, err: Console | None = None) -> None:
    """The one place an error line is printed: ``error: <message>``, control characters escaped.

    With ``err`` (a renderer's or the REPL's console, which may be showing a spinner) it goes
    through that console, in bold red on a terminal; without one, straight to stderr.
    """
    if err is None:
        print(f"error: {printable(message)}", file=sys.stderr)
    else:
        err.print(literal(f"error: {message}", style="bold red"))
