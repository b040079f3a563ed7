"""The built-in processes.

Each built-in is declared here from a plain signature (no Prefect import), and its Prefect flow or
task lives in a module of its own that is imported only when it runs.
"""

from __future__ import annotations

from agentctl.processes import github, text
from agentctl.registry import Process, Registry, from_signature


def builtins() -> list[Process]:
    """The processes agentctl ships with."""
    return [
        from_signature(
            github.github_repo_info,
            name="github_repo_info",
            kind="flow",
            entrypoint="agentctl.processes.github_flow:github_repo_info",
        ),
        from_signature(
            text.text_processing,
            name="text_processing",
            kind="task",
            entrypoint="agentctl.processes.text_task:text_processing",
        ),
    ]


def builtin_registry() -> Registry:
    """The registry with the built-in processes."""
    return Registry(builtins())
