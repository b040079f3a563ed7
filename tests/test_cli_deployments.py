"""Deployment runs through the CLI: --detach, Ctrl-C while following, runs cancel.

The runs are executed by the real ``prefect worker`` of the ``deployed`` fixture; the CLI lists
the deployment it routes to from the shared Prefect API (``processes.deployments``), and ``--yes``
approves the run, since no terminal is there to ask.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from uuid import uuid4

from agentctl import prefect_rest
from agentctl.processes.deployment_source import Deployment
from agentctl.processes.deployments import tool_name
from tests.conftest import AGENTCTL, base_env, run_cli
from tests.deployments import Deployed
from tests.servers import FakeGitHub, FakeLLM, tool_call

DEADLINE = 180.0  # seconds before a run that should move counts as stuck


def _api_env(tmp_path: Path, llm: FakeLLM, github: FakeGitHub, deployed: Deployed) -> dict[str, str]:
    return {**base_env(tmp_path, llm, github), "PREFECT_API_URL": deployed.api_url}


def _scheduled_run(deployed: Deployed) -> str:
    """A flow run of the deployment whose pool has no worker: it stays Scheduled."""
    deployment_id = deployed.idle["quiet"].id
    with prefect_rest.client(deployed.api_url, timeout=30) as http:
        response = http.post(f"/deployments/{deployment_id}/create_flow_run", json={"tags": ["agentctl"]})
        return str(response.raise_for_status().json()["id"])


def _state(deployed: Deployed, run_id: str) -> str:
    with prefect_rest.client(deployed.api_url, timeout=30) as http:
        return str(http.get(f"/flow_runs/{run_id}").raise_for_status().json()["state"]["type"])


def _until_state(deployed: Deployed, run_id: str, wanted: str) -> str:
    deadline = time.monotonic() + DEADLINE
    while (state := _state(deployed, run_id)) != wanted and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the API for a condition, with a deadline
    return state


def test_detach_refuses_a_process_that_is_not_a_deployment(tmp_path: Path, llm: FakeLLM, github: FakeGitHub) -> None:
    result = run_cli(base_env(tmp_path, llm, github), "processes", "run", "text_processing", "-p", "instruction=x",
                     "-p", "text=y", "--detach")  # fmt: skip
    assert (result.code, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "error: --detach needs a deployment process; text_processing is a task run in a router actor, "
        "which ends with the call: run it without --detach"
    ]


def test_runs_cancel_a_deployment_run_and_an_unknown_id(
    tmp_path: Path, llm: FakeLLM, github: FakeGitHub, deployed: Deployed
) -> None:
    env, run_id = _api_env(tmp_path, llm, github, deployed), _scheduled_run(deployed)
    done = run_cli(env, "runs", "cancel", run_id, "--json")
    assert done.code == 0, done.stderr
    assert {k: done.json()[k] for k in ("id", "state", "cancelled")} == {
        "id": run_id, "state": "Cancelled", "cancelled": True
    }  # fmt: skip
    assert _state(deployed, run_id) == "CANCELLED"
    unknown = str(uuid4())
    missing = run_cli(env, "runs", "cancel", unknown)
    assert (missing.code, missing.stdout) == (2, "")
    assert missing.stderr.splitlines() == [
        f"error: no run {unknown} in the Prefect API at {deployed.api_url}: list runs with agentctl runs"
    ]


def _listed(env: dict[str, str], deployment: Deployment) -> tuple[dict[str, str], str]:
    """``env`` with the deployment listed (``processes.deployments``), and the tool name the LLM calls it by."""
    return {**env, "AGENTCTL_PROCESSES__DEPLOYMENTS": deployment.full_name}, tool_name(deployment)


def test_ask_detach_prints_the_run_at_once_and_the_run_goes_on(env: dict[str, str], llm: FakeLLM,
                                                               deployed: Deployed) -> None:  # fmt: skip
    listed, name = _listed(env, deployed.ready["quiet"])
    llm.script("route", tool_call(name, {"n": 2}))
    result = run_cli(listed, "ask", "--json", "--detach", "--yes", "run quiet with 2")
    assert result.code == 0, result.stderr
    run = result.json()["run"]
    assert run["id"] and run["url"].endswith(f"/runs/flow-run/{run['id']}") and result.json()["result"] is None
    assert f"agentctl runs cancel {run['id']}" in result.stderr
    assert _until_state(deployed, run["id"], "COMPLETED") == "COMPLETED"  # its worker carried it on


def test_ctrl_c_while_following_leaves_the_run_and_names_runs_cancel(
    env: dict[str, str], llm: FakeLLM, deployed: Deployed, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    listed, name = _listed(env, deployed.ready["held"])
    command = [AGENTCTL, "processes", "run", name, "-p", f"gate={gate}", "--yes"]
    proc = subprocess.Popen(command, env=listed, start_new_session=True, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True).start()
    try:
        seen = [lines.get(timeout=DEADLINE)]
        while "waiting on the gate" not in seen[-1]:
            seen.append(lines.get(timeout=DEADLINE))
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        proc.wait(timeout=60)
        stderr = proc.stderr.read() if proc.stderr else ""
        started = next(line for line in seen if line.startswith("⇢ flow run"))  # "⇢ flow run NAME (ID) on pool P"
        run_id = started.split("(")[1].split(")")[0]
        assert proc.returncode == 130
        assert f"goes on in its worker; to cancel it: agentctl runs cancel {run_id}" in stderr
        assert _state(deployed, run_id) == "RUNNING"  # not cancelled by the interrupt
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        with gate.open("w") as fifo:  # let the run end, so the worker is free for the next test
            fifo.write("done")
