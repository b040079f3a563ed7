"""The body of the repository-info process (declared in ``agentctl.processes.builtin``): two Prefect tasks,
retried only on transient GitHub failures."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from agentctl import runtime
from agentctl.processes.builtin.github import GitHub, RepoInfo, TransientGitHubError
from agentctl.secrecy import masked


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry 5xx answers and connection failures; never 404, rate limits or refusals."""
    return isinstance(state.data, TransientGitHubError)


def _client() -> GitHub:
    settings = runtime.settings().github
    token = runtime.environ().get(settings.token_env) or None
    return GitHub(settings.api_url, token, settings.timeout, settings.token_env, settings.max_pages)


# The runner masks the process; its tasks' errors become task run states of their own.
@task(name="get-repo", retry_condition_fn=_transient)
@masked
async def get_repo(repo: str) -> dict[str, Any]:
    """Fetch the repository record."""
    async with _client() as github:
        return await github.repo(repo)


@task(name="count-contributors", retry_condition_fn=_transient)
@masked
async def count_contributors(repo: str) -> int:
    """Count every contributor, page by page."""
    logger = get_run_logger()
    total = 0
    async with _client() as github:
        async for page, count in _numbered(github.contributor_pages(repo)):
            total += count
            logger.debug("page %d: %s", page, counted(count, "contributor"))
    return total


async def _numbered(pages: Any) -> Any:
    number = 0
    async for count in pages:
        number += 1
        yield number, count


async def repo_info(repo: str) -> RepoInfo:
    """Stars and contributors of ``repo``, run inside the process's flow run."""
    logger = get_run_logger()
    retry = _retry_options()
    record = await get_repo.with_options(**retry)(repo)
    stars = int(record.get("stargazers_count", 0))
    logger.info("%s has %s", record.get("full_name", repo), counted(stars, "star"))
    contributors = await count_contributors.with_options(**retry)(repo)
    logger.info("%s has %s", record.get("full_name", repo), counted(contributors, "contributor"))
    return RepoInfo(
        full_name=str(record.get("full_name", repo)),
        stars=stars,
        contributors=contributors,
        url=str(record.get("html_url", "")),
    )


def counted(number: int, noun: str) -> str:
    """``1 star``, ``2 stars``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _retry_options() -> dict[str, Any]:
    settings = runtime.settings().github
    return {"retries": settings.retries, "retry_delay_seconds": settings.retry_delay_seconds}
