"""Agentic requests through the CLI, on the real Ray and Prefect: several calls at once, their results
back to the model, the step limit, a failed call retried, the same call failing twice."""

from __future__ import annotations

import json

from tests.conftest import run_cli
from tests.servers import FakeGitHub, FakeLLM, say, tool_call

COMPARE = "Compare the stars of PrefectHQ/prefect and ray-project/ray"


def test_two_calls_in_one_reply_run_at_once_and_the_answer_uses_both_results(
    env: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    github.add_repo("PrefectHQ/prefect", stars=21000, contributors=3)
    github.add_repo("ray-project/ray", stars=39000, contributors=4)
    # Each call's first GitHub request waits until the other's has arrived: only concurrent calls meet.
    github.meet("/repos/PrefectHQ/prefect", "/repos/ray-project/ray")
    both = tool_call(
        "github_repo_info", {"repo": "PrefectHQ/prefect"}, ("github_repo_info", {"repo": "ray-project/ray"})
    )
    llm.script("route", both)
    llm.script("step", say("ray-project/ray has more stars: 39000 against 21000."))

    result = run_cli(env, "ask", "--json", COMPARE)

    assert result.code == 0, result.stderr
    assert github.met
    assert result.json()["answer"] == "ray-project/ray has more stars: 39000 against 21000."
    [answer_request] = llm.calls("step")
    *_, called, first, second = answer_request.body["messages"]
    assert [first["tool_call_id"], second["tool_call_id"]] == [c["id"] for c in called["tool_calls"]]
    sent = [json.loads(m["content"]) for m in (first, second)]
    assert [(r["full_name"], r["stars"]) for r in sent] == [("PrefectHQ/prefect", 21000), ("ray-project/ray", 39000)]


def test_a_model_that_never_stops_calling_ends_at_the_step_limit(
    env: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    github.add_repo("octo/tiny", stars=1, contributors=1)
    llm.responder = lambda body: tool_call("github_repo_info", {"repo": "octo/tiny"})

    result = run_cli({**env, "AGENTCTL_ROUTER__MAX_STEPS": "2"}, "ask", "stars of octo/tiny, forever")

    assert result.code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: the model was still calling processes after router.max_steps = 2 steps: "
        "raise router.max_steps, or ask for less at once"
    )
    assert len(llm.calls()) == 2 and "Traceback" not in result.stderr


def test_a_failed_call_is_retried_with_other_arguments_and_the_same_call_failing_twice_ends_the_request(
    env: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    github.add_repo("octo/tiny", stars=1, contributors=1)
    ghost = tool_call("github_repo_info", {"repo": "octo/ghost"})
    llm.script("route", ghost)
    llm.script("step", tool_call("github_repo_info", {"repo": "octo/tiny"}), ghost)

    result = run_cli(env, "ask", "--json", "stars of octo/ghost, or else octo/tiny")

    assert result.code == 1, result.stderr
    error = result.json()["error"]
    assert error["message"].startswith("github_repo_info failed twice with the same arguments (")
    assert error["message"].endswith("): the request ends") and error["type"] == "RepeatedFailure"
    retried, repeated = llm.calls("step")
    failure = retried.body["messages"][-1]
    assert failure["role"] == "tool" and failure["content"].startswith("Error: ")
    assert "octo/ghost not found or not accessible" in failure["content"]
    assert json.loads(repeated.body["messages"][-1]["content"])["full_name"] == "octo/tiny"
    assert len(llm.calls()) == 3
