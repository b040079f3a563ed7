"""What a running process sees of the agentctl process it runs in: the request's settings, secrets
and chat model.

A router actor installs the settings it was started with here once. An actor of ``agentctl up``
serves callers with settings of their own (another model, LLM address or key), so each request can
bring its own, which hold for the code that request runs. Processes read them (the GitHub API
address, the chat model for their own LLM calls) without taking them as parameters, so nothing
secret or incidental becomes a Prefect parameter. These are context variables because Prefect
runs a process's code in tasks and threads of its own, and copies the context into them; routing
never reads them: it is handed its ``ChatModel`` explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar

from agentctl.config import Settings, load
from agentctl.events import PROCESS_TAG, RUN_TAG
from agentctl.llm import ChatModel, Clients

_current: Settings | None = None
_request: ContextVar[tuple[Settings, dict[str, str]] | None] = ContextVar("agentctl_request", default=None)
_model: ContextVar[ChatModel | None] = ContextVar("agentctl_chat_model", default=None)


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


def run_tags(process: str | None) -> list[str]:
    """The tags of a Prefect run agentctl starts: ``agentctl`` and ``process:<name>`` (how ``agentctl
    runs`` finds it), then the request's ``processes.run_tags``."""
    named = [f"{PROCESS_TAG}{process}"] if process else []
    return [RUN_TAG, *named, *settings().processes.run_tags]


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
    return os.environ if request is None else request_environ(*request)


def request_environ(settings: Settings, secrets: Mapping[str, str]) -> Mapping[str, str]:
    """The environment a request with ``settings`` and ``secrets`` sees."""
    # Only the caller's own secrets: never those this process was started with by another caller.
    mine = settings.secret_names()
    return {**{k: v for k, v in os.environ.items() if k not in mine}, **secrets}


def secret_values() -> list[str]:
    """Values of the secrets the current settings name, for redaction."""
    return settings().secret_values(environ())


@contextmanager
def lending(model: ChatModel | None) -> Iterator[None]:
    """Make ``model`` the chat model of process code started in this context (Prefect copies it)."""
    token = _model.set(model)
    try:
        yield
    finally:
        _model.reset(token)


def chat_model() -> ChatModel:
    """The chat model of the request whose process is running; else one from the settings."""
    # A process called outside a router actor (a test, a script) has no request: its own model.
    return _model.get() or ChatModel.of(settings(), environ(), Clients())
