"""A deployment's ``parameter_openapi_schema`` as a pydantic argument model.

Prefect describes a deployment's parameters with a JSON schema whose shared parts sit under
``definitions`` (``#/definitions/Name``). Rebuilding a pydantic model from it gives deployments the
same path as Python processes: validation before anything runs, and the schema the router makes
strict. A part this does not understand becomes ``Any``: a deployment is still listed and callable,
only less checked, rather than hidden by a schema we cannot read.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

_SCALARS: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "null": type(None)}
_LITERAL_VALUES = (str, int, bool, type(None))


def arguments_model(name: str, schema: dict[str, Any]) -> type[BaseModel]:
    """A model named ``{name}_arguments`` that validates what ``schema`` describes."""
    return _Builder(schema.get("definitions") or schema.get("$defs") or {}).model(f"{name}_arguments", schema)


class _Builder:
    """Turns schema nodes into types; each definition becomes one model, built once."""

    def __init__(self, definitions: dict[str, Any]) -> None:
        self._definitions = definitions
        self._built: dict[str, Any] = {}
        self._building: set[str] = set()

    def model(self, name: str, node: dict[str, Any]) -> type[BaseModel]:
        """An object node as a model that forbids keys it does not name."""
        required = set(node.get("required", []))
        fields = {}
        for key, prop in (node.get("properties") or {}).items():
            fields.update(self._field(key, prop if isinstance(prop, dict) else {}, key in required))
        config = ConfigDict(extra="forbid", serialize_by_alias=True, validate_by_alias=True, validate_by_name=True)
        return create_model(_identifier(name), __config__=config, **fields)

    def _field(self, key: str, prop: dict[str, Any], required: bool) -> dict[str, Any]:
        default = ... if required else prop.get("default")
        alias = None if _plain(key) else key  # a parameter named like a pydantic attribute keeps its name
        field = Field(default, alias=alias, description=prop.get("description"))
        return {key if alias is None else _internal(key): (self.type_of(prop), field)}

    def type_of(self, node: dict[str, Any]) -> Any:
        """The Python type of a schema node; ``Any`` for what it cannot express."""
        if "$ref" in node:
            return self._ref(node["$ref"])
        for key in ("anyOf", "oneOf"):
            if key in node:
                return _union([self.type_of(n) for n in node[key] if isinstance(n, dict)])
        if "allOf" in node and len(node["allOf"]) == 1:
            return self.type_of(node["allOf"][0])
        if "enum" in node or "const" in node:
            return _literal(node.get("enum", [node.get("const")]))
        kind = node.get("type")
        if isinstance(kind, list):
            return _union([self.type_of({**node, "type": k}) for k in kind])
        return self._typed(kind, node)

    def _typed(self, kind: Any, node: dict[str, Any]) -> Any:
        if kind == "array":
            items = node.get("items")
            return list[self.type_of(items) if isinstance(items, dict) else Any]  # type: ignore[misc]
        if kind == "object":
            if node.get("properties"):
                return self.model(str(node.get("title") or "object"), node)
            return dict[str, Any]
        return _SCALARS.get(kind, Any) if isinstance(kind, str) else Any

    def _ref(self, ref: str) -> Any:
        name = ref.rsplit("/", 1)[-1]
        target = self._definitions.get(name)
        if not isinstance(target, dict) or name in self._building:
            return Any  # missing, or recursive: a model cannot be made for it here
        if name not in self._built:
            self._building.add(name)
            built = self.type_of(target) if target.get("type") != "object" else self.model(name, target)
            self._built[name] = built
            self._building.discard(name)
        return self._built[name]


def _union(types: list[Any]) -> Any:
    members = list(dict.fromkeys(types))
    if not members or Any in members:
        return Any
    if len(members) == 1:
        return members[0]
    if type(None) in members:
        rest = [m for m in members if m is not type(None)]
        return Optional[_union(rest)]  # noqa: UP045 - a type built at run time
    return Union[tuple(members)]  # noqa: UP007 - a type built at run time


def _literal(values: list[Any]) -> Any:
    if not values or not all(isinstance(v, _LITERAL_VALUES) for v in values):
        return Any
    return Literal[tuple(values)]


def _plain(key: str) -> bool:
    """Whether ``key`` can be a pydantic field name as it is."""
    return key.isidentifier() and not key.startswith(("_", "model_")) and not hasattr(BaseModel, key)


def _internal(key: str) -> str:
    """A field name of our own for a parameter whose name pydantic cannot take (its alias keeps it)."""
    return "param_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _identifier(name: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in name)
    return cleaned if cleaned.isidentifier() else f"m_{cleaned}"
