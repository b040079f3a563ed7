"""Arguments given by hand (``--param k=v``, ``--params-json``), parsed against a process's schema."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from agentctl.errors import UsageError
from agentctl.processes.registry import Process


def parse(process: Process, pairs: list[str], params_json: str | None) -> dict[str, Any]:
    """Validated arguments for ``process``, or a UsageError naming the parameter and expected type."""
    values = _from_json(params_json)
    properties = process.schema().get("properties", {})
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise UsageError(f"--param takes NAME=VALUE, got {pair!r}")
        if key not in properties:
            known = ", ".join(properties) or "none"
            raise UsageError(f"{process.name} has no parameter {key!r}; its parameters are: {known}")
        values[key] = raw if _takes_string(properties[key]) else _json_or_raw(raw)
    return validated(process, values)


def validated(process: Process, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` validated against ``process``'s schema, or a UsageError naming the parameter (given by
    hand, or by a line of a batch)."""
    try:
        return process.validate(values)
    except ValidationError as exc:
        raise UsageError(_describe(process, exc)) from None


def _from_json(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--params-json is not valid JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(value, dict):
        raise UsageError('--params-json must be a JSON object, for example \'{"repo": "acme/rocket"}\'')
    return value


def _takes_string(schema: dict[str, Any]) -> bool:
    if schema.get("type") == "string":
        return True
    return any(option.get("type") == "string" for option in schema.get("anyOf", []))


def _json_or_raw(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _describe(process: Process, exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "arguments"
    if err["type"] == "missing":
        return f"parameter {where} is required (see: agentctl processes show {process.name})"
    if err["type"] == "extra_forbidden":
        return f"{process.name} has no parameter {where!r}"
    message = err["msg"]
    if message.startswith("Input should be "):
        message = "expected " + message.removeprefix("Input should be ")
    return f"parameter {where}: {message[0].lower()}{message[1:]}, got {err.get('input')!r}"
