"""The CLI's warm path through the stack's gateway, against a real ``agentctl up`` stack with its own
HOME: ask, processes run, runs and status import neither Ray, Prefect nor openai and print what the
Ray path prints; approval; Ctrl-C cancels the run; concurrent CLIs stay apart; a gateway killed
mid-request (one line, exit 1, its run marked Crashed), the next call through Ray after one warning
line, and ``up`` heals it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AGENTCTL, CLIResult, base_env, run_cli
from tests.servers import FakeGitHub, FakeLLM, say, tool_call
from tests.test_gateway import _gone, _route_to_named_repo, _state, at_once
from tests.test_stack import _down, _up

REQUEST = "Give me the stars and contributors for acme/rocket"
ROUTE = tool_call("github_repo_info", {"repo": "acme/rocket"})
HEAVY = ("ray", "prefect", "openai", "mcp", "fastapi", "uvicorn")
IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
WARNED = "the stack's gateway is down"
CONFIRM = "github_repo_info"  # the stack's processes ask first: approval goes through the gateway too


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, llm_server: FakeLLM, github_server: FakeGitHub
) -> Iterator[dict[str, str]]:
    """A stack of two router actors, started with an LLM key the LLM server refuses (a request
    succeeds only with its caller's key), whose github_repo_info runs are approved first."""
    root = tmp_path_factory.mktemp("gateway-cli")
    env = {
        **base_env(root, llm_server, github_server),
        "AGENTCTL_POOL__SIZE": "2",
        "AGENTCTL_PROCESSES__CONFIRM": CONFIRM,
    }
    _up({**env, "OPENAI_API_KEY": "sk-up-time-key-not-the-callers"})
    yield env
    _down(env)


def _imports(env: dict[str, str], *args: str) -> tuple[CLIResult, set[str]]:
    """Run the CLI as ``agentctl`` would, with ``-X importtime``: its result and the top-level packages it imported."""
    command = [sys.executable, "-X", "importtime", "-m", "agentctl", *args]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    lines = proc.stderr.splitlines()
    modules = {m.group(1).split(".")[0] for line in lines if (m := IMPORTED.match(line))}
    stderr = "".join(f"{line}\n" for line in lines if not IMPORTED.match(line) and not line.startswith("import time:"))
    return CLIResult(proc.returncode, proc.stdout, stderr), modules


def test_an_ask_streams_through_the_gateway_importing_neither_ray_prefect_nor_openai(
    stack: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=250)
    llm.script("route", ROUTE)
    result, modules = _imports(stack, "ask", "--yes", REQUEST)
    assert result.code == 0, result.stderr
    assert "github_repo_info" in result.stdout and "42" in result.stdout and "250" in result.stdout
    assert WARNED not in result.stderr
    assert not modules & set(HEAVY), modules & set(HEAVY)


@pytest.mark.parametrize(
    "args",
    [
        ("processes", "run", "github_repo_info", "--param", "repo=acme/rocket", "--yes"),
        ("runs", "--limit", "3"),
        ("status",),
    ],
    ids=["processes run", "runs", "status"],
)
def test_the_other_warm_commands_import_neither_ray_prefect_nor_openai(
    stack: dict[str, str], github: FakeGitHub, args: tuple[str, ...]
) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=250)
    result, modules = _imports(stack, *args)
    assert result.code == 0, result.stderr
    assert WARNED not in result.stderr
    assert not modules & set(HEAVY), modules & set(HEAVY)


def test_runs_show_and_cancel_go_through_the_gateway(stack: dict[str, str], github: FakeGitHub) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=250)
    ran = run_cli(stack, "processes", "run", "github_repo_info", "--param", "repo=acme/rocket", "--yes")
    assert ran.code == 0, ran.stderr
    run_id = run_cli(stack, "runs", "--json", "--limit", "1").json()[0]["id"]
    shown, modules = _imports(stack, "runs", "show", run_id, "--json")
    assert shown.code == 0 and shown.json()["id"] == run_id and not modules & set(HEAVY)
    cancelled, modules = _imports(stack, "runs", "cancel", run_id)
    assert cancelled.code == 0 and "Completed" in cancelled.stdout and not modules & set(HEAVY)
    missing = run_cli(stack, "runs", "show", "00000000-0000-0000-0000-000000000000")
    assert missing.code == 1 and missing.stderr.startswith("error: ") and len(missing.stderr.splitlines()) == 1


def _masked(text: str) -> str:
    """Output with what differs between two runs of one request hidden: ids, times, run names, durations."""
    text = UUID.sub("<id>", text)
    text = re.sub(r"\b\d\d:\d\d:\d\d\b", "<time>", text)
    text = re.sub(r"\b[a-z]+-[a-z]+(-[0-9a-f]+)?\b", "<name>", text)  # Prefect's run names, adjective-animal-id
    text = re.sub(r"\bcall_\d+\b", "<call>", text)  # the model's call ids
    text = re.sub(r"\b[0-9a-f]{8}\b", "<id>", text)  # a conversation's id
    text = re.sub("─+", "─", text)  # a panel's title is as long as its run's name
    return re.sub(r"\d+\.\d+", "<n>", text)


@pytest.mark.parametrize("json_output", [True, False], ids=["--json", "rich"])
def test_the_gateway_prints_what_the_ray_path_prints(
    stack: dict[str, str], llm: FakeLLM, github: FakeGitHub, json_output: bool
) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=250)
    llm.responder = lambda body: (
        ROUTE if body["messages"][-1]["role"] != "tool" else say("acme/rocket has **42** stars")
    )
    flags = ["--json"] if json_output else []
    warm = run_cli(stack, "ask", "--yes", *flags, REQUEST)
    ray = run_cli({**stack, "AGENTCTL_GATEWAY__ENABLED": "false"}, "ask", "--yes", *flags, REQUEST)
    assert warm.code == ray.code == 0, warm.stderr + ray.stderr
    assert _masked(warm.stdout) == _masked(ray.stdout)
    assert _masked(warm.stderr) == _masked(ray.stderr)


def test_a_run_that_needs_approval_is_refused_without_a_terminal_and_nothing_runs(
    stack: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=250)
    llm.script("route", ROUTE)
    result, modules = _imports(stack, "ask", REQUEST)
    assert result.code == 2 and not modules & set(HEAVY)
    assert result.stderr.splitlines()[-1].startswith("error: github_repo_info needs approval before it runs")
    assert github.requests == []


def _asking(env: dict[str, str], llm: FakeLLM, github: FakeGitHub, *args: str) -> subprocess.Popen[str]:
    """An ``ask`` started in a session of its own; GitHub holds it once the run reaches it."""
    github.add_repo("acme/rocket", stars=42, contributors=250)
    llm.script("route", ROUTE)
    return subprocess.Popen(
        [AGENTCTL, "ask", "--yes", *args, REQUEST],
        env=env,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _newest(env: dict[str, str], expected: str) -> dict[str, Any]:
    """The newest run: once in ``expected`` state, else as last seen within 30 s (the actor records
    it after the CLI has gone: polled with a deadline)."""
    deadline = time.monotonic() + 30
    while True:
        newest: dict[str, Any] = run_cli(env, "runs", "--json", "--limit", "1").json()[0]
        if newest["state"] == expected or time.monotonic() > deadline:
            return newest
        time.sleep(0.2)


def test_ctrl_c_closes_the_stream_and_the_run_ends_cancelled(
    stack: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    gate = github.hold()
    asking = _asking(stack, llm, github)
    try:
        assert github.arrived.wait(timeout=120)
        os.killpg(asking.pid, signal.SIGINT)
        _, stderr = asking.communicate(timeout=60)
        assert _newest(stack, "Cancelled")["state"] == "Cancelled"
        status = run_cli(stack, "status", "--json").json()
        assert [a["busy"] for a in status["actors"]] == [0, 0]
    finally:
        gate.set()
        if asking.poll() is None:
            asking.kill()
    assert asking.returncode == 130 and stderr.splitlines()[-1:] == ["interrupted"], stderr


def test_concurrent_clis_stay_apart(stack: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    repos = {"acme/one": 1, "acme/two": 2, "acme/three": 3}
    for name, stars in repos.items():
        github.add_repo(name, stars=stars, contributors=1)
    llm.responder = _route_to_named_repo
    github.meet(*(f"/repos/{name}" for name in repos))  # each waits until all three are in flight
    found = at_once(lambda name: run_cli(stack, "ask", "--yes", "--json", f"stars of {name}"), list(repos))
    assert github.met
    for name, stars in repos.items():
        calls = [c for step in found[name].json()["steps"] for c in step["calls"]]
        assert [(c["result"]["full_name"], c["result"]["stars"]) for c in calls] == [(name, stars)], found[name].stderr


@pytest.fixture
def own_stack(tmp_path: Path, llm: FakeLLM, github: FakeGitHub) -> Iterator[dict[str, str]]:
    """A stack of this test's own, for killing its gateway."""
    env = base_env(tmp_path, llm, github)
    _up(env)
    yield env
    run_cli(env, "down")


def test_a_gateway_killed_mid_request_is_one_line_its_run_is_marked_and_up_heals_it(
    own_stack: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    stack = own_stack
    gate = github.hold()
    asking = _asking(stack, llm, github)
    try:
        assert github.arrived.wait(timeout=120)
        gateway = _state(stack)["gateway_pid"]
        os.kill(gateway, signal.SIGKILL)
        _, stderr = asking.communicate(timeout=60)
        # Checked while GitHub still holds the run (test_gateway_robust: it stays marked once it is released).
        runs = run_cli(stack, "runs", "--json", "--limit", "5")
    finally:
        gate.set()
        if asking.poll() is None:
            asking.kill()
    assert asking.returncode == 1, stderr
    line = stderr.splitlines()[-1]
    assert len(stderr.strip().splitlines()) == 1 and line.startswith("error: the stack's gateway went away"), stderr
    assert "marked Crashed" in line and "agentctl up" in line
    assert _gone(gateway)
    assert runs.code == 0 and WARNED in runs.stderr and len(runs.stderr.splitlines()) == 1
    assert "Crashed" in {r["state"] for r in runs.json()}

    llm.script("route", ROUTE)
    through_ray = run_cli(stack, "ask", REQUEST)
    assert through_ray.code == 0 and "42" in through_ray.stdout
    warnings = [line for line in through_ray.stdout.splitlines() if WARNED in line]  # a log line, as today's notices
    assert len(warnings) == 1 and "agentctl up restarts it" in warnings[0]

    healed = run_cli(stack, "up", timeout=240)
    assert healed.code == 0 and "already up" in healed.stdout
    llm.script("route", ROUTE)
    result, modules = _imports(stack, "ask", REQUEST)
    assert result.code == 0 and WARNED not in result.stderr and not modules & set(HEAVY)


def test_standalone_never_uses_the_gateway(stack: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=250)
    llm.script("route", ROUTE)
    result, modules = _imports(stack, "ask", "--yes", "--standalone", REQUEST)
    assert result.code == 0 and "42" in result.stdout, result.stderr
    assert "ray" in modules  # a temporary stack of its own, through Ray
