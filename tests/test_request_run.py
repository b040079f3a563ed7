"""A request of several steps is one tree in Prefect: its own flow run ("agentctl request"), every
process run it makes a child of it, read back from the real Prefect API and through ``agentctl runs``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from agentctl import prefect_rest
from agentctl.events import ChatReply, Event, Failed, Paused
from agentctl.processes.deployments import tool_name
from agentctl.processes.request_run import Ending
from tests.conftest import run_cli
from tests.deployments import Deployed
from tests.servers import FakeGitHub, FakeLLM, say, tool_call

DEADLINE = 60.0  # seconds for Prefect to record the last state a run's events carry
COMPARE = "Compare the stars of PrefectHQ/prefect and ray-project/ray, and shout the winner"


def _api(env: dict[str, str], path: str) -> Any:
    with prefect_rest.client(env["PREFECT_API_URL"], timeout=30) as http:
        return http.get(path).raise_for_status().json()


def _shown_until_final(env: dict[str, str], run_id: str, children: int) -> dict[str, Any]:
    """``runs show --json`` once the run and ``children`` runs under it have final states: a task run's
    states reach the API as events, recorded a moment after the request ends."""
    deadline = time.monotonic() + DEADLINE
    while True:
        shown = run_cli(env, "runs", "show", run_id, "--json")
        assert shown.code == 0, shown.stderr
        doc: dict[str, Any] = shown.json()
        states = [child["state"] for child in doc["children"]]
        final = len(states) == children and "Running" not in states and "Pending" not in states
        if final or time.monotonic() > deadline:
            return doc
        time.sleep(0.5)  # polling the API for a condition, with a deadline


def test_a_request_of_several_calls_is_one_run_with_its_process_runs_under_it(
    env: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    github.add_repo("PrefectHQ/prefect", stars=21000, contributors=3)
    github.add_repo("ray-project/ray", stars=39000, contributors=4)
    both = tool_call(
        "github_repo_info", {"repo": "PrefectHQ/prefect"}, ("github_repo_info", {"repo": "ray-project/ray"})
    )
    llm.script("route", both)
    llm.script("step", tool_call("text_processing", {"instruction": "Make it uppercase", "text": "ray"}))
    llm.script("text", tool_call("UPPER", {"text": "ray"}))
    llm.script("step", say("RAY has more stars."))

    result = run_cli(env, "ask", "--json", "--yes", COMPARE)

    assert result.code == 0, result.stderr
    doc = result.json()
    request = doc["request_run"]
    calls = [call for step in doc["steps"] for call in step["calls"]]
    assert request["name"] == COMPARE and request["url"].endswith(f"/runs/flow-run/{request['id']}")
    shown = _shown_until_final(env, request["id"], children=3)
    assert (shown["kind"], shown["name"], shown["state"], shown["result"]) == (
        "request",
        COMPARE,
        "Completed",
        "RAY has more stars.",
    )
    assert shown["parameters"] == {"request": COMPARE}
    flow_id = _api(env, "/flow_runs/" + request["id"])["flow_id"]
    assert _api(env, f"/flows/{flow_id}")["name"] == "agentctl request"
    children = shown["children"]
    ids = [call["run"]["id"] for call in calls]  # the two calls of step 1 started at once: in either order
    assert {c["id"] for c in children[:2]} == set(ids[:2]) and children[2]["id"] == ids[2]
    assert [(c["process"], c["kind"], c["state"]) for c in children] == [
        ("github_repo_info", "flow", "Completed"),
        ("github_repo_info", "flow", "Completed"),
        ("text_processing", "task", "Completed"),
    ]
    # In Prefect itself: the flow runs stand under task runs of the request's run, the task run in it.
    first, _, text = children
    stand_in = _api(env, f"/flow_runs/{first['id']}")["parent_task_run_id"]
    assert _api(env, f"/task_runs/{stand_in}")["flow_run_id"] == request["id"]
    assert _api(env, f"/task_runs/{text['id']}")["flow_run_id"] == request["id"]


def test_runs_lists_the_request_and_not_the_runs_under_it(
    env: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    github.add_repo("octo/tiny", stars=1, contributors=1)
    llm.script("route", tool_call("github_repo_info", {"repo": "octo/tiny"}))
    llm.script("step", say("octo/tiny has 1 star."))
    asked = run_cli(env, "ask", "--json", "stars of octo/tiny")
    assert asked.code == 0, asked.stderr
    request, call = asked.json()["request_run"], asked.json()["run"]

    listed = run_cli(env, "runs", "--json", "-n", "200")
    of_process = run_cli(env, "runs", "--json", "--process", "github_repo_info", "-n", "200")

    assert listed.code == 0 and of_process.code == 0, listed.stderr + of_process.stderr
    rows = {row["id"]: row for row in listed.json()}
    assert rows[request["id"]]["kind"] == "request" and call["id"] not in rows
    # A process's runs, wherever they are, each once (the task run standing for it in the request is no row).
    assert [row["id"] for row in of_process.json()].count(call["id"]) == 1
    assert {row["kind"] for row in of_process.json()} == {"flow"}
    table = run_cli(env, "runs", "show", request["id"])
    assert "runs under it" in table.stdout and f"github_repo_info · flow run {call['name']}" in table.stdout


def test_a_request_that_fails_leaves_its_run_failed_with_the_reason(
    env: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    github.add_repo("octo/tiny", stars=1, contributors=1)
    llm.responder = lambda body: tool_call("github_repo_info", {"repo": "octo/tiny"})

    result = run_cli({**env, "AGENTCTL_ROUTER__MAX_STEPS": "2"}, "ask", "--json", "stars of octo/tiny, forever")

    assert result.code == 1
    shown = _shown_until_final(env, result.json()["request_run"]["id"], children=2)
    assert shown["state"] == "Failed" and shown["message"].startswith("the model was still calling processes")
    assert [c["state"] for c in shown["children"]] == ["Completed", "Completed"]


def test_a_one_shot_request_has_no_run_of_its_own(env: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    github.add_repo("octo/tiny", stars=1, contributors=1)
    llm.script("route", tool_call("github_repo_info", {"repo": "octo/tiny"}))

    result = run_cli({**env, "AGENTCTL_ROUTER__MAX_STEPS": "1"}, "ask", "--json", "stars of octo/tiny")

    assert result.code == 0, result.stderr
    assert "request_run" not in result.json()
    assert _api(env, f"/flow_runs/{result.json()['run']['id']}")["parent_task_run_id"] is None


def test_a_deployment_run_is_a_child_of_its_request(env: dict[str, str], llm: FakeLLM, deployed: Deployed) -> None:
    deployment = deployed.ready["quiet"]
    listed = {**env, "PREFECT_API_URL": deployed.api_url, "AGENTCTL_PROCESSES__DEPLOYMENTS": deployment.full_name}
    llm.script("route", tool_call(tool_name(deployment), {"n": 2}))
    llm.script("step", say("It ran."))

    result = run_cli(listed, "ask", "--json", "--yes", "run quiet with 2")

    assert result.code == 0, result.stderr
    shown = _shown_until_final(listed, result.json()["request_run"]["id"], children=1)
    [child] = shown["children"]
    assert (child["id"], child["kind"], child["state"]) == (result.json()["run"]["id"], "flow", "Completed")


def test_a_task_run_after_a_flow_run_in_the_same_actor_belongs_to_no_flow(
    env: dict[str, str], llm: FakeLLM, github: FakeGitHub, tmp_path: Path
) -> None:
    github.add_repo("octo/tiny", stars=1, contributors=1)
    llm.script("route", tool_call("github_repo_info", {"repo": "octo/tiny"}))
    llm.script("route", tool_call("text_processing", {"instruction": "Make it uppercase", "text": "x"}))
    llm.script("text", tool_call("UPPER", {"text": "x"}))
    requests, out = tmp_path / "requests.txt", tmp_path / "results.jsonl"
    requests.write_text("stars of octo/tiny\nmake x uppercase\n")

    one_shot = {**env, "AGENTCTL_ROUTER__MAX_STEPS": "1"}
    result = run_cli(one_shot, "batch", str(requests), "--out", str(out), "--concurrency", "1", "--yes")

    assert result.code == 0, result.stderr
    flow, text = (json.loads(line)["run"] for line in out.read_text().splitlines())
    assert (flow["kind"], text["kind"]) == ("flow", "task")
    # Its state events went through Prefect's events worker, started during the flow run.
    assert _until_recorded(env, text["id"])["flow_run_id"] is None
    assert text["id"] in {row["id"] for row in run_cli(env, "runs", "--json", "-n", "200").json()}


def _until_recorded(env: dict[str, str], task_run_id: str) -> dict[str, Any]:
    """The task run once the API has its final state (recorded from its events)."""
    deadline = time.monotonic() + DEADLINE
    while (run := _api(env, f"/task_runs/{task_run_id}"))["state_type"] != "COMPLETED":
        assert time.monotonic() < deadline, run
        time.sleep(0.2)  # polling the API for a condition, with a deadline
    return run


def _final(*events: Event, raised: BaseException | None = None) -> tuple[str, str | None]:
    """The state (type, message) a request's run ends in, after ``events`` (and ``raised``)."""
    ending = Ending()
    for event in events:
        ending.saw(event, "run-1")
    if raised is not None:
        ending.failed(raised)
    state = ending.state(["sk-secret-1"])
    return state.type.value, state.message


def test_a_requests_run_ends_as_the_request_does() -> None:
    call_failed = Failed(message="octo/ghost not found", exit_code=1, error="ProcessFailed", call_id="c1")
    assert _final(call_failed, ChatReply(text="It is gone.")) == ("COMPLETED", "answered")
    limit = Failed(message="still calling after router.max_steps = 2 steps", exit_code=1, error="StepLimit")
    assert _final(limit) == ("FAILED", "still calling after router.max_steps = 2 steps")
    assert _final(raised=RuntimeError("key sk-secret-1 refused")) == ("FAILED", "RuntimeError: key *** refused")
    assert _final() == ("CANCELLED", "the request was stopped")
    paused = Paused(messages=[], turn_from=0, step=1, calls=[], usage={})
    assert _final(paused) == ("PAUSED", "waiting for approval")
    assert Ending().saw(paused, "run-1").request_run == "run-1"  # type: ignore[union-attr]
