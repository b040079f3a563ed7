"""A conversation's turns on the terminal (the REPL's ``/history``): one line per message, foreign text literal."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text

from agentctl.output.emit import Redact
from agentctl.output.untrusted import literal

WIDTH = 160  # characters of a result or an answer shown: the turn is a reminder, not the full output


def turns_text(conversation_id: str, turns: list[list[dict[str, Any]]], sent: int, redact: Redact) -> Text:
    """The conversation's id, then each turn numbered: its request, calls, results and answer.

    ``sent``: how many of the newest turns the next request carries; the others are marked so.
    """
    text = literal(f"conversation {conversation_id} · {len(turns)} turn{'s' if len(turns) != 1 else ''}", "bold")
    for number, turn in enumerate(turns, 1):
        dropped = number <= len(turns) - sent
        for index, message in enumerate(turn):
            head = f"{number:>3}  " if index == 0 else "     "
            text.append("\n")
            text.append_text(literal(head + redact(_line(message)), style="dim" if dropped else "", lines=False))
    if sent < len(turns):
        gone = "turn 1 is" if len(turns) - sent == 1 else f"turns 1-{len(turns) - sent} are"
        text.append(f"\n({gone} no longer sent to the model: router.history_tokens)", style="dim")
    return text


def _line(message: dict[str, Any]) -> str:
    """One message on one line: ``→ name(args)`` for a call, ``← value`` for a result, else its text."""
    calls = message.get("tool_calls") or []
    if calls:
        return "  ".join(f"→ {c['function']['name']}({_arguments(c['function']['arguments'])})" for c in calls)
    content = str(message.get("content") or "")
    prefix = "← " if message.get("role") == "tool" else ""
    return prefix + (content if len(content) <= WIDTH else content[:WIDTH] + "…")


def _arguments(raw: str) -> str:
    try:
        arguments = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    return ", ".join(f"{k}={v!r}" for k, v in arguments.items()) if isinstance(arguments, dict) else raw
