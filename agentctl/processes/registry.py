"""The registry of processes: what the router may choose and what an actor may run.

A ``Process`` is a name, a description and a JSON schema of its arguments derived from a Python
signature: all the router sees. How it is executed is its ``source`` (``sources.Source``), which
runs it with validated arguments and describes itself for ``processes show``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from agentctl.errors import ConfigError

if TYPE_CHECKING:
    from agentctl.processes.sources import Source

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Process:
    """One registered process."""

    name: str
    description: str
    arguments: type[BaseModel] = field(repr=False)
    source: Source
    confirm: bool = False  # a person approves each run before it starts (side effects)

    @property
    def kind(self) -> str:
        """The kind of run it makes (its source's): ``flow`` or ``task``."""
        return self.source.kind

    @property
    def entrypoint(self) -> str:
        """Where it comes from (its source's): ``module:attribute`` for Python code."""
        return self.source.entrypoint

    def schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments, as pydantic derives it."""
        return self.arguments.model_json_schema()

    def parameters(self) -> list[tuple[str, str, bool]]:
        """(name, type, required) of each parameter, for display."""
        props = self.schema().get("properties", {})
        required = set(self.schema().get("required", []))
        return [(n, _type_label(p), n in required) for n, p in props.items()]

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Validated arguments, or pydantic's ValidationError."""
        return self.arguments.model_validate(arguments).model_dump(mode="json")


def from_signature(fn: Callable[..., Any], *, name: str, source: Source, description: str | None = None) -> Process:
    """Build a Process run by ``source`` whose argument schema comes from ``fn``'s signature and docstring."""
    if not NAME_PATTERN.match(name):
        raise ConfigError(f"process name {name!r} must match {NAME_PATTERN.pattern}")
    doc = inspect.getdoc(fn) or ""
    summary = _summary(description, doc) or name
    model = _arguments_model(fn, name, _param_docs(doc))
    return Process(name=name, description=summary, arguments=model, source=source)


def _arguments_model(fn: Callable[..., Any], name: str, docs: dict[str, str]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    hints = inspect.get_annotations(fn, eval_str=True)
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(f"process {name}: *{param.name} cannot be described to the LLM; name every parameter")
        default = ... if param.default is inspect.Parameter.empty else param.default
        description = docs.get(param.name)
        fields[param.name] = (hints.get(param.name, Any), Field(default, description=description))
    config = ConfigDict(extra="forbid", str_max_length=10_000)
    return create_model(f"{name}_arguments", __config__=config, **fields)


def _summary(description: str | None, doc: str) -> str:
    """A given description as it is; the docstring (Prefect's default description) by its first paragraph.

    The rest of a docstring (``Args:``, notes for developers) is for readers of the code: the
    parameters' part goes into the schema, the rest is not shown to users or the model.
    """
    if description and " ".join(description.split()) != " ".join(doc.split()):
        return description
    return " ".join(doc.split("\n\n")[0].split())


def _param_docs(doc: str) -> dict[str, str]:
    """Parameter descriptions from a Google-style ``Args:`` section; deeper-indented lines continue one."""
    found: dict[str, str] = {}
    indent, name = 0, ""
    for line in _args_section(doc):
        depth = len(line) - len(line.lstrip())
        entry = re.match(r"^\s+(\w+)(?:\s*\(.*?\))?:\s*(.*)$", line)
        if entry and (not name or depth <= indent):
            indent, name = depth, entry.group(1)
            found[name] = entry.group(2).strip()
        elif name and depth > indent and line.strip():
            found[name] = f"{found[name]} {line.strip()}".strip()
    return found


def _args_section(doc: str) -> list[str]:
    """The lines of the ``Args:`` section, up to the next line that is not indented."""
    lines = doc.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() in ("Args:", "Arguments:", "Parameters:")]
    if not starts:
        return []
    section = []
    for line in lines[starts[0] + 1 :]:
        if line and not line.startswith(" "):
            break
        section.append(line)
    return section


def _type_label(prop: dict[str, Any]) -> str:
    if "anyOf" in prop:
        return " | ".join(_type_label(p) for p in prop["anyOf"])
    if prop.get("type") == "array":
        return f"list[{_type_label(prop.get('items', {}))}]"
    if "enum" in prop:
        return " | ".join(repr(v) for v in prop["enum"])
    return str(prop.get("type", prop.get("$ref", "any").rsplit("/", 1)[-1]))


class Registry:
    """Processes by name, in registration order."""

    def __init__(self, processes: Iterable[Process] = ()) -> None:
        self._by_name: dict[str, Process] = {}
        for process in processes:
            self.add(process)

    def add(self, process: Process) -> None:
        """Register a process; a second one with the same name is an error."""
        if process.name in self._by_name:
            raise ConfigError(f"two processes are named {process.name!r}: rename one")
        self._by_name[process.name] = process

    def get(self, name: str) -> Process | None:
        """The process called ``name``, if there is one."""
        return self._by_name.get(name)

    def __iter__(self) -> Any:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)


def describe_validation_error(exc: ValidationError) -> str:
    """A compact one-line description of a pydantic validation error."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
