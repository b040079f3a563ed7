"""The body of the text-processing process (declared in ``agentctl.processes.builtin``): a second LLM call
chooses which text tools to apply."""

from __future__ import annotations

import json
from typing import Any

from prefect import get_run_logger

from agentctl import runtime
from agentctl.llm import ChatModel
from agentctl.processes.builtin.text import TOOLS, TextResult, apply_calls, tool_schemas

SYSTEM = (
    "You transform text with the tools you are given. Read the instruction, then call the tools "
    "that carry it out, in order, each with the text it should transform. If no tool can carry out "
    "the instruction, call no tool and say briefly why."
)


async def transform(instruction: str, text: str) -> TextResult:
    """``text`` transformed as ``instruction`` says, run inside the process's task run."""
    logger = get_run_logger()
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Instruction: {instruction}\nText: {text}"},
    ]
    model = runtime.chat_model()  # the request's: its --model, and its usage count
    if model.llm.mode == "json_schema":
        calls, content = await _choose_by_schema(model, messages)
    else:
        message = await model.chat(messages, tools=tool_schemas())
        calls = [(c.function.name, _arguments(c.function.arguments)) for c in message.tool_calls or []]
        content = message.content
    if not calls:
        reason = (content or "").strip() or "no tool applies to this instruction"
        logger.info("no tool applies: %s", reason)
        return TextResult(text=text, tool_uses=apply_calls(text, []).tool_uses, note=reason)
    result = apply_calls(text, calls)
    for name, count in result.tool_uses.items():
        if count:
            logger.info("%s used %d time(s)", name, count)
    return result


async def _choose_by_schema(
    model: ChatModel, messages: list[dict[str, Any]]
) -> tuple[list[tuple[str, dict[str, Any]]], str]:
    """For servers without tool calling: the same choice as a structured JSON answer."""
    properties = {"tool": {"type": "string", "enum": list(TOOLS)}, "text": {"type": "string"}}
    call = {"type": "object", "properties": properties, "required": ["tool", "text"], "additionalProperties": False}
    schema = {
        "type": "object",
        "properties": {"calls": {"type": "array", "items": call}, "note": {"type": "string"}},
        "required": ["calls", "note"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "text_tools", "strict": True, "schema": schema}}
    completion = await model.complete(messages, response_format=fmt)
    answer = _arguments(completion.choices[0].message.content)
    calls = [(str(c.get("tool")), {"text": c.get("text")}) for c in answer.get("calls", []) if isinstance(c, dict)]
    return calls, str(answer.get("note") or "")


def _arguments(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
