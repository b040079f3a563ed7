"""The built-in processes, declared once each, with ``@process`` like any plugin's.

Signature and docstring are here, and they are what the router sees and what Prefect runs: the
runner makes each declared function the flow or task it runs. Its body runs code of a module of its
own that imports Prefect, imported only when the process runs, so listing processes stays light.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from agentctl.processes.builtin.github import Repo, RepoInfo
from agentctl.processes.builtin.text import TextResult
from agentctl.processes.declare import process
from agentctl.processes.python_source import to_process
from agentctl.processes.registry import Process, Registry


@process(
    retry_note="tasks get-repo and count-contributors retry 5xx and connection errors "
    "(github.retries, github.retry_delay_seconds apart); never 404 or rate limits"
)
async def github_repo_info(repo: Repo) -> RepoInfo:
    """Get a GitHub repository's star count and its number of contributors.

    Args:
        repo: The repository as owner/name, for example PrefectHQ/prefect.
    """
    from agentctl.processes.builtin.github_flow import repo_info

    return await repo_info(repo)


@process(kind="task", retry_note="no Prefect retries; its LLM call has the client's retries (llm.max_retries)")
async def text_processing(
    instruction: Annotated[str, Field(max_length=2000)],
    text: Annotated[str, Field(max_length=10_000)],
) -> TextResult:
    """Transform a piece of text with simple tools (upper case, lower case) as instructed.

    Args:
        instruction: What to do to the text, in the user's words, for example "make it uppercase".
        text: The text to transform, exactly as given.
    """
    from agentctl.processes.builtin.text_task import transform

    return await transform(instruction, text)


def builtins() -> list[Process]:
    """The processes agentctl ships with."""
    return [to_process(github_repo_info), to_process(text_processing)]


def builtin_registry() -> Registry:
    """The registry with the built-in processes."""
    return Registry(builtins())
