"""Text processing: the tools a nested LLM call may apply, and the process's signature."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, Field

TOOLS: dict[str, tuple[str, Callable[[str], str]]] = {
    "UPPER": ("Convert the text to upper case.", str.upper),
    "LOWER": ("Convert the text to lower case.", str.lower),
}


class TextResult(BaseModel):
    """What the text-processing process returns."""

    text: str
    tool_uses: dict[str, int]
    note: str | None = None


def text_processing(
    instruction: Annotated[str, Field(max_length=2000)],
    text: Annotated[str, Field(max_length=10_000)],
) -> TextResult:  # pragma: no cover - signature only
    """Transform a piece of text with simple tools (upper case, lower case) as instructed.

    Args:
        instruction: What to do to the text, in the user's words, for example "make it uppercase".
        text: The text to transform, exactly as given.
    """
    raise NotImplementedError


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
