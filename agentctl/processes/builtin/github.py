"""GitHub's REST API, as the repository-info process needs it (no Prefect here).

Requests, and the token, go only to the configured API origin: a URL in a response (a ``Link``
header) that points anywhere else is refused.
"""

from __future__ import annotations

import re
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, Field

from agentctl.errors import AgentctlError, UsageError, redact

# owner/name, each part with at least one character other than a dot: "." and ".." would be
# resolved by the client as path segments (``repo=../admin`` -> ``GET /admin``, with the token).
_PART = r"[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*"
REPO_PATTERN = rf"^{_PART}/{_PART}$"
Repo = Annotated[str, Field(pattern=REPO_PATTERN, max_length=200)]


class RepoInfo(BaseModel):
    """What the repository-info process returns."""

    full_name: str
    stars: int
    contributors: int
    url: str


class GitHubError(AgentctlError):
    """The GitHub API could not give what was asked; only a ``TransientGitHubError`` is worth a retry.

        GitHubError                   GitHub answered with an error, or could not be reached
        ├── RepoNotFound              404: no such repository, or the token cannot see it
        ├── RateLimited               no requests left until the window resets
        ├── ForeignURL                a link or redirect to another host: never followed
        ├── EndlessPages              contributor pages that loop or pass github.max_pages
        └── TransientGitHubError      5xx or no connection: Prefect retries it (github.retries)

    ``BadRepoName`` is the caller's mistake, so a ``UsageError`` (exit 2), not a GitHubError.
    """


class RepoNotFound(GitHubError):
    """404: the repository does not exist or the token cannot see it."""


class RateLimited(GitHubError):
    """403/429 with no requests left in the current window."""


class TransientGitHubError(GitHubError):
    """A 5xx answer or a connection failure: worth a retry."""


class ForeignURL(GitHubError):
    """A response pointed at a host other than the configured API."""


class EndlessPages(GitHubError):
    """The ``Link: rel="next"`` chain came back to a page already read, or went past the page cap."""


class BadRepoName(UsageError):
    """The repository is not a plain owner/name."""


@cache
def _tls() -> ssl.SSLContext:
    """The TLS settings of every client in this process: loading the CA bundle costs ~30 ms, and each
    task of a run makes a client of its own."""
    return httpx.create_ssl_context()


class GitHub:
    """A small async client for the configured GitHub API."""

    def __init__(
        self, api_url: str, token: str | None, timeout: float, token_env: str = "GITHUB_TOKEN", max_pages: int = 100
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._origin = _origin(self.api_url)
        self._token, self._token_env, self._max_pages = token, token_env, max_pages
        headers = {"Accept": "application/vnd.github+json", "User-Agent": "agentctl"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout, follow_redirects=False, verify=_tls())

    async def __aenter__(self) -> GitHub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def repo(self, full_name: str) -> dict[str, Any]:
        """The repository record."""
        response = await self._get(self._repo_url(full_name), full_name)
        return dict(response.json())

    async def contributor_pages(self, full_name: str) -> Any:
        """Yield the number of contributors on each page, following ``Link: rel="next"`` to the end,
        a page already read, or ``max_pages`` pages (both an ``EndlessPages`` error)."""
        url: str | None = f"{self._repo_url(full_name)}/contributors?per_page=100"
        seen: set[str] = set()
        while url:
            self._check_next(url, seen, full_name)
            response = await self._get(url, full_name)
            page = [] if response.status_code == 204 else response.json()
            if not isinstance(page, list):
                raise GitHubError(f"GitHub answered contributors of {full_name} with something other than a list")
            yield len(page)
            url = next_link(response.headers.get("link", ""))

    def _repo_url(self, full_name: str) -> str:
        # Checked here too, not only by the parameter's pattern: no request leaves for another path.
        if not re.fullmatch(REPO_PATTERN, full_name):
            raise BadRepoName(
                f"repository {full_name!r} is not owner/name (no '.' or '..' parts): "
                "give it as owner/name, for example PrefectHQ/prefect"
            )
        return f"{self.api_url}/repos/{full_name}"

    def _check_next(self, url: str, seen: set[str], full_name: str) -> None:
        if url in seen:
            raise EndlessPages(
                f"GitHub's contributor pages of {full_name} link back to a page already read "
                f"({url}): stopped after {len(seen)} pages"
            )
        if len(seen) >= self._max_pages:
            raise EndlessPages(
                f"GitHub's contributor pages of {full_name} go on past {self._max_pages} pages: "
                "stopped (raise github.max_pages for a larger repository)"
            )
        seen.add(url)

    async def _get(self, url: str, full_name: str, hops: int = 3) -> httpx.Response:
        if _origin(url) != self._origin:
            raise ForeignURL(
                f"GitHub answered with a link to {_origin(url)}, not {self._origin} (github.api_url): refused"
            )
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as exc:
            raise TransientGitHubError(
                f"could not reach {self._origin}: {type(exc).__name__}; check github.api_url / GITHUB_API_URL"
            ) from None
        if response.is_redirect and response.next_request is not None and hops > 0:
            # A renamed or moved repository: follow, on the same host only.
            return await self._get(str(response.next_request.url), full_name, hops - 1)
        _raise_for_status(response, full_name, self._advice())
        return response

    def _advice(self) -> _Advice:
        # A token GitHub echoes in an error body is redacted in the message made of it.
        return _Advice(token_env=None if self._token else self._token_env, secrets=[self._token] if self._token else [])


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


@dataclass(frozen=True)
class _Advice:
    """What an error message may say: the token variable to set (None when one is set), what to hide."""

    token_env: str | None
    secrets: list[str]


def _raise_for_status(response: httpx.Response, full_name: str, advice: _Advice) -> None:
    status = response.status_code
    if status < 300:
        return
    if status < 400:
        raise GitHubError(f"GitHub answered {status} for {full_name} without a usable Location")
    if status in (403, 429) and response.headers.get("x-ratelimit-remaining") == "0":
        hint = f"; set {advice.token_env} for a higher limit" if advice.token_env else ""
        raise RateLimited(f"GitHub rate limit reached; it resets {_reset_time(response)}{hint}")
    if status == 404:
        raise RepoNotFound(f"repository {full_name} not found or not accessible")
    if status >= 500:
        raise TransientGitHubError(f"GitHub answered {status} for {full_name}")
    raise GitHubError(f"GitHub answered {status} for {full_name}: {redact(_message(response), advice.secrets)}")


def _reset_time(response: httpx.Response) -> str:
    reset = response.headers.get("x-ratelimit-reset", "")
    if not reset.isdigit():
        retry_after = response.headers.get("retry-after", "")
        return f"in {wait(int(retry_after))}" if retry_after.isdigit() else "at an unknown time"
    when = datetime.fromtimestamp(int(reset), UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"at {when} (in {wait(int(reset) - time.time())})"


def wait(seconds: float) -> str:
    """A wait as people say it: ``45 s``, ``12 min``, ``3 h 05 min``."""
    if seconds < 60:
        return f"{max(0, round(seconds))} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:200]
    except ValueError:
        return response.text[:200]
