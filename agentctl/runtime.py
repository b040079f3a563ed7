"""What a process sees of the agentctl process it runs in: the settings it was started with.

A router actor installs its settings here once; processes read them (the GitHub API address, the
LLM model) without taking them as parameters, so nothing secret or incidental becomes a Prefect
parameter.
"""

from __future__ import annotations

from agentctl.config import Settings, load

_current: Settings | None = None


def install(settings: Settings) -> None:
    """Make ``settings`` the ones processes in this Python process see."""
    global _current
    _current = settings


def settings() -> Settings:
    """The installed settings, or those loaded from the environment and config file."""
    global _current
    if _current is None:
        _current = load()
    return _current
