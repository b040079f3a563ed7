"""Routing from the command line: --dry-run, --verbose usage, json_schema mode, and agentctl eval."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import run_cli
from tests.servers import FOLLOW_UP, FakeGitHub, FakeLLM, Reply, answer, say, tool_call

# Nothing listens here: a dry run or an eval that tried to use them would fail.
NOWHERE = {"RAY_ADDRESS": "127.0.0.1:1", "PREFECT_API_URL": "http://127.0.0.1:1/api"}


def test_dry_run_shows_route_reason_and_policy_and_runs_nothing(
    env: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    llm.script(
        "route",
        Reply(
            tool_calls=tool_call("github_repo_info", {"repo": "acme/rocket"}).tool_calls,
            content="Stars and contributors are repository facts.",
        ),
    )

    result = run_cli({**env, **NOWHERE}, "ask", "--dry-run", "--json", "stars for acme/rocket")

    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["dry_run"] is True and doc["route"] == "github_repo_info"
    assert doc["arguments"] == {"repo": "acme/rocket"}
    assert doc["reason"] == "Stars and contributors are repository facts."
    assert doc["policy"]["llm"] == {"timeout": 60.0, "max_retries": 0, "repair_attempts": 1}
    assert doc["policy"]["worst_case_routing_requests"] == 2
    assert "github.retries" in doc["policy"]["note"]
    assert doc["result"] is None and doc["run"] is None
    assert doc["usage"]["requests"] == 1
    assert github.requests == []


def test_dry_run_rich_output(env: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))

    budget = {"AGENTCTL_LLM__MAX_RETRIES": "2", "AGENTCTL_ROUTER__REPAIR_ATTEMPTS": "2"}
    result = run_cli({**env, **NOWHERE, **budget}, "ask", "--dry-run", "stars for acme/rocket")

    assert result.code == 0, result.stderr
    assert "github_repo_info(repo='acme/rocket')" in result.stdout
    assert "max_retries=2, repair_attempts=2 (at most 9 routing requests)" in result.stdout
    assert "prefect: retries=0" in result.stdout and "dry run: nothing ran" in result.stdout
    assert github.requests == []


def test_dry_run_of_an_invalid_route_exits_2(env: dict[str, str], llm: FakeLLM) -> None:
    llm.script("route", tool_call("github_repo_info", {}), tool_call("github_repo_info", {}))

    result = run_cli({**env, **NOWHERE}, "ask", "--dry-run", "stars")

    assert result.code == 2
    assert "invalid after 2 tries" in result.stderr and "repo" in result.stderr


def test_verbose_counts_nested_calls(env: dict[str, str], llm: FakeLLM) -> None:
    llm.script("route", tool_call("text_processing", {"instruction": "uppercase", "text": "x"}))
    llm.script("text", tool_call("UPPER", {"text": "x"}))

    result = run_cli(env, "ask", "--verbose", "Make x uppercase")

    assert result.code == 0, result.stderr
    assert "text_processing · task run" in result.stdout
    # The routing call, the task's own call and the answer after the result.
    assert "tokens: 45 (30 prompt + 15 completion) in 3 LLM requests" in result.stderr


def test_verbose_prints_tokens(env: dict[str, str], llm: FakeLLM) -> None:
    llm.script("route", say("Paris."))

    result = run_cli({**env, **NOWHERE}, "ask", "--dry-run", "--verbose", "capital of France?")

    assert result.code == 0, result.stderr
    assert "tokens: 15 (10 prompt + 5 completion) in 1 LLM request" in result.stderr


def test_json_schema_mode_end_to_end_without_tool_support(env: dict[str, str], llm: FakeLLM) -> None:
    llm.supports_tools = False
    llm.script(
        "route",
        answer(
            {"process": "text_processing", "arguments": {"instruction": "uppercase", "text": "x"}, "reason": "text"}
        ),
    )
    llm.script("text", Reply(content='{"calls": [{"tool": "UPPER", "text": "x"}], "note": ""}'))

    result = run_cli({**env, "AGENTCTL_LLM__MODE": "json_schema"}, "ask", "--json", "Make x uppercase")

    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["route"] == "text_processing" and doc["result"]["text"] == "X"
    # --json always carries usage, the text-processing task's nested call and the answer's included.
    counts = {k: doc["usage"][k] for k in ("requests", "prompt_tokens", "completion_tokens", "total_tokens")}
    assert counts == {"requests": 3, "prompt_tokens": 30, "completion_tokens": 15, "total_tokens": 45}
    assert doc["usage"]["cost"] is None  # no llm.prices
    assert doc["answer"] == FOLLOW_UP  # the "none" choice's reply, after the result went back as a message
    assert llm.calls()[-1].body["messages"][-1]["content"].startswith("Result of text_processing (step-1): ")
    assert all("tools" not in call.body for call in llm.calls())


CASES = """
[[case]]
prompt = "stars of acme/rocket"
process = "github_repo_info"
arguments = { repo = "acme/rocket" }

[[case]]
prompt = "stars of acme/engine"
process = "github_repo_info"
arguments = { repo = "acme/engine" }

[[case]]
prompt = "uppercase x"
process = "text_processing"

[[case]]
prompt = "capital of France?"
process = "none"
"""


def scripted_models(body: dict[str, Any]) -> Reply:
    """'good' routes every case right; 'sloppy' gets the repository of the second case wrong."""
    prompt = body["messages"][-1]["content"]
    if "acme/" in prompt:
        repo = prompt.split()[-1]
        return tool_call(
            "github_repo_info",
            {"repo": "acme/wrong" if body["model"] == "sloppy" and repo.endswith("engine") else repo},
        )
    if "uppercase" in prompt:
        return tool_call("text_processing", {"instruction": "uppercase", "text": "x"})
    return say("Paris.")


def test_eval_compares_models(env: dict[str, str], llm: FakeLLM, github: FakeGitHub, tmp_path: Path) -> None:
    cases = tmp_path / "cases.toml"
    cases.write_text(CASES)
    llm.responder = scripted_models

    result = run_cli(
        {**env, "PREFECT_API_URL": NOWHERE["PREFECT_API_URL"], "AGENTCTL_POOL__SIZE": "2"},
        "eval",
        str(cases),
        "--models",
        "good,sloppy",
        "--json",
    )

    assert result.code == 0, result.stderr
    models = result.json()["models"]
    assert models["good"]["accuracy"] == 1.0 and models["good"]["argument_accuracy"] == 1.0
    assert models["sloppy"]["accuracy"] == 1.0 and models["sloppy"]["argument_accuracy"] == 0.5
    assert models["good"]["tokens"]["total_tokens"] == 4 * 15
    assert models["good"]["failures"] == []
    [failure] = models["sloppy"]["failures"]
    assert failure["prompt"] == "stars of acme/engine" and failure["got"]["arguments"] == {"repo": "acme/wrong"}
    assert len(llm.calls()) == 8
    assert github.requests == []


def test_eval_min_accuracy_and_rich_output(env: dict[str, str], llm: FakeLLM, tmp_path: Path) -> None:
    cases = tmp_path / "cases.toml"
    cases.write_text(CASES)
    llm.responder = lambda body: Reply(content="I would rather chat.", delay=0.2)  # a slow model: calls overlap

    result = run_cli(
        {**env, "AGENTCTL_POOL__SIZE": "2"}, "eval", str(cases), "--min-accuracy", "0.9", "--concurrency", "1"
    )

    assert result.code == 1
    assert "25%" in result.stdout and "failing cases" in result.stdout
    assert all(f"{p} s" in result.stdout for p in ("p50", "p90", "p99"))
    assert len(llm.calls()) == 4 and llm.most_in_flight == 1


def test_eval_bad_case_file_exits_2(env: dict[str, str], tmp_path: Path) -> None:
    cases = tmp_path / "cases.toml"
    cases.write_text('[[case]]\nprompt = "x"\n')

    result = run_cli(env, "eval", str(cases))

    assert result.code == 2
    assert "case 1: process: Field required" in result.stderr


def test_starter_case_file_loads() -> None:
    from agentctl.calls.evaluation import load_cases

    cases = load_cases(Path(__file__).parent.parent / "evals" / "builtins.toml")
    assert {c.process for c in cases} == {"github_repo_info", "text_processing", "none"}


def test_eval_latency_percentiles() -> None:
    from agentctl.calls.evaluation import Case, Outcome, summarize

    case = Case(prompt="x", process="none")
    outcomes = [Outcome(case=case, model="m", latency=float(s)) for s in range(1, 102)]

    assert summarize(outcomes)["m"].model_dump()["latency"] == {"p50": 51.0, "p90": 91.0, "p99": 100.0}
