"""The router: a request and the registry in, a validated ``Route`` or a ``ChatReply`` out.

The LLM sees one tool per process. A tool call is validated against that process's schema before
anything runs; a name that was not offered is rejected like invalid arguments. An invalid call gets
``router.repair_attempts`` re-asks with the validation error fed back, then a RoutingError.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from agentctl import llm
from agentctl.errors import RoutingError
from agentctl.events import ChatReply
from agentctl.registry import Process, Registry, describe_validation_error
from agentctl.shortlist import shortlist

SYSTEM = (
    "You are agentctl's router. Choose the one tool (process) that carries out the user's request "
    "and fill in its arguments from the request. If no tool fits, do not call any tool: answer the "
    "user directly and briefly."
)


@dataclass(frozen=True)
class Route:
    """A validated choice: which process, with which arguments."""

    process: Process
    arguments: dict[str, Any]


class _Invalid(Exception):
    """The LLM's tool call cannot run as it is; the message goes back to the LLM."""


async def route(
    request: str, registry: Registry, repair_attempts: int, strict: bool, max_tools: int = 32
) -> Route | ChatReply:
    """Ask the LLM which process fits ``request`` and return a validated Route, or its chat reply.

    With more than ``max_tools`` processes only a shortlist is offered, and only it can be chosen.
    """
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": request},
    ]
    registry = Registry(shortlist(request, list(registry), max_tools))
    tools = [tool_for(p, strict) for p in registry]
    for attempt in range(repair_attempts + 1):
        message = await llm.chat(messages, tools=tools)
        if not message.tool_calls:
            return ChatReply(text=(message.content or "").strip())
        try:
            return _validate(message.tool_calls, registry)
        except _Invalid as exc:
            if attempt == repair_attempts:
                raise RoutingError(f"the LLM's choice was invalid after {attempt + 1} tries: {exc}") from None
            messages += _repair_messages(message, str(exc))
    raise AssertionError("unreachable")


def _validate(tool_calls: list[Any], registry: Registry) -> Route:
    call = tool_calls[0].function
    process = registry.get(call.name)
    if process is None:
        offered = ", ".join(p.name for p in registry)
        raise _Invalid(f"there is no tool named {call.name!r}; the tools are: {offered}")
    try:
        arguments = json.loads(call.arguments or "{}")
    except json.JSONDecodeError as exc:
        raise _Invalid(f"the arguments of {call.name} are not valid JSON ({exc.msg})") from None
    if not isinstance(arguments, dict):
        raise _Invalid(f"the arguments of {call.name} must be a JSON object")
    try:
        return Route(process, process.validate(_drop_nulls(arguments, process)))
    except ValidationError as exc:
        raise _Invalid(f"invalid arguments for {call.name}: {describe_validation_error(exc)}") from None


def _drop_nulls(arguments: dict[str, Any], process: Process) -> dict[str, Any]:
    """Strict schemas make every field required, so the LLM sends null for "use the default"."""
    fields = process.arguments.model_fields
    return {
        k: v for k, v in arguments.items() if not (v is None and k in fields and not fields[k].is_required())
    }


def _repair_messages(message: Any, error: str) -> list[dict[str, Any]]:
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
        for c in message.tool_calls
    ]
    replies = [
        {"role": "tool", "tool_call_id": c["id"], "content": f"Error: {error}. Call a tool again, correctly."}
        for c in calls
    ]
    return [{"role": "assistant", "content": message.content, "tool_calls": calls}, *replies]


def tool_for(process: Process, strict: bool) -> dict[str, Any]:
    """The OpenAI tool definition of a process; ``strict`` adapts the schema to strict mode."""
    schema = process.schema()
    function: dict[str, Any] = {
        "name": process.name,
        "description": process.description[:1024],
        "parameters": strict_schema(schema) if strict else schema,
    }
    if strict:
        function["strict"] = True
    return {"type": "function", "function": function}


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Strict mode wants every property required, no extra keys, and no defaults or titles."""
    result = copy.deepcopy(schema)
    _make_strict(result)
    for definition in result.get("$defs", {}).values():
        _make_strict(definition)
    return result


def _make_strict(node: dict[str, Any]) -> None:
    node.pop("title", None)
    if node.get("type") != "object":
        return
    properties: dict[str, Any] = node.get("properties", {})
    required = set(node.get("required", []))
    for name, prop in properties.items():
        prop.pop("title", None)
        if name not in required and "default" in prop:
            prop.pop("default")
            properties[name] = {"anyOf": [prop, {"type": "null"}]}
        _make_strict(prop)
    node["required"] = list(properties)
    node["additionalProperties"] = False
