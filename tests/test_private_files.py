"""Prefect's client telemetry follows the settings; ``open_to_others`` finds what others could read (the
tests of a one-call session and of the stack use it on what they leave)."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

from tests.conftest import AGENTCTL, base_env
from tests.servers import FakeGitHub, FakeLLM
from tests.test_declare import FIXTURES

CI_VARIABLES = (
    "CI",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "JENKINS_URL",
    "TRAVIS",
    "CIRCLECI",
    "BUILDKITE",
    "TF_BUILD",
    "CODEBUILD_BUILD_ID",
    "BITBUCKET_COMMIT",
    "TEAMCITY_VERSION",
    "DRONE",
    "SEMAPHORE",
    "APPVEYOR",
    "BUDDY",
    "CI_NAME",
)


def open_to_others(root: Path) -> list[str]:
    """Every file or directory under ``root`` (itself included) its group or others may use."""
    found = [root, *root.rglob("*")]
    return [f"{oct(p.lstat().st_mode & 0o777)} {p}" for p in found if not p.is_symlink() and p.lstat().st_mode & 0o077]


def test_prefect_telemetry_is_off_in_the_cli_when_configured_off(
    tmp_path: Path, llm: FakeLLM, github: FakeGitHub
) -> None:
    # Prefect's client telemetry starts only in a terminal and outside CI, with a notice to a new user;
    # a user module imports Prefect in the CLI process.
    env = {k: v for k, v in base_env(tmp_path, llm, github).items() if k not in (*CI_VARIABLES, "DO_NOT_TRACK")}
    env = {**env, "PREFECT_HOME": str(tmp_path / "prefect-home"), "AGENTCTL_PROCESSES__MODULES": "userflows"}

    code, shown = _in_terminal(env, "processes", "list")

    assert code == 0, shown
    assert "count_issues" in shown and "telemetry" not in shown.lower()
    assert not (tmp_path / "prefect-home" / ".sdk_telemetry" / "notice_shown").exists()


def _in_terminal(env: dict[str, str], *args: str) -> tuple[int, str]:
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [AGENTCTL, *args], env=env, cwd=FIXTURES, stdin=follower, stdout=follower, stderr=follower
        )
        os.close(follower)
        output = b""
        while True:  # read the terminal until the program closes it
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the other end is closed
                break
            if not chunk:
                break
            output += chunk
        return proc.wait(timeout=60), output.decode(errors="replace")
    finally:
        os.close(leader)
