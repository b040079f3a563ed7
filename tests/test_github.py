"""The GitHub client against a real local server speaking GitHub's REST protocol."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from agentctl.processes.builtin.github import (
    BadRepoName,
    EndlessPages,
    ForeignURL,
    GitHub,
    GitHubError,
    RateLimited,
    RepoNotFound,
    TransientGitHubError,
    next_link,
)
from tests.servers import FakeGitHub

TOKEN = "ghp_secret_for_tests_only"


async def _count(github: GitHub, repo: str) -> int:
    return sum([n async for n in github.contributor_pages(repo)])


def run(server: FakeGitHub, coro_fn: Any, token: str | None = None) -> Any:
    async def go() -> Any:
        async with GitHub(server.url, token, timeout=5) as github:
            return await coro_fn(github)

    return asyncio.run(go())


@pytest.mark.parametrize(("total", "pages"), [(0, 1), (1, 1), (100, 1), (101, 2), (250, 3)])
def test_counts_every_contributor_across_pages(github: FakeGitHub, total: int, pages: int) -> None:
    github.add_repo("acme/rocket", stars=1, contributors=total)
    assert run(github, lambda g: _count(g, "acme/rocket")) == total
    assert len(github.requests) == pages
    assert all("per_page=100" in r.path for r in github.requests)


def test_repo_record(github: FakeGitHub) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=1)
    record = run(github, lambda g: g.repo("acme/rocket"))
    assert record["stargazers_count"] == 42


def test_not_found(github: FakeGitHub) -> None:
    with pytest.raises(RepoNotFound, match="acme/nope not found or not accessible"):
        run(github, lambda g: g.repo("acme/nope"))


def test_rate_limit_says_when_it_resets(github: FakeGitHub) -> None:
    github.rate_limit(reset_epoch=4102444800)
    with pytest.raises(RateLimited, match=r"resets at 2100-01-01 00:00 UTC \(in \d+ h \d\d min\); set GITHUB_TOKEN"):
        run(github, lambda g: g.repo("acme/rocket"))
    github.reset()
    github.fail_next(429, {"x-ratelimit-remaining": "0", "retry-after": "30"})
    with pytest.raises(RateLimited, match="in 30 s"):
        run(github, lambda g: g.repo("acme/rocket"))


def test_rate_limit_with_a_token_does_not_suggest_one(github: FakeGitHub) -> None:
    github.rate_limit(reset_epoch=int(time.time()) + 600)
    with pytest.raises(RateLimited) as caught:
        run(github, lambda g: g.repo("acme/rocket"), token=TOKEN)
    assert "GITHUB_TOKEN" not in str(caught.value)


@pytest.mark.parametrize("links", ["self", "back"])
def test_looping_links_stop_at_the_first_repeated_page(github: FakeGitHub, links: str) -> None:
    github.add_repo("acme/rocket", stars=1, contributors=150)
    github.links = links
    with pytest.raises(EndlessPages, match="link back to a page already read"):
        run(github, lambda g: _count(g, "acme/rocket"))


def test_an_error_body_that_echoes_the_token_is_redacted(github: FakeGitHub) -> None:
    github.echo_auth = True
    github.fail_next(401)
    with pytest.raises(GitHubError) as caught:
        run(github, lambda g: g.repo("acme/rocket"), token=TOKEN)
    assert "you sent Bearer ***" in str(caught.value) and TOKEN not in str(caught.value)


def test_dot_segments_never_leave_the_client(github: FakeGitHub) -> None:
    with pytest.raises(BadRepoName, match="not owner/name"):
        run(github, lambda g: g.repo("../admin"), token=TOKEN)
    assert github.requests == []


def test_server_errors_are_transient(github: FakeGitHub) -> None:
    github.fail_next(503)
    with pytest.raises(TransientGitHubError):
        run(github, lambda g: g.repo("acme/rocket"))


def test_unreachable_api_is_transient() -> None:
    async def go() -> None:
        async with GitHub("http://127.0.0.1:9", None, timeout=2) as github:
            await github.repo("a/b")

    with pytest.raises(TransientGitHubError, match="could not reach"):
        asyncio.run(go())


def test_link_to_another_host_is_refused_and_never_followed(github: FakeGitHub) -> None:
    elsewhere = FakeGitHub()
    try:
        github.add_repo("acme/rocket", stars=1, contributors=150)
        github.link_base = elsewhere.url
        with pytest.raises(ForeignURL, match="refused"):
            run(github, lambda g: _count(g, "acme/rocket"), token=TOKEN)
        assert elsewhere.requests == []
    finally:
        elsewhere.close()


def test_token_goes_only_to_the_api(github: FakeGitHub) -> None:
    github.add_repo("acme/rocket", stars=1, contributors=120)
    run(github, lambda g: _count(g, "acme/rocket"), token=TOKEN)
    assert [r.headers.get("authorization") for r in github.requests] == [f"Bearer {TOKEN}"] * 2


def test_next_link_parsing() -> None:
    header = '<https://h/x?page=2>; rel="next", <https://h/x?page=5>; rel="last"'
    assert next_link(header) == "https://h/x?page=2"
    assert next_link('<https://h/x?page=5>; rel="last"') is None
    assert next_link("") is None


def test_renamed_repository_is_followed_on_the_same_host(github: FakeGitHub) -> None:
    github.add_repo("acme/rocket-v2", stars=9, contributors=120)
    github.moved["acme/rocket"] = f"{github.url}/repos/acme/rocket-v2"
    assert run(github, lambda g: g.repo("acme/rocket"))["stargazers_count"] == 9
    assert run(github, lambda g: _count(g, "acme/rocket")) == 120


def test_redirect_to_another_host_is_refused(github: FakeGitHub) -> None:
    elsewhere = FakeGitHub()
    try:
        github.moved["acme/rocket"] = f"{elsewhere.url}/repos/acme/rocket"
        with pytest.raises(ForeignURL, match="github.api_url"):
            run(github, lambda g: g.repo("acme/rocket"), token=TOKEN)
        assert elsewhere.requests == []
    finally:
        elsewhere.close()
