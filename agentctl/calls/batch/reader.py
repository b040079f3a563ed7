"""A batch's input, read as a stream: one item a line, never the whole file in memory.

Requests come as JSON Lines (``{"id": ..., "request": ..., "model": ...}``; ``id`` defaults to the
line number) or as plain text, one request a line (the id is the line number); the first line
that is not blank decides which. Argument sets (``processes run --batch``) are JSON Lines only: an
object of arguments a line, its optional ``id`` taken out. Blank lines are skipped; a line that
does not fit is a ``Malformed`` item, which names its line and is not fatal.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from agentctl.errors import UsageError

ItemId = str | int


@dataclass(frozen=True)
class Item:
    """One unit of work: a request (and its model), or the arguments of one run."""

    id: ItemId
    line: int
    request: str = ""
    model: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Malformed:
    """A line that is not an item: skipped, and reported with its number."""

    line: int
    reason: str

    def message(self, source: str) -> str:
        """The one line that reports it."""
        return f"{source} line {self.line}: {self.reason}; skipped"


Read = Item | Malformed


class Overlong(str):
    """A line longer than its reader takes (the gateway's), as its first characters: malformed, not read."""

    reason = "longer than 1 MB: one item a line"


def requests(lines: Iterable[str]) -> Iterator[Read]:
    """The requests of ``lines``: JSON Lines when the first non-blank line is a JSON object, else text."""
    numbered = _numbered(lines)
    first = next(numbered, None)
    if first is None:
        return
    parse = _json_request if first[1].startswith("{") else _text_request
    yield parse(*first)
    for number, text in numbered:
        yield parse(number, text)


def argument_sets(lines: Iterable[str]) -> Iterator[Read]:
    """The argument sets of ``lines``: one JSON object a line, ``id`` optional."""
    for number, text in _numbered(lines):
        loaded = _object(number, text)
        if isinstance(loaded, Malformed):
            yield loaded
            continue
        item_id = _item_id(loaded.pop("id", number), number)
        yield item_id if isinstance(item_id, Malformed) else Item(item_id, number, arguments=loaded)


def _numbered(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(line number, stripped text) of the lines that are not blank."""
    for number, line in enumerate(lines, 1):
        if isinstance(line, Overlong):
            yield number, line
        elif text := line.strip():
            yield number, text


def _text_request(number: int, text: str) -> Read:
    return Malformed(number, text.reason) if isinstance(text, Overlong) else Item(number, number, request=text)


def _json_request(number: int, text: str) -> Read:
    loaded = _object(number, text)
    if isinstance(loaded, Malformed):
        return loaded
    request, model = loaded.get("request"), loaded.get("model")
    if not isinstance(request, str) or not request.strip():
        return Malformed(number, 'no "request" text')
    if model is not None and not isinstance(model, str):
        return Malformed(number, '"model" is not a string')
    item_id = _item_id(loaded.get("id", number), number)
    return item_id if isinstance(item_id, Malformed) else Item(item_id, number, request=request.strip(), model=model)


def _object(number: int, text: str) -> dict[str, Any] | Malformed:
    if isinstance(text, Overlong):
        return Malformed(number, text.reason)
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        return Malformed(number, f"not JSON ({exc.msg})")
    return loaded if isinstance(loaded, dict) else Malformed(number, "not a JSON object")


def _item_id(given: Any, number: int) -> ItemId | Malformed:
    # An id is a record's key in --out and what --resume matches on: a string or an integer only.
    if isinstance(given, bool) or not isinstance(given, str | int) or given == "":
        return Malformed(number, '"id" is not a non-empty string or an integer')
    return given


@contextlib.contextmanager
def opened(path: str) -> Iterator[TextIO]:
    """The input ``path`` names, ``-`` for stdin, as text read line by line."""
    if path == "-":
        yield sys.stdin
        return
    try:
        handle = Path(path).open(encoding="utf-8", errors="replace")  # noqa: SIM115 (closed below; its error named)
    except OSError as exc:
        raise UsageError(f"cannot read the batch input {path}: {exc.strerror}") from None
    with handle:
        yield handle


def count(path: str) -> int | None:
    """The lines that are not blank in the file ``path`` (None for stdin, or what cannot be read):
    the progress's total. A pass of its own: nothing is kept."""
    if path == "-":
        return None
    try:
        with Path(path).open("rb") as raw:
            return sum(1 for line in raw if line.strip())
    except OSError:
        return None
