"""The pool on a Ray cluster of two nodes on this machine: a head and a second node joined to it with
``ray start --address``, each with a HOME and a temp dir of its own. The user's processes live in a
directory only the CLI is told of (processes.paths, not the CLI's cwd): Ray's workers on either node
can import them only from what agentctl ships in the job's runtime_env."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import base_env, isolated_env, join_ray_node, run_cli, start_ray_head, stop_ray_head
from tests.servers import FakeGitHub, FakeLLM

WHERE = '''
import os

from agentctl import process


@process(description="Say which node runs this")
def where() -> str:
    """Name the Ray node this runs on, as its raylet's environment says, and its id."""
    import ray

    return f"{os.environ.get('NODE_LABEL', 'head')} {ray.get_runtime_context().get_node_id()}"
'''

GREET = '''
from agentctl import process


@process(description="Greet someone")
def greet(name: str) -> str:
    """Say hello."""
    return f"hello {name}"
'''


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A head and a second node (labelled by its workers' NODE_LABEL and a ``second`` resource)."""
    head = isolated_env(tmp_path_factory.mktemp("head"))
    address, head_dir = start_ray_head(head, joinable=True)
    token = str(Path(head["HOME"]) / ".ray" / "auth_token")
    second_dirs: list[str] = []
    try:
        second = {**isolated_env(tmp_path_factory.mktemp("second")), "NODE_LABEL": "second"}
        second_dirs.append(join_ray_node(address, token, second, ["second"]))
        yield {"RAY_ADDRESS": address, "RAY_AUTH_TOKEN_PATH": token}
    finally:
        for temp_dir in [*second_dirs, head_dir]:
            stop_ray_head(temp_dir)


def test_actors_on_every_node_run_code_only_the_driver_has(
    two_nodes: dict[str, str], llm: FakeLLM, github: FakeGitHub, prefect_api: str, tmp_path: Path
) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "probe.py").write_text(WHERE)
    (tmp_path / "greet.py").write_text(GREET)
    (tmp_path / "elsewhere").mkdir()  # the CLI's cwd, which Ray puts on its workers' sys.path: not there
    paths = f"{tmp_path / 'mine'},{tmp_path / 'greet.py'}"
    env = {**base_env(tmp_path, llm, github), "PREFECT_API_URL": prefect_api, **two_nodes}
    env |= {"AGENTCTL_POOL__PER_NODE": "1", "AGENTCTL_PROCESSES__PATHS": paths, "AGENTCTL_PROCESSES__MODULES": "probe"}
    cwd = tmp_path / "elsewhere"

    ran = run_cli(env, "processes", "run", "where", "--json", cwd=cwd)  # a temporary pool
    up = run_cli({**env, "AGENTCTL_POOL__PER_NODE": "2"}, "up", cwd=cwd)
    status = run_cli(env, "status", "--json", cwd=cwd)
    greeted = run_cli(env, "processes", "run", "greet", "--param", "name=node", "--json", cwd=cwd)  # on the stack
    down = run_cli(env, "down", cwd=cwd)  # the gateway is a process of its own: it does not go with the cluster

    assert ran.code == 0, ran.stderr
    record = ran.json()
    label, second = record["result"].split()
    assert label == "second"  # actor 0 sits on a node other than the driver's (the head)
    assert not [log for log in record["logs"] if log["level"] == "WARNING"]  # greet.py loaded there too
    assert up.code == 0, up.stderr
    assert status.code == 0, status.stderr
    actors = status.json()["actors"]
    assert [a["name"] for a in actors] == [f"agentctl-router-{i}" for i in range(4)]
    assert [a["alive"] for a in actors] == [True] * 4
    head = actors[1]["node"]
    assert head != second, actors
    assert [a["node"] for a in actors] == [second, head, second, head]  # two a node, in turn
    assert greeted.code == 0, greeted.stderr
    assert greeted.json()["result"] == "hello node"  # a file of processes.paths, shipped as a module
    assert down.code == 0 and "gateway" in down.stdout, down.stderr
