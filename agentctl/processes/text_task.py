"""The text-processing task: a second LLM call chooses which text tools to apply."""

from __future__ import annotations

import json
from typing import Annotated, Any

from prefect import get_run_logger, task
from pydantic import Field

from agentctl import llm
from agentctl.processes.text import TextResult, apply_calls, tool_schemas

SYSTEM = (
    "You transform text with the tools you are given. Read the instruction, then call the tools "
    "that carry it out, in order, each with the text it should transform. If no tool can carry out "
    "the instruction, call no tool and say briefly why."
)


@task(name="text-processing")
async def text_processing(
    instruction: Annotated[str, Field(max_length=2000)],
    text: Annotated[str, Field(max_length=10_000)],
) -> TextResult:
    """Transform a piece of text with simple tools (upper case, lower case) as instructed."""
    logger = get_run_logger()
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Instruction: {instruction}\nText: {text}"},
    ]
    message = await llm.chat(messages, tools=tool_schemas())
    calls = [(c.function.name, _arguments(c.function.arguments)) for c in message.tool_calls or []]
    if not calls:
        reason = (message.content or "").strip() or "no tool applies to this instruction"
        logger.info("no tool applies: %s", reason)
        return TextResult(text=text, tool_uses=apply_calls(text, []).tool_uses, note=reason)
    result = apply_calls(text, calls)
    for name, count in result.tool_uses.items():
        if count:
            logger.info("%s used %d time(s)", name, count)
    return result


def _arguments(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
