"""GitHub's REST API, as the repository-info process needs it (no Prefect here).

Requests, and the token, go only to the configured API origin: a URL in a response (a ``Link``
header) that points anywhere else is refused.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, Field

from agentctl.errors import AgentctlError

REPO_PATTERN = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"
Repo = Annotated[str, Field(pattern=REPO_PATTERN, max_length=200)]


class RepoInfo(BaseModel):
    """What the repository-info process returns."""

    full_name: str
    stars: int
    contributors: int
    url: str


def github_repo_info(repo: Repo) -> RepoInfo:  # pragma: no cover - signature only
    """Get a GitHub repository's star count and its number of contributors.

    Args:
        repo: The repository as owner/name, for example PrefectHQ/prefect.
    """
    raise NotImplementedError


class GitHubError(AgentctlError):
    """The GitHub API answered with an error that retrying will not fix."""


class RepoNotFound(GitHubError):
    """404: the repository does not exist or the token cannot see it."""


class RateLimited(GitHubError):
    """403/429 with no requests left in the current window."""


class TransientGitHubError(AgentctlError):
    """A 5xx answer or a connection failure: worth a retry."""


class ForeignURL(GitHubError):
    """A response pointed at a host other than the configured API."""


class GitHub:
    """A small async client for the configured GitHub API."""

    def __init__(self, api_url: str, token: str | None, timeout: float) -> None:
        self.api_url = api_url.rstrip("/")
        self._origin = _origin(self.api_url)
        headers = {"Accept": "application/vnd.github+json", "User-Agent": "agentctl"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout, follow_redirects=False)

    async def __aenter__(self) -> GitHub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def repo(self, full_name: str) -> dict[str, Any]:
        """The repository record."""
        response = await self._get(f"{self.api_url}/repos/{full_name}", full_name)
        return dict(response.json())

    async def contributor_pages(self, full_name: str) -> Any:
        """Yield the number of contributors on each page, following ``Link: rel="next"``."""
        url: str | None = f"{self.api_url}/repos/{full_name}/contributors?per_page=100"
        while url:
            response = await self._get(url, full_name)
            page = [] if response.status_code == 204 else response.json()
            if not isinstance(page, list):
                raise GitHubError(f"GitHub answered contributors of {full_name} with something other than a list")
            yield len(page)
            url = next_link(response.headers.get("link", ""))

    async def _get(self, url: str, full_name: str, hops: int = 3) -> httpx.Response:
        if _origin(url) != self._origin:
            raise ForeignURL(f"GitHub answered with a link to {_origin(url)}, not {self._origin} "
                             "(github.api_url): refused")
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as exc:
            raise TransientGitHubError(f"could not reach {self._origin}: {type(exc).__name__}; "
                                       "check github.api_url / GITHUB_API_URL") from None
        if response.is_redirect and response.next_request is not None and hops > 0:
            # A renamed or moved repository: follow, on the same host only.
            return await self._get(str(response.next_request.url), full_name, hops - 1)
        _raise_for_status(response, full_name)
        return response


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def next_link(header: str) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header, if any."""
    for part in header.split(","):
        match = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', part)
        if match:
            return match.group(1)
    return None


def _raise_for_status(response: httpx.Response, full_name: str) -> None:
    status = response.status_code
    if status < 300:
        return
    if status < 400:
        raise GitHubError(f"GitHub answered {status} for {full_name} without a usable Location")
    if status in (403, 429) and response.headers.get("x-ratelimit-remaining") == "0":
        raise RateLimited(f"GitHub rate limit reached; it resets {_reset_time(response)}. "
                          "Set GITHUB_TOKEN for a higher limit")
    if status == 404:
        raise RepoNotFound(f"repository {full_name} not found or not accessible")
    if status >= 500:
        raise TransientGitHubError(f"GitHub answered {status} for {full_name}")
    raise GitHubError(f"GitHub answered {status} for {full_name}: {_message(response)}")


def _reset_time(response: httpx.Response) -> str:
    reset = response.headers.get("x-ratelimit-reset", "")
    if not reset.isdigit():
        retry_after = response.headers.get("retry-after", "")
        return f"in {retry_after} s" if retry_after.isdigit() else "at an unknown time"
    when = time.strftime("%H:%M:%S UTC", time.gmtime(int(reset)))
    minutes = max(0, round((int(reset) - time.time()) / 60))
    return f"at {when} (in {minutes} min)"


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:200]
    except ValueError:
        return response.text[:200]
