"""A secret echoed by GitHub, the LLM or a process's own code is stored nowhere: not in Prefect's
state messages and logs, not in Ray's log files, not in what agentctl prints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY, GITHUB_TOKEN, isolated_env, run_cli, start_ray_head, stop_ray_head
from tests.servers import FakeGitHub, FakeLLM, fail, tool_call
from tests.test_declare import FIXTURES


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str]]:
    """A Ray head of this module's own, whose worker logs outlive each call (a session's own cluster
    removes its temp dir when it stops): its address, temp dir and the HOME holding its token."""
    home = isolated_env(tmp_path_factory.mktemp("ray-secrets"))
    address, temp_dir = start_ray_head(home)
    yield address, Path(temp_dir), home["HOME"]
    stop_ray_head(temp_dir)


def _github_echoes_the_token(env: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> list[str]:
    github.echo_auth = True
    github.fail_next(401)
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))
    return ["ask", "--json", "stars of acme/rocket"]


def _llm_echoes_the_key(env: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> list[str]:
    llm.echo_key = True
    llm.script("route", tool_call("text_processing", {"instruction": "shout", "text": "hi"}))
    llm.script("text", fail(400, "model overloaded"))
    return ["ask", "--json", "shout hi"]


def _process_code_leaks_the_token(env: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> list[str]:
    env["AGENTCTL_PROCESSES__MODULES"] = "leaky"
    return ["processes", "run", "leaky_call", "--param", "service=billing", "--json"]


@pytest.mark.parametrize("leak", [_github_echoes_the_token, _llm_echoes_the_key, _process_code_leaks_the_token])
def test_an_echoed_secret_is_stored_nowhere(
    env: dict[str, str], llm: FakeLLM, github: FakeGitHub, ray_head: tuple[str, Path, str], leak: Any
) -> None:
    address, ray_tmp, home = ray_head
    token = str(Path(home) / ".ray" / "auth_token")
    env = {**env, "GITHUB_TOKEN": GITHUB_TOKEN, "RAY_ADDRESS": address, "RAY_AUTH_TOKEN_PATH": token}
    args = leak(env, llm, github)

    asked = run_cli(env, *args, cwd=FIXTURES)

    # A process run by name fails the call; an ask's failed call goes back to the model, which answers.
    assert asked.code == (1 if args[0] == "processes" else 0), asked.stderr
    run = asked.json()["run"]
    run_id = run["id"]
    shown = [run_cli(env, "runs", "show", run_id, *flag) for flag in ([], ["--json"])]
    assert all(s.code == 0 for s in shown), [s.stderr for s in shown]
    stored = _prefect_records(env["PREFECT_API_URL"], run_id, run["kind"])
    assert "refused" in stored or "you sent" in stored  # the error itself was stored, masked
    ray_logs = _files_text(ray_tmp, "worker-")
    assert ray_logs, "no Ray worker log found in the head's temp dir"
    for where, text in [
        ("ask", asked.stdout + asked.stderr),
        *[("runs show", s.stdout) for s in shown],
        ("Prefect API", stored),
        ("Ray logs", ray_logs),
        ("the messages sent to the LLM", json.dumps([call.body for call in llm.calls()])),
    ]:
        assert GITHUB_TOKEN not in text and API_KEY not in text, f"a secret in {where}"


def _prefect_records(api: str, run_id: str, kind: str) -> str:
    """The run, its task runs, every state they went through and their logs, as the API keeps them."""
    with httpx.Client(base_url=api, trust_env=False, timeout=10) as client:
        if kind == "task":
            tasks, texts = [client.get(f"/task_runs/{run_id}").json()], []
            logs = {"task_run_id": {"any_": [run_id]}}
        else:
            tasks = client.post("/task_runs/filter", json={"flow_runs": {"id": {"any_": [run_id]}}}).json()
            texts = [
                client.get(f"/flow_runs/{run_id}").text,
                client.get("/flow_run_states/", params={"flow_run_id": run_id}).text,
            ]
            logs = {"flow_run_id": {"any_": [run_id]}}
        texts += [
            str(tasks),
            *[client.get("/task_run_states/", params={"task_run_id": t["id"]}).text for t in tasks],
            client.post("/logs/filter", json={"logs": logs}).text,
        ]
    return "\n".join(texts)


def _files_text(root: Path, prefix: str) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob(f"{prefix}*") if p.is_file())
