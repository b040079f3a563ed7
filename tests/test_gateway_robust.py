"""A stream through the stack's gateway that survives a gateway that dies or hangs, and approval asked
on a terminal through it, against a real ``agentctl up`` stack with its own HOME.

A gateway killed mid-request: one line, exit 1, its run marked, and it stays marked once the actor is
idle (the actor stopped the request of the caller that died). A gateway that hangs mid-request (SIGSTOP):
one line once its keep-alive lines stop, its run marked, ``up`` replaces it. A gateway that takes the
connection and never answers: one warning line, then the call through Ray. On a terminal: the process
asks, y runs it, n runs nothing, through the gateway (no Ray, Prefect or openai imported).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import httpx
import pexpect
import pytest

from agentctl.events import Routed
from agentctl.stack import proctree
from tests.conftest import API_KEY, base_env, run_cli
from tests.servers import FakeGitHub, FakeLLM, tool_call
from tests.test_cli_approval import QUESTION, flow_runs_writing
from tests.test_gateway import EVENTS, _gone, _state
from tests.test_gateway_cli import HEAVY, IMPORTED, REQUEST, ROUTE, UUID, WARNED, _asking, _imports
from tests.test_stack import _down, _up

FIXTURE = Path(__file__).parent / "fixtures" / "approvals.py"
READ_TIMEOUT = "4"  # the gateway's keep-alive comes every second: a live one is never silent this long


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, llm_server: FakeLLM, github_server: FakeGitHub
) -> Iterator[dict[str, str]]:
    """A stack of one router actor with the approval fixture's process, whose CLIs count its gateway
    hung after a few seconds of silence."""
    root = tmp_path_factory.mktemp("gateway-robust")
    env = {
        **base_env(root, llm_server, github_server),
        "AGENTCTL_PROCESSES__PATHS": str(FIXTURE),
        "AGENTCTL_GATEWAY__READ_TIMEOUT": READ_TIMEOUT,
        "TERM": "xterm",
    }
    _up(env)
    yield env
    _resumed(env)
    _down(env)


@pytest.fixture
def healthy(stack: dict[str, str]) -> dict[str, str]:
    """The stack, its gateway answering (a test before may have killed or stopped it)."""
    _resumed(stack)
    if not _answers(stack):
        healed = run_cli(stack, "up", timeout=240)
        assert healed.code == 0, healed.stderr
    return stack


def _resumed(env: dict[str, str]) -> None:
    """A gateway a test stopped goes on (one it killed is left dead)."""
    pid = _state(env)["gateway_pid"]
    if pid is not None and proctree.alive(pid):
        os.kill(pid, signal.SIGCONT)


def _answers(env: dict[str, str]) -> bool:
    state = _state(env)
    token = (Path(env["AGENTCTL_DATA_DIR"]) / "gateway_token").read_text().strip()
    try:
        health = httpx.get(f"{state['gateway_url']}/v1/health", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    except httpx.HTTPError:
        return False
    return health.status_code == 200


def _idle(env: dict[str, str]) -> None:
    """Wait until the stack's actor has no request in flight (polled with a deadline: it ends a
    cancelled request's runs in Prefect first)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = run_cli(env, "status", "--json")
        # Not its exit code: with the gateway dead, status says the stack is not up.
        if [a["busy"] for a in status.json()["actors"]] == [0]:
            return
        time.sleep(0.5)
    raise AssertionError(f"the actor is still busy: {status.stdout}{status.stderr}")


def _run_states(env: dict[str, str], line: str) -> dict[str, str]:
    """The state of each Prefect run the error ``line`` names, read from the stack's Prefect API."""
    api = _state(env)["prefect_url"].rstrip("/")
    states = {}
    for run_id in UUID.findall(line):
        run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=30)
        if run.status_code == 404:
            run = httpx.get(f"{api}/task_runs/{run_id}", timeout=30)
        states[run_id] = run.json()["state"]["type"]
    return states


def _one_line(asking: subprocess.Popen[str], stderr: str) -> str:
    assert asking.returncode == 1, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    return stderr.strip()


def test_a_gateway_killed_mid_request_leaves_its_run_marked_once_the_actor_is_idle(
    healthy: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    gate = github.hold()
    asking = _asking(healthy, llm, github)
    try:
        assert github.arrived.wait(timeout=120)
        gateway = _state(healthy)["gateway_pid"]
        os.kill(gateway, signal.SIGKILL)
        _, stderr = asking.communicate(timeout=60)
        _idle(healthy)  # while GitHub still holds the run: only a request stopped in its actor ends
    finally:
        gate.set()  # GitHub answers: an actor still running the request would now complete its run
        if asking.poll() is None:
            asking.kill()
    line = _one_line(asking, stderr)
    assert line.startswith("error: the stack's gateway went away mid-request") and "agentctl up" in line
    assert "marked Crashed" in line and _gone(gateway)
    states = _run_states(healthy, line)
    assert states and set(states.values()) == {"CRASHED"}, states  # not the Completed of a request run on

    healed = run_cli(healthy, "up", timeout=240)
    assert healed.code == 0 and "already up" in healed.stdout
    llm.script("route", ROUTE)
    result, modules = _imports(healthy, "ask", "--yes", REQUEST)
    assert result.code == 0 and WARNED not in result.stderr and not modules & set(HEAVY), result.stderr


def test_a_gateway_that_hangs_mid_request_is_one_line_and_up_replaces_it(
    healthy: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    gate = github.hold()
    asking = _asking(healthy, llm, github)
    gateway = _state(healthy)["gateway_pid"]
    try:
        assert github.arrived.wait(timeout=120)
        os.kill(gateway, signal.SIGSTOP)  # alive, connected, silent: its keep-alive lines stop
        _, stderr = asking.communicate(timeout=60)
        line = _one_line(asking, stderr)
        healed = run_cli(healthy, "up", timeout=240)  # while it still hangs
        _idle(healthy)  # GitHub still holds the run: the actor stopped the request of the gateway up replaced
    finally:
        gate.set()
        if asking.poll() is None:
            asking.kill()
        if proctree.alive(gateway):
            os.kill(gateway, signal.SIGCONT)
    assert line.startswith(f"error: the stack's gateway stopped answering mid-request (nothing for {READ_TIMEOUT} s)")
    assert "marked Crashed" in line and line.endswith("agentctl up restarts it")
    assert healed.code == 0 and "already up" in healed.stdout, healed.stderr
    assert _gone(gateway) and _state(healthy)["gateway_pid"] != gateway and _answers(healthy)
    states = _run_states(healthy, line)
    assert states and set(states.values()) == {"CRASHED"}, states  # not the Completed of a request run on


def test_a_gateway_that_takes_the_connection_and_never_answers_is_one_warning_then_ray(
    healthy: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=250)
    llm.script("route", ROUTE)
    gateway = _state(healthy)["gateway_pid"]
    os.kill(gateway, signal.SIGSTOP)  # its socket still accepts connections: no answer comes
    try:
        result = run_cli(healthy, "ask", "--yes", REQUEST, timeout=120)
        status = run_cli(healthy, "runs", "--json", "--limit", "1", timeout=120)
    finally:
        os.kill(gateway, signal.SIGCONT)
    assert result.code == 0 and "42" in result.stdout and "250" in result.stdout, result.stderr
    warnings = [line for line in result.stdout.splitlines() if WARNED in line]
    assert len(warnings) == 1 and f"nothing within {READ_TIMEOUT} s" in warnings[0], result.stdout
    assert status.code == 0 and status.json()[0]["state"] == "Completed"
    assert [line for line in status.stderr.splitlines() if WARNED in line] == [status.stderr.strip()]

    # Going on, the gateway reads the request the CLI gave up on: it must not run it a second time.
    llm.script("route", ROUTE)
    warm, modules = _imports(healthy, "ask", "--yes", REQUEST)
    assert warm.code == 0 and WARNED not in warm.stderr and not modules & set(HEAVY), warm.stderr
    assert len(llm.calls("route")) == 2  # the call through Ray, then this one: none by the stale request


def _spawn(env: dict[str, str], transcript: StringIO, *args: str) -> pexpect.spawn:
    """The CLI on a terminal, as ``agentctl`` runs, reporting what it imports (-X importtime)."""
    command = [sys.executable, "-X", "importtime", "-m", "agentctl", *args]
    child = pexpect.spawn(command[0], command[1:], env=env, encoding="utf-8", timeout=90, dimensions=(50, 200))
    child.logfile_read = transcript
    return child


def _imported(transcript: str) -> set[str]:
    lines = transcript.replace("\r", "").splitlines()
    return {m.group(1).split(".")[0] for line in lines if (m := IMPORTED.match(line))}


@pytest.mark.parametrize(("answer", "code", "written"), [("y", 0, True), ("n", 1, False)])
def test_a_terminal_approves_through_the_gateway_yes_runs_and_no_runs_nothing(
    healthy: dict[str, str], tmp_path: Path, llm: FakeLLM, answer: str, code: int, written: bool
) -> None:
    mark = tmp_path / "mark.txt"
    llm.script("route", tool_call("write_mark", {"path": str(mark), "text": "asked"}))
    transcript = StringIO()
    child = _spawn(healthy, transcript, "ask", "mark the file")
    child.expect_exact("approval needed: write_mark runs with")
    child.expect(QUESTION)
    child.sendline(answer)
    child.expect("wrote" if written else "error: not approved: write_mark did not run")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == code, transcript.getvalue()[-2000:]
    assert mark.exists() is written and (not written or mark.read_text() == "asked")
    assert len(flow_runs_writing(_state(healthy)["prefect_url"], mark)) == int(written)
    [told] = llm.calls("step")  # the request resumed through the gateway: the model was told the outcome
    assert told.body["messages"][-1]["content"] == (
        json.dumps(f"wrote {mark}") if written else "Refused by the user: write_mark did not run."
    )
    assert WARNED not in transcript.getvalue() and not _imported(transcript.getvalue()) & set(HEAVY)


def test_a_quiet_stream_gets_empty_keep_alive_lines(healthy: dict[str, str], github: FakeGitHub) -> None:
    gate = github.hold()
    github.add_repo("acme/rocket", stars=42, contributors=250)
    token = (Path(healthy["AGENTCTL_DATA_DIR"]) / "gateway_token").read_text().strip()
    body = {
        "arguments": {"repo": "acme/rocket"},
        "secrets": {"OPENAI_API_KEY": API_KEY},
        "approved": {"everything": True},
    }
    url = f"{_state(healthy)['gateway_url']}/v1/processes/github_repo_info/runs"
    lines: list[str] = []
    try:
        with httpx.stream("POST", url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                lines.append(line)
                if github.arrived.is_set() and lines[-2:] == ["", ""]:
                    break  # two in a row while the run waits on GitHub: then the client goes away
    finally:
        gate.set()
    events = [EVENTS.validate_json(line) for line in lines if line]
    assert events and isinstance(events[0], Routed) and events[0].process == "github_repo_info"
