"""The router: a request and the registry in, a validated ``Route`` or a ``ChatReply`` out.

Two modes produce the same result. ``tools`` (the default) offers one tool per process and reads
the tool call; ``json_schema`` asks for a structured answer whose schema is the union of the
processes' argument schemas, for servers whose tool calling is weak. Either answer is validated
before anything runs: the process must have been offered, the arguments must match its schema.
``step`` is one LLM turn of a request on its messages so far; in an agentic request (``several``)
the model may call several tools at once, and ``AGENT`` tells it that it will see their results.
An invalid answer (unparseable, unknown process, bad arguments, too many calls, cut off, empty) is
sent back with the exact error, ``repair_attempts`` times, then it is a RoutingError. A refusal is
final at once: asking again does not change a refusal, and nothing has run.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from agentctl.config import RouterSettings
from agentctl.errors import RoutingError
from agentctl.events import ChatReply
from agentctl.llm import Model
from agentctl.processes.registry import Process, Registry, describe_validation_error
from agentctl.routing.shortlist import shortlist

Mode = Literal["tools", "json_schema"]
SYSTEM = {
    "tools": (
        "You are agentctl's router. Choose the one tool (process) that carries out the user's request "
        "and fill in its arguments from the request. If no tool fits, do not call any tool: answer the "
        "user directly and briefly."
    ),
    "json_schema": (
        "You are agentctl's router. Answer with JSON only, following the schema: choose the one process "
        "that carries out the user's request, fill in its arguments from the request and give a one-sentence "
        'reason. If no process fits, choose the process "none" and answer the user briefly in "reply".'
    ),
}
AGENT = {
    "tools": (
        "You are agentctl's agent. Carry out the user's request with the tools (processes): call one or "
        "several at once (they run concurrently), read their results, call more if needed, then answer the "
        "user briefly from the results. If no tool fits, answer directly."
    ),
    "json_schema": (
        "You are agentctl's agent. Answer with JSON only, following the schema: choose a process that "
        "carries out the next part of the user's request, with its arguments and a one-sentence reason; "
        'you will see its result. When the results answer the request, or no process fits, choose "none" '
        'and answer the user briefly in "reply".'
    ),
}
NO_PROCESS = "none"


@dataclass(frozen=True)
class Route:
    """A validated choice: which process, with which arguments, and why (when the LLM said)."""

    process: Process
    arguments: dict[str, Any]
    reason: str | None = None


class _Invalid(Exception):
    """The LLM's answer cannot run as it is; the message goes back to the LLM."""


@dataclass(frozen=True)
class Call:
    """One validated tool call of a step: its route and the model's id for the call."""

    route: Route
    call_id: str


@dataclass(frozen=True)
class Decision:
    """A step's validated answer: the calls to run (none: ``text`` is the answer), and the assistant
    message that records it in the conversation."""

    calls: list[Call]
    text: str | None
    message: dict[str, Any]


async def route(
    request: str,
    registry: Registry,
    model: Model,
    *,
    repair_attempts: int = 1,
    strict: bool = True,
    max_tools: int = 32,
    mode: Mode = "tools",
    history: list[dict[str, Any]] | None = None,
) -> Route | ChatReply:
    """Ask ``model`` which process fits ``request``; return a validated Route, or its chat reply.

    With more than ``max_tools`` processes only a shortlist is offered, and only it can be chosen.
    ``history``: earlier turns' messages of a conversation, sent between the system message and the request.
    """
    offered = Registry(shortlist(request, list(registry), max_tools))
    decision = await step(
        opening(mode, request, history), offered, model, repair_attempts=repair_attempts, strict=strict, mode=mode
    )
    return decision.calls[0].route if decision.calls else ChatReply(text=decision.text or "")


def opening(
    mode: Mode, request: str, history: list[dict[str, Any]] | None = None, agent: bool = False
) -> list[dict[str, Any]]:
    """A request's first messages: the instructions (the agent's, or the one-shot router's), earlier
    turns, the request."""
    system = (AGENT if agent else SYSTEM)[mode]
    return [{"role": "system", "content": system}, *(history or []), {"role": "user", "content": request}]


async def step(
    messages: list[dict[str, Any]],
    offered: Registry,
    model: Model,
    *,
    repair_attempts: int = 1,
    strict: bool = True,
    mode: Mode = "tools",
    several: bool = False,
    number: int = 1,
) -> Decision:
    """One LLM turn on ``messages`` (left as they are), repaired up to ``repair_attempts`` times.

    ``several``: the model may call several tools at once; else one (the one-shot routing).
    ``number``: the step's number, which names a json_schema-mode call (that mode has no call ids).
    """
    tried = list(messages)
    for attempt in range(repair_attempts + 1):
        completion = await model.complete(tried, **_request(mode, offered, strict))
        choice = completion.choices[0]
        try:
            return _interpret(mode, choice, offered, several, number)
        except _Invalid as exc:
            if attempt == repair_attempts:
                raise RoutingError(
                    f"the LLM's answer was invalid after {attempt + 1} tries: {exc} "
                    "(more tries: router.repair_attempts; inspect: --dry-run; or try --model)"
                ) from None
            tried += _repair_messages(mode, choice.message, str(exc))
    raise AssertionError("unreachable")


async def decide(
    request: str,
    registry: Registry,
    model: Model,
    options: RouterSettings,
    history: list[dict[str, Any]] | None = None,
) -> Route | ChatReply:
    """``route()`` with ``model``'s own LLM settings (mode, strict tools), the router's ``options``
    and a conversation's earlier messages (``history``)."""
    return await route(
        request,
        registry,
        model,
        repair_attempts=options.repair_attempts,
        strict=model.llm.strict_tools,
        max_tools=options.max_tools,
        mode=model.llm.mode,
        history=history,
    )


def _request(mode: Mode, offered: Registry, strict: bool) -> dict[str, Any]:
    if mode == "tools":
        return {"tools": [tool_for(p, strict) for p in offered]}
    schema = {"name": "route", "strict": strict, "schema": union_schema(offered, strict)}
    return {"response_format": {"type": "json_schema", "json_schema": schema}}


def _interpret(mode: Mode, choice: Any, offered: Registry, several: bool, number: int) -> Decision:
    message = choice.message
    if getattr(message, "refusal", None):
        raise RoutingError(f"the LLM refused to route the request: {message.refusal}")
    if choice.finish_reason == "length":
        raise _Invalid("the answer was cut off at the length limit; answer again, briefly")
    if mode == "tools":
        return _from_tool_calls(message, offered, several, number)
    return _from_json(message, offered, f"step-{number}")


def _from_tool_calls(message: Any, offered: Registry, several: bool, number: int) -> Decision:
    calls = message.tool_calls or []
    text = (message.content or "").strip()
    if not calls:
        if not text:
            raise _Invalid("the answer was empty; call one tool, or answer in text if no tool fits")
        return Decision([], text, {"role": "assistant", "content": text})
    if len(calls) > 1 and not several:
        names = ", ".join(c.function.name for c in calls)
        raise _Invalid(f"expected one tool call, got {len(calls)} ({names}); call exactly one tool")
    ids = _call_ids(calls, number)
    checked = [Call(_checked_call(c, offered, text), call_id) for c, call_id in zip(calls, ids, strict=True)]
    wire = _wire(calls, ids)
    return Decision(checked, text or None, {"role": "assistant", "content": text or None, "tool_calls": wire})


def _checked_call(call: Any, offered: Registry, text: str) -> Route:
    name = call.function.name
    return _checked(name, _parse_json(call.function.arguments or "{}", f"the arguments of {name}"), offered, text)


def _call_ids(calls: list[Any], number: int) -> list[str]:
    """The model's ids of ``calls``, one per call: a missing or repeated id gets one of ours, since
    approvals, results and the tool messages sent back are all matched by id."""
    ids: list[str] = []
    for index, call in enumerate(calls):
        given = call.id if isinstance(call.id, str) and call.id else None
        ids.append(given if given is not None and given not in ids else f"step-{number}-{index}")
    return ids


def _wire(calls: list[Any], ids: list[str]) -> list[dict[str, Any]]:
    """Tool calls as the chat API takes them back in an assistant message."""
    return [
        {"id": call_id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
        for c, call_id in zip(calls, ids, strict=True)
    ]


def _from_json(message: Any, offered: Registry, call_id: str) -> Decision:
    text = (message.content or "").strip()
    if not text:
        raise _Invalid("the answer was empty; answer with JSON that follows the schema")
    answer = _parse_json(text, "the answer")
    if not isinstance(answer, dict):
        raise _Invalid("the answer must be a JSON object that follows the schema")
    choice = answer.get("choice", answer)
    if not isinstance(choice, dict) or not isinstance(choice.get("process"), str):
        raise _Invalid('the answer must name a "process" (or "none")')
    said = {"role": "assistant", "content": text}
    if choice["process"] == NO_PROCESS:
        reply = str(choice.get("reply") or "").strip()
        if not reply:
            raise _Invalid('with process "none", "reply" must hold the answer to the user')
        return Decision([], reply, said)
    chosen = _checked(choice["process"], choice.get("arguments", {}), offered, choice.get("reason"))
    return Decision([Call(chosen, call_id)], None, said)


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Invalid(f"{what} is not valid JSON ({exc.msg} at character {exc.pos})") from None


def _checked(name: str, arguments: Any, offered: Registry, reason: Any) -> Route:
    process = offered.get(name)
    if process is None:
        names = ", ".join(p.name for p in offered)
        raise _Invalid(f"there is no tool named {name!r}; the tools are: {names}")
    if not isinstance(arguments, dict):
        raise _Invalid(f"the arguments of {name} must be a JSON object")
    try:
        validated = process.validate(_drop_nulls(arguments, process))
    except ValidationError as exc:
        raise _Invalid(f"invalid arguments for {name}: {describe_validation_error(exc)}") from None
    return Route(process, validated, str(reason).strip() or None if reason else None)


def _drop_nulls(arguments: dict[str, Any], process: Process) -> dict[str, Any]:
    """Strict schemas make every field required, so the LLM sends null for "use the default"."""
    fields = process.arguments.model_fields
    return {k: v for k, v in arguments.items() if not (v is None and k in fields and not fields[k].is_required())}


def _repair_messages(mode: Mode, message: Any, error: str) -> list[dict[str, Any]]:
    given = message.tool_calls or []
    calls = _wire(given, _call_ids(given, 0))
    assistant: dict[str, Any] = {"role": "assistant", "content": message.content or ""}
    if not calls:
        retry = "Answer again with JSON that follows the schema." if mode == "json_schema" else "Answer again."
        return [assistant, {"role": "user", "content": f"Error: {error}. {retry}"}]
    replies = [
        {"role": "tool", "tool_call_id": c["id"], "content": f"Error: {error}. Call a tool again, correctly."}
        for c in calls
    ]
    return [{**assistant, "tool_calls": calls}, *replies]


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


def union_schema(offered: Registry, strict: bool) -> dict[str, Any]:
    """One JSON schema for an answer that picks any offered process (or none) with its arguments."""
    definitions: dict[str, Any] = {}
    options = [_process_option(p, strict, definitions) for p in offered]
    options.append(_object({"process": {"type": "string", "enum": [NO_PROCESS]}, "reply": {"type": "string"}}))
    schema = _object({"choice": {"anyOf": options}})
    if definitions:
        schema["$defs"] = definitions
    return schema


def _process_option(process: Process, strict: bool, definitions: dict[str, Any]) -> dict[str, Any]:
    arguments = strict_schema(process.schema()) if strict else process.schema()
    prefix = f"{process.name}__"
    for name, definition in arguments.pop("$defs", {}).items():
        definitions[prefix + name] = _prefix_refs(definition, prefix)
    properties = {
        "process": {"type": "string", "enum": [process.name]},
        "arguments": _prefix_refs(arguments, prefix),
        "reason": {"type": "string"},
    }
    return _object(properties)


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _prefix_refs(node: Any, prefix: str) -> Any:
    """Point ``#/$defs/X`` references at ``#/$defs/<prefix>X``, where the union keeps them."""
    if isinstance(node, dict):
        return {
            k: (v.replace("#/$defs/", f"#/$defs/{prefix}") if k == "$ref" else _prefix_refs(v, prefix))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_prefix_refs(item, prefix) for item in node]
    return node


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
