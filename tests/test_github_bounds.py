"""The repository-info process against hostile input and a hostile GitHub: what a user sees."""

from __future__ import annotations

import time

import pytest

from tests.conftest import GITHUB_TOKEN, run_cli
from tests.servers import FakeGitHub


def _repo_info(env: dict[str, str], repo: str) -> tuple[int, str]:
    result = run_cli(env, "processes", "run", "github_repo_info", "--param", f"repo={repo}")
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return result.code, lines[0]


@pytest.mark.parametrize("repo", ["../admin", "x/..", "../..", "./x", "a/b/c", "acme/rocket/../../admin"])
def test_repo_with_dot_segments_is_refused_before_any_request(
    env: dict[str, str], github: FakeGitHub, repo: str
) -> None:
    code, line = _repo_info({**env, "GITHUB_TOKEN": GITHUB_TOKEN}, repo)

    assert code == 2
    assert line.startswith("error: parameter repo: ") and repr(repo) in line
    assert github.requests == []


@pytest.mark.parametrize(("links", "pages"), [("self", 2), ("back", 3)])
def test_contributor_pages_that_loop_stop_with_an_error(
    env: dict[str, str], github: FakeGitHub, links: str, pages: int
) -> None:
    github.add_repo("acme/rocket", stars=1, contributors=150)
    github.links = links

    code, line = _repo_info(env, "acme/rocket")

    assert code == 1
    assert "contributor pages of acme/rocket link back to a page already read" in line
    assert len([r for r in github.requests if "/contributors" in r.path]) == pages


def test_contributor_pages_stop_at_the_page_cap(env: dict[str, str], github: FakeGitHub) -> None:
    github.add_repo("acme/rocket", stars=1, contributors=150)
    github.links = "endless"

    code, line = _repo_info({**env, "AGENTCTL_GITHUB__MAX_PAGES": "4"}, "acme/rocket")

    assert code == 1
    assert "go on past 4 pages: stopped (raise github.max_pages" in line
    assert len([r for r in github.requests if "/contributors" in r.path]) == 4


@pytest.mark.parametrize("token", [None, GITHUB_TOKEN])
def test_rate_limit_says_when_and_suggests_a_token_only_without_one(
    env: dict[str, str], github: FakeGitHub, token: str | None
) -> None:
    reset = int(time.time()) + 2 * 3600 + 5 * 60 + 20  # the CLI starts in well under 50 s
    github.rate_limit(reset_epoch=reset)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(reset))

    code, line = _repo_info({**env, **({"GITHUB_TOKEN": token} if token else {})}, "acme/rocket")

    assert code == 1
    assert f"GitHub rate limit reached; it resets at {when} (in 2 h 05 min" in line
    assert ("set GITHUB_TOKEN for a higher limit" in line) is (token is None)


def test_one_contributor_is_singular(env: dict[str, str], github: FakeGitHub) -> None:
    github.add_repo("acme/rocket", stars=1, contributors=1)

    result = run_cli(env, "processes", "run", "github_repo_info", "--param", "repo=acme/rocket", "--json")

    assert result.code == 0, result.stderr
    messages = [log["message"] for log in result.json()["logs"]]
    assert "acme/rocket has 1 star" in messages and "acme/rocket has 1 contributor" in messages
