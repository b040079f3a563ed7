"""Text processing: the tools a nested LLM call may apply, and what the process returns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

TOOLS: dict[str, tuple[str, Callable[[str], str]]] = {
    "UPPER": ("Convert the text to upper case.", str.upper),
    "LOWER": ("Convert the text to lower case.", str.lower),
}


class TextResult(BaseModel):
    """What the text-processing process returns."""

    text: str
    tool_uses: dict[str, int]
    note: str | None = None


def tool_schemas() -> list[dict[str, Any]]:
    """OpenAI tool definitions for the text tools."""
    return [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": description,
                "parameters": {
                    "type": "object",
                    "properties": {"text": {"type": "string", "description": "The text to transform."}},
                    "required": ["text"],
                    "additionalProperties": False,
                },
            },
        }
        for name, (description, _) in TOOLS.items()
    ]


def apply_calls(text: str, calls: list[tuple[str, dict[str, Any]]]) -> TextResult:
    """Apply the chosen tools in order, counting each tool's uses; unknown tools are skipped."""
    uses = dict.fromkeys(TOOLS, 0)
    current = text
    skipped = []
    for name, arguments in calls:
        if name not in TOOLS:
            skipped.append(name)
            continue
        target = arguments.get("text", current)
        current = TOOLS[name][1](target if isinstance(target, str) else current)
        uses[name] += 1
    note = f"ignored unknown tools: {', '.join(skipped)}" if skipped else None
    return TextResult(text=current, tool_uses=uses, note=note)
