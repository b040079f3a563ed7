"""Foreign text on the terminal: shown as typed, never as markup or terminal control.

Text from GitHub, the LLM, a process's result or logs, Prefect's state messages and the request
itself is data. Rich reads ``[...]`` in a ``str`` as markup (a stray ``[/red]`` raises
``MarkupError``) and passes escape sequences through to the terminal, which runs them (colours,
OSC 8 links, title changes, a cleared screen). Everything foreign that is printed goes through
``literal`` (a rich ``Text``, which rich never parses) or ``printable`` (for plain ``print``).
Nested values are shown by rich's ``Pretty``, which prints strings as their ``repr``: that already
escapes control characters and is not parsed as markup.
"""

from __future__ import annotations

import re

from rich.console import RenderableType
from rich.text import Text

# C0 controls, DEL, C1 controls (0x9b is a one-byte CSI) and the bidi overrides and isolates that
# make a terminal show text in another order than it is stored.
_CONTROL = "\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_IN_LINES = re.compile(f"[{_CONTROL}]")
_IN_ONE_LINE = re.compile(f"[{_CONTROL}\t\n]")


def printable(text: str, lines: bool = True) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\r``, ``\\u202e``).

    With ``lines`` newlines and tabs are kept, as a multi-line message means them; without, the
    text stays on one line.
    """
    pattern = _IN_LINES if lines else _IN_ONE_LINE
    return pattern.sub(_escape, text)


_SHORT = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def literal(text: str, style: str = "", lines: bool = True) -> Text:
    """``text`` as a rich ``Text``: printed as typed, control characters escaped."""
    return Text(printable(text, lines), style=style)


def cells(*values: RenderableType | None) -> list[RenderableType]:
    """Table cells: strings (and ``None``, as empty) as ``literal`` text, other renderables as they are."""
    return [literal(value or "") if value is None or isinstance(value, str) else value for value in values]
