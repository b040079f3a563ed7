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
            retry_note="tasks get-repo and count-contributors retry 5xx and connection errors "
            "(github.retries, github.retry_delay_seconds apart); never 404 or rate limits",
        ),
        from_signature(
            text.text_processing,
            name="text_processing",
            kind="task",
            entrypoint="agentctl.processes.text_task:text_processing",
            retry_note="no Prefect retries; its LLM call has the client's retries (llm.max_retries)",
        ),
    ]


def builtin_registry() -> Registry:
    """The registry with the built-in processes."""
    return Registry(builtins())
