"""What a process sees of the agentctl process it runs in: the settings and secrets of the request.

A router actor installs the settings it was started with here once. An actor of ``agentctl up``
serves callers with settings of their own (another model, LLM address or key), so each request can
bring its own, which hold for the code that request runs. Processes read them (the GitHub API
address, the LLM model) without taking them as parameters, so nothing secret or incidental becomes
a Prefect parameter.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar

from agentctl.config import Settings, load

_current: Settings | None = None
_request: ContextVar[tuple[Settings, dict[str, str]] | None] = ContextVar("agentctl_request", default=None)


def install(settings: Settings) -> None:
    """Make ``settings`` the ones processes in this Python process see."""
    global _current
    _current = settings


@contextmanager
def serving(settings: Settings, secrets: dict[str, str]) -> Iterator[None]:
    """Make ``settings`` and ``secrets`` the ones seen by code run in this context (one request)."""
    token = _request.set((settings, secrets))
    try:
        yield
    finally:
        with suppress(ValueError):  # a generator closed from another context: that context never saw it
            _request.reset(token)


def settings() -> Settings:
    """The request's settings, else the installed ones, else those of the environment and config."""
    global _current
    request = _request.get()
    if request is not None:
        return request[0]
    if _current is None:
        _current = load()
    return _current


def environ() -> Mapping[str, str]:
    """The environment, with the request's secrets in place of any this process holds."""
    request = _request.get()
    if request is None:
        return os.environ
    # Only the caller's own secrets: never those this process was started with by another caller.
    mine = request[0].secret_names()
    return {**{k: v for k, v in os.environ.items() if k not in mine}, **request[1]}


def secret_values() -> list[str]:
    """Values of the secrets the current settings name, for redaction."""
    return settings().secret_values(environ())
