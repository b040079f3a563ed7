"""Ray or Prefect that cannot start: exit 1, one line saying which and why, nothing left behind."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import base_env, run_cli
from tests.servers import FakeGitHub, FakeLLM

RUN = ("processes", "run", "text_processing", "--param", "instruction=up", "--param", "text=x")


def test_ray_that_cannot_start_is_one_line(tmp_path: Path, llm: FakeLLM, github: FakeGitHub, prefect_api: str) -> None:
    # Ray's socket paths may have 107 bytes: under this temp dir they have more, and Ray refuses to start.
    temp = tmp_path / ("t" * 80)
    temp.mkdir()
    env = {**base_env(tmp_path, llm, github), "PREFECT_API_URL": prefect_api, "TMPDIR": str(temp)}

    result = run_cli(env, *RUN)

    assert result.code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: could not start a local Ray cluster: ") and "107 bytes" in line, line
    assert list(temp.iterdir()) == []  # its temp dir is removed


def test_prefect_that_cannot_start_is_one_line(env: dict[str, str]) -> None:
    # The session's own server keeps its SQLite database here: a directory in its place stops it.
    database = Path(env["AGENTCTL_DATA_DIR"]) / "prefect" / "prefect.db"
    database.mkdir(parents=True)
    own = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}

    result = run_cli(own, *RUN)

    assert result.code == 1
    log = database.parent / "server.log"
    assert result.stderr.splitlines() == [f"error: the local Prefect server exited with code 3: see {log}"]
