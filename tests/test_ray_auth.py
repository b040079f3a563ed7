"""Ray on a fresh machine: a user's own token-auth cluster at the address Ray prints, the one line
when it cannot be joined. (``up`` on a HOME with no ``~/.ray`` is tested in test_stack.py, a one-call
session's private Ray temp dir in test_cli_lifecycle.py.)

Only loopback addresses: the user's cluster is a head on 127.0.0.2, which agentctl joins as any
explicit address (its auth decision no longer looks at how the address is spelled)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.stack.prefect_server import free_port
from tests.conftest import base_env, run_cli, start_ray_head, stop_ray_head
from tests.servers import FakeGitHub, FakeLLM
from tests.test_stack import REQUEST, ROUTE


@pytest.fixture(scope="module")
def users_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A user's own ``ray start`` head on 127.0.0.2 with token auth on: its address and the HOME
    holding its token."""
    from tests.conftest import isolated_env

    env = isolated_env(tmp_path_factory.mktemp("ray-user"))
    address, temp_dir = start_ray_head(env, ip="127.0.0.2")
    yield address, env["HOME"]
    stop_ray_head(temp_dir)


def test_a_users_cluster_at_the_address_ray_prints_serves_asks(
    tmp_path: Path, llm: FakeLLM, github: FakeGitHub, prefect_api: str, users_cluster: tuple[str, str]
) -> None:
    address, home = users_cluster
    env = {**base_env(tmp_path, llm, github), "HOME": home, "RAY_ADDRESS": address, "PREFECT_API_URL": prefect_api}
    github.add_repo("acme/rocket", stars=42, contributors=250)
    llm.script("route", ROUTE)
    asked = run_cli(env, "ask", "--json", REQUEST)
    assert asked.code == 0, asked.stderr
    assert asked.json()["run"]["state"] == "Completed"


def _wrong_token(home: Path) -> None:
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("0" * 64)


@pytest.mark.parametrize(
    ("case", "fix"),
    [
        ("no token", r"no Ray auth token in \S+/\.ray/auth_token: .*RAY_AUTH_TOKEN_PATH.*RAY_AUTH_MODE=disabled"),
        (
            "wrong token",
            r"Ray at 127\.0\.0\.2:\d+ refused the auth token in \S+/\.ray/auth_token: .*RAY_AUTH_TOKEN_PATH",
        ),
        ("nothing listening", r"no Ray cluster answers at 127\.0\.0\.2:\d+: start it .*RAY_ADDRESS"),
    ],
)
def test_a_cluster_that_cannot_be_joined_is_one_line_naming_the_fix(
    case: str,
    fix: str,
    tmp_path: Path,
    llm: FakeLLM,
    github: FakeGitHub,
    prefect_api: str,
    users_cluster: tuple[str, str],
) -> None:
    address = users_cluster[0] if case != "nothing listening" else f"127.0.0.2:{free_port()}"
    env = {**base_env(tmp_path, llm, github), "RAY_ADDRESS": address, "PREFECT_API_URL": prefect_api}
    if case == "wrong token":
        _wrong_token(Path(env["HOME"]))
    if case == "nothing listening":
        env["HOME"] = users_cluster[1]  # a good token: only the address is wrong
    asked = run_cli(env, "ask", REQUEST, timeout=90)  # Ray's own retries would take 20 s to minutes
    assert asked.code == 1
    assert asked.stdout == ""
    lines = asked.stderr.splitlines()
    assert len(lines) == 1 and re.search(fix, lines[0]), asked.stderr
    assert not llm.requests
