"""``agentctl ask`` end to end: the real CLI, a real local Ray cluster, a real Prefect API."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import API_KEY, GITHUB_TOKEN, run_cli
from tests.servers import FakeGitHub, FakeLLM, Reply, say, tool_call

ONE_SHOT = {"AGENTCTL_ROUTER__MAX_STEPS": "1"}


def test_repo_info_streams_logs_and_result(env: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=250)
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))

    result = run_cli(env, "ask", "Give me the stars and contributors for acme/rocket")

    assert result.code == 0, result.stderr
    assert "github_repo_info(repo='acme/rocket')" in result.stdout
    assert "acme/rocket has 42 stars" in result.stdout
    assert "acme/rocket has 250 contributors" in result.stdout
    assert "contributors  250" in result.stdout.replace("│", " ").replace("  ", "  ")
    pages = [r.path for r in github.requests if "/contributors" in r.path]
    assert len(pages) == 3


def test_json_output_is_one_document(env: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    github.add_repo("acme/rocket", stars=7, contributors=3)
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))

    result = run_cli(env, "ask", "--json", "stars for acme/rocket")

    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["route"] == "github_repo_info"
    assert doc["arguments"] == {"repo": "acme/rocket"}
    assert doc["result"] == {
        "full_name": "acme/rocket",
        "stars": 7,
        "contributors": 3,
        "url": "https://github.com/acme/rocket",
    }
    assert doc["run"]["state"] == "Completed" and doc["run"]["kind"] == "flow"
    assert doc["run"]["id"] and doc["run"]["name"]
    # A configured Prefect API: the run's page in the UI beside it, where Prefect's "View at" points.
    ui = env["PREFECT_API_URL"].removesuffix("/api")
    assert doc["run"]["url"] == f"{ui}/runs/flow-run/{doc['run']['id']}"
    assert any(f"View at {doc['run']['url']}" in line["message"] for line in doc["logs"])
    assert any("has 7 stars" in line["message"] for line in doc["logs"])
    assert doc["error"] is None
    # The shared API holds other tests' runs; the run is listed under its process (its request is top-level).
    listed = run_cli(env, "runs", "--json", "--limit", "200", "--process", "github_repo_info").json()
    assert [r["url"] for r in listed if r["id"] == doc["run"]["id"]] == [doc["run"]["url"]]


def test_run_is_recorded_in_prefect_without_secrets(env: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    github.add_repo("acme/rocket", stars=1, contributors=1)
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))
    env = {**env, "GITHUB_TOKEN": GITHUB_TOKEN}

    result = run_cli(env, "ask", "--json", "stars for acme/rocket")

    assert result.code == 0, result.stderr
    run_id = result.json()["run"]["id"]
    with httpx.Client(trust_env=False) as client:
        run = client.get(f"{env['PREFECT_API_URL']}/flow_runs/{run_id}").json()
        logs = client.post(
            f"{env['PREFECT_API_URL']}/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}}
        ).json()
    assert run["state"]["type"] == "COMPLETED"
    assert run["parameters"] == {"repo": "acme/rocket"}
    everything = json.dumps(run) + json.dumps(logs) + result.stdout + result.stderr
    assert GITHUB_TOKEN not in everything and API_KEY not in everything
    assert all(r.headers.get("authorization") == f"Bearer {GITHUB_TOKEN}" for r in github.requests)


def test_text_processing_nested_tool_choice(env: dict[str, str], llm: FakeLLM) -> None:
    llm.script("route", tool_call("text_processing", {"instruction": "Make the letter uppercase", "text": "x"}))
    llm.script("text", tool_call("UPPER", {"text": "x"}))

    result = run_cli(env, "ask", "--json", "Make the letter `x` uppercase")

    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["result"]["text"] == "X"
    assert doc["result"]["tool_uses"] == {"UPPER": 1, "LOWER": 0}
    assert doc["run"]["kind"] == "task"
    nested = llm.calls("text")[0].body
    assert "Make the letter uppercase" in json.dumps(nested["messages"])
    assert {t["function"]["name"] for t in nested["tools"]} == {"UPPER", "LOWER"}


def test_text_processing_says_when_no_tool_applies(env: dict[str, str], llm: FakeLLM) -> None:
    llm.script("route", tool_call("text_processing", {"instruction": "Reverse it", "text": "abc"}))
    llm.script("text", say("No tool can reverse text."))

    result = run_cli(env, "ask", "--json", "Reverse abc")

    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["result"]["text"] == "abc"
    assert doc["result"]["tool_uses"] == {"UPPER": 0, "LOWER": 0}
    assert "No tool can reverse text." in doc["result"]["note"]


def test_no_tool_call_is_a_chat_reply(env: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    llm.script("route", say("The capital of France is Paris."))

    result = run_cli(env, "ask", "What is the capital of France?")

    assert result.code == 0, result.stderr
    assert "The capital of France is Paris." in result.stdout
    assert github.requests == []


def test_unknown_repository_fails_with_not_found(env: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/missing"}))

    # One-shot routing: the process's failure is the request's (in steps it goes back to the model).
    result = run_cli({**env, **ONE_SHOT}, "ask", "stars for acme/missing")

    assert result.code == 1
    assert "acme/missing not found or not accessible" in result.stderr
    assert "Failed" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(github.requests) == 1  # a 404 is not retried


def test_rate_limit_is_reported_once(env: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    github.add_repo("acme/rocket", stars=1, contributors=1)
    github.rate_limit(reset_epoch=4102444800)  # 2100-01-01 00:00:00 UTC
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))

    result = run_cli({**env, **ONE_SHOT}, "ask", "stars for acme/rocket")

    assert result.code == 1
    assert "rate limit" in result.stderr and "resets at 2100-01-01 00:00 UTC" in result.stderr
    assert len(github.requests) == 1


def test_transient_errors_are_retried_by_prefect(env: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    github.add_repo("acme/rocket", stars=5, contributors=2)
    github.fail_next(502)
    github.drop_next()  # a connection that closes with no answer, then a 502
    github.fail_next(502)
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))

    result = run_cli(env, "ask", "--json", "stars for acme/rocket")

    assert result.code == 0, result.stderr
    assert result.json()["result"]["stars"] == 5
    assert [r.path for r in github.requests].count("/repos/acme/rocket") == 4


@pytest.mark.parametrize(
    "second",
    [
        tool_call("delete_everything", {}),
        tool_call("github_repo_info", {"repo": "a/b"}, ("delete_everything", {})),
        Reply(content="", finish_reason="length"),
    ],
)
def test_invalid_route_is_repaired_once_then_fails(
    env: dict[str, str], llm: FakeLLM, github: FakeGitHub, second: Reply
) -> None:
    github.add_repo("acme/rocket", stars=1, contributors=1)
    llm.script("route", tool_call("github_repo_info", {"repository": "acme/rocket"}), second)

    result = run_cli(env, "ask", "stars for acme/rocket")

    assert result.code == 2
    assert "invalid after 2 tries" in result.stderr and "router.repair_attempts" in result.stderr
    assert len(llm.calls("route")) == 2
    repair = llm.calls("route")[1].body["messages"][-1]
    assert repair["role"] == "tool" and "repo" in repair["content"]
    assert github.requests == []


def test_missing_api_key_exits_2_before_starting_anything(env: dict[str, str], llm: FakeLLM) -> None:
    env = {k: v for k, v in env.items() if k != "OPENAI_API_KEY"}

    result = run_cli(env, "ask", "anything")

    assert result.code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "OPENAI_API_KEY" in result.stderr and "llm.api_key_env" in result.stderr
    assert "Traceback" not in result.stderr
    assert llm.requests == []


def test_unreachable_llm_exits_1(env: dict[str, str], llm: FakeLLM) -> None:
    env = {**env, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}

    result = run_cli(env, "ask", "anything")

    assert result.code == 1
    assert "could not reach the LLM at http://127.0.0.1:9/v1" in result.stderr
    assert "Traceback" not in result.stderr


def test_failing_llm_exits_1(env: dict[str, str], llm: FakeLLM) -> None:
    result = run_cli(env, "ask", "anything")  # nothing scripted: the server answers 500

    assert result.code == 1
    assert "answered 500" in result.stderr


def test_wrong_api_key_exits_2_without_showing_it(env: dict[str, str], llm: FakeLLM) -> None:
    wrong = "sk-wrong-1234567890abcdef"
    result = run_cli({**env, "OPENAI_API_KEY": wrong}, "ask", "--json", "anything")

    assert result.code == 2
    assert "rejected the API key" in result.stderr + result.stdout
    assert wrong not in result.stdout + result.stderr
