"""Ray on a fresh machine: a HOME with no ``~/.ray``, a user's own token-auth cluster at the address
Ray prints, the one line when it cannot be joined, and a session's Ray kept in a private temp dir.

Only loopback addresses: the user's cluster is a head on 127.0.0.2, which agentctl joins as any
explicit address (its auth decision no longer looks at how the address is spelled)."""

from __future__ import annotations

import re
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agentctl.prefect_api import free_port
from tests.conftest import AGENTCTL, base_env, run_cli, start_ray_head, stop_ray_head
from tests.servers import FakeGitHub, FakeLLM, tool_call
from tests.test_stack import REQUEST, ROUTE, _down, _state, _status, _up


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_up_status_ask_down_work_on_a_home_without_ray(tmp_path: Path, llm: FakeLLM, github: FakeGitHub) -> None:
    env = base_env(tmp_path, llm, github)
    token = Path(env["HOME"]) / ".ray" / "auth_token"
    assert not token.parent.exists()

    _up(env)
    try:
        assert _mode(token) == 0o600 and len(token.read_text()) == 64
        # Ray makes its own tree 0777: the directory around it keeps Ray's logs the user's alone.
        assert _mode(Path(_state(env)["ray_temp_dir"]).parent) == 0o700
        assert _status(env)["exit_code"] == 0
        github.add_repo("acme/rocket", stars=42, contributors=250)
        llm.script("route", ROUTE)
        asked = run_cli(env, "ask", "--json", REQUEST)
        assert asked.code == 0, asked.stderr
        assert asked.json()["run"]["state"] == "Completed" and "not using the stack" not in asked.stderr
    finally:
        _down(env)


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


def test_a_sessions_ray_keeps_to_a_private_temp_dir_and_removes_it(
    tmp_path: Path, llm: FakeLLM, github: FakeGitHub
) -> None:
    env = base_env(tmp_path, llm, github)
    github.add_repo("acme/rocket", stars=3, contributors=1)
    gate = github.hold()
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))
    proc = subprocess.Popen([AGENTCTL, "ask", REQUEST], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert github.arrived.wait(timeout=120), "the run never reached GitHub"
        temp_dirs = _ray_temp_dirs(proc.pid)
    finally:
        gate.set()
        proc.wait(timeout=120)
    assert proc.returncode == 0
    assert len(temp_dirs) == 1, temp_dirs
    private = Path(temp_dirs.pop()).parent
    assert private.parent == Path(tempfile.gettempdir()) and private.name.startswith("agentctl-ray-")
    assert not private.exists(), "the session leaves its Ray temp dir behind"
    assert _mode(Path(env["HOME"]) / ".ray" / "auth_token") == 0o600


def _ray_temp_dirs(pid: int) -> set[str]:
    """The temp dirs the Ray daemons under ``pid`` name on their command lines; each in a 0700 one."""
    found = set()
    for child in psutil.Process(pid).children(recursive=True):
        for match in re.finditer(r"(/\S+?)/session_\d{4}-", " ".join(child.cmdline())):
            found.add(match.group(1))
    for path in found:
        assert _mode(Path(path).parent) == 0o700, path
    return found
