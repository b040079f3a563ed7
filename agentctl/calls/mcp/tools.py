"""What an MCP client sees: one tool per process, the tool ``ask``, and each call's result.

A process's tool has the process's name, description and JSON schema; its annotations say what
agentctl knows: a run that waits for approval (``confirm``, with the config applied) is
destructive, any other is read-only. ``ask`` takes a plain-language request and runs agentctl's
routing and its steps. A process named ``ask`` is not offered as a tool of its own (the tool
``ask`` keeps the name) but ``ask`` can still route to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import mcp_types as types

from agentctl.config import Settings
from agentctl.errors import redact_all
from agentctl.processes.approval import needs_approval
from agentctl.processes.registry import Process
from agentctl.views import AskOutput

ASK = "ask"
ASK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"request": {"type": "string", "description": "What to do, in plain language."}},
    "required": ["request"],
    "additionalProperties": False,
}
ASK_DESCRIPTION = (
    "Carry out a plain-language request with agentctl: an LLM picks the registered processes and their "
    "arguments, they run under Prefect, and their results go back to it until it answers."
)


def offered(processes: Iterable[Process]) -> list[Process]:
    """The processes offered as tools of their own: all but one named like the tool ``ask``."""
    return [process for process in processes if process.name != ASK]


def tool_list(processes: list[Process], settings: Settings) -> list[types.Tool]:
    """The tool ``ask`` first, then one tool per process."""
    asks = [needs_approval(process, settings) for process in processes]
    return [_ask_tool(any(asks)), *(_tool(p, a) for p, a in zip(processes, asks, strict=True))]


def _tool(process: Process, asks: bool) -> types.Tool:
    title = process.name.replace("__", " / ").replace("_", " ")
    hints = types.ToolAnnotations(title=title, read_only_hint=not asks, destructive_hint=asks)
    schema = {k: v for k, v in process.schema().items() if k != "title"}
    return types.Tool(
        name=process.name, title=title, description=process.description, input_schema=schema, annotations=hints
    )


def _ask_tool(any_asks: bool) -> types.Tool:
    """``ask`` may run anything the router can choose: destructive when any of that asks first."""
    hints = types.ToolAnnotations(title="ask agentctl", read_only_hint=False, destructive_hint=any_asks)
    return types.Tool(
        name=ASK, title="ask agentctl", description=ASK_DESCRIPTION, input_schema=ASK_SCHEMA, annotations=hints
    )


def call_result(record: AskOutput, redact: Callable[[str], str]) -> types.CallToolResult:
    """The call's record as structured content (``ask --json``'s document) and as text: the answer,
    else the result as JSON, else the error."""
    document = redact_all(record.document(), redact)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=_text(document))],
        structured_content=document,
        is_error=record.error is not None,
    )


def _text(document: dict[str, Any]) -> str:
    if document["error"] is not None:
        return f"error: {document['error']['message']}"
    if document["answer"] is not None:
        return str(document["answer"])
    if document["result"] is None and document.get("note"):
        return str(document["note"])  # a deployment run whose result Prefect did not persist
    return json.dumps(document["result"], ensure_ascii=False)


def failed(message: str) -> types.CallToolResult:
    """A call refused before anything ran (bad arguments), as the client's model should see it."""
    return types.CallToolResult(content=[types.TextContent(type="text", text=f"error: {message}")], is_error=True)
