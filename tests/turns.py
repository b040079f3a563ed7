"""Turns as the agent loop records them (a conversation's messages), built for tests of the store and the router.

The next request of the conversation sends them again, so the model knows what was asked, which
process it called with which arguments, what that returned (bounded, as ``router.max_result_chars``
says) and what it answered.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from agentctl.events import Turn


def chat_turn(request: str, answer: str) -> Turn:
    """A request the model answered in text."""
    return Turn(messages=[{"role": "user", "content": request}, {"role": "assistant", "content": answer}])


def call_turn(request: str, process: str, arguments: dict[str, Any], result: Any, max_chars: int) -> Turn:
    """A request the model answered with one call of ``process``, which returned ``result``."""
    call_id = f"call_{uuid.uuid4().hex[:12]}"
    call = {"id": call_id, "type": "function", "function": {"name": process, "arguments": json.dumps(arguments)}}
    return Turn(
        messages=[
            {"role": "user", "content": request},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": bounded(json.dumps(result), max_chars)},
        ]
    )


def bounded(text: str, max_chars: int) -> str:
    """``text``, cut at ``max_chars`` with a note that says so (the model must not take a part for all)."""
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}… [cut at {max_chars} of {len(text)} characters: router.max_result_chars]"
