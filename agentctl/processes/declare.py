"""``@agentctl.process``: declare a function, a Prefect flow or a Prefect task as a process.

The decorator records what it needs and returns the object unchanged, so a declared function is
still an ordinary function and a declared flow is still a flow. Prefect is imported only when a
process runs: a plain function is wrapped as a Prefect flow then, with the options given here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])
Kind = Literal["flow", "task"]
ATTRIBUTE = "__agentctl_process__"


@dataclass(frozen=True)
class Declaration:
    """What ``@process`` recorded about one object."""

    name: str | None = None
    description: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    kind: Kind | None = None
    retry_note: str = ""
    confirm: bool = False


@overload
def process(obj: F, /) -> F: ...


@overload
def process(
    obj: None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    retries: int | None = None,
    retry_delay_seconds: float | None = None,
    timeout_seconds: float | None = None,
    tags: list[str] | None = None,
    kind: Kind | None = None,
    retry_note: str | None = None,
    confirm: bool = False,
) -> Callable[[F], F]: ...


def process(
    obj: Any = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    retries: int | None = None,
    retry_delay_seconds: float | None = None,
    timeout_seconds: float | None = None,
    tags: list[str] | None = None,
    kind: Kind | None = None,
    retry_note: str | None = None,
    confirm: bool = False,
) -> Any:
    """Register a function, Prefect flow or Prefect task as a process agentctl can route to.

    Args:
        name: Tool name the LLM sees (default: the function's name).
        description: What it does (default: the docstring's first paragraph).
        retries: Prefect retries for each run.
        retry_delay_seconds: Seconds between Prefect retries.
        timeout_seconds: Prefect timeout of each run.
        tags: Prefect tags of each run.
        kind: ``task`` runs a plain function as a Prefect task run instead of a flow run.
        retry_note: How its runs retry beyond these options, shown by ``ask --dry-run``.
        confirm: Each run waits for a person's yes first (it has side effects); see
            ``processes.confirm`` and ``processes.auto_approve`` to change that per name.
    """
    options = {"retries": retries, "retry_delay_seconds": retry_delay_seconds, "timeout_seconds": timeout_seconds}
    given = {k: v for k, v in options.items() if v is not None}
    declaration = Declaration(name, description, given, tuple(tags or ()), kind, retry_note or "", confirm)

    def decorate(target: Any) -> Any:
        if not callable(target):
            raise TypeError(f"@process needs a function, flow or task, not {type(target).__name__}")
        setattr(target, ATTRIBUTE, declaration)
        return target

    return decorate(obj) if obj is not None else decorate


def declaration(obj: Any) -> Declaration | None:
    """The declaration on ``obj``, if it was decorated with ``@process``."""
    found = getattr(obj, ATTRIBUTE, None) if callable(obj) else None
    return found if isinstance(found, Declaration) else None


def function_of(obj: Any) -> Callable[..., Any]:
    """The Python function behind a function, a Prefect flow or a Prefect task."""
    inner = getattr(obj, "fn", None)
    return inner if inspect.isfunction(inner) else obj


def kind_of(obj: Any, declared: Kind | None = None) -> Kind:
    """``task`` for a Prefect task, ``flow`` for a flow; a plain function is run as declared, else as a flow."""
    if type(obj).__module__.startswith("prefect") and type(obj).__name__ in ("Task", "Flow"):
        return "task" if type(obj).__name__ == "Task" else "flow"
    return declared or "flow"
