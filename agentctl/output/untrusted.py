"""Foreign text on the terminal: shown as typed, never as markup or terminal control.

Text from GitHub, the LLM, a process's result or logs, Prefect's state messages and the request
itself is data. Rich reads ``[...]`` in a ``str`` as markup (a stray ``[/red]`` raises
``MarkupError``) and passes escape sequences through to the terminal, which runs them (colours,
OSC 8 links, title changes, a cleared screen). Everything foreign that is printed goes through
``literal`` (a rich ``Text``, which rich never parses) or ``printable`` (for plain ``print``).
Nested values are shown by rich's ``Pretty``, which prints strings as their ``repr``: that already
escapes control characters and is not parsed as markup. The model's answer is shown by ``markdown``:
markdown is its format, but it never makes a link whose target is hidden, and whatever the markdown
parser makes of it (an entity such as ``&#x202e;`` becomes the character) is escaped once rendered.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment
from rich.text import Text

if TYPE_CHECKING:
    from rich.markdown import Markdown

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


# What markdown could make something of: markup characters, line breaks, edge spaces, a list's start.
_MARKDOWN = re.compile(r"[\n\r*_`\[\]<>!&\\~|#]|^\s|\s$|^([-+=]|\d+[.)])")


def markdown(text: str) -> RenderableType:
    """``text`` rendered as markdown, never as console markup: a link shows its target, control characters escaped."""
    if not _MARKDOWN.search(text):  # one plain line shows as itself: no parser to import (~20 ms)
        return literal(text)
    from rich.markdown import Markdown  # markdown-it is not worth importing for commands that print no answer

    return _Escaped(Markdown(printable(text), hyperlinks=False))


class _Escaped:
    """A markdown rendering with the control characters its parser decoded shown as escapes."""

    def __init__(self, inner: Markdown) -> None:
        self.inner = inner

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for segment in console.render(self.inner, options):
            yield segment if segment.control else Segment(printable(segment.text), segment.style)
