"""The router against a real local OpenAI-compatible server, through the real openai client."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl import llm as llm_module
from agentctl import runtime
from agentctl.config import Settings
from agentctl.errors import LLMError, RoutingError, UsageError
from agentctl.events import ChatReply
from agentctl.processes.builtin import builtin_registry
from agentctl.processes.discovery import discover
from agentctl.processes.python_source import PythonSource
from agentctl.processes.registry import Registry, from_signature
from agentctl.routing import router
from tests.conftest import API_KEY
from tests.servers import FakeLLM, fail, say, tool_call
from tests.test_cli_processes import generated_module
from tests.turns import call_turn


@pytest.fixture
def configured(llm: FakeLLM, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeLLM]:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    runtime.install(
        Settings.model_validate(
            {"llm": {"base_url": f"{llm.url}/v1", "max_retries": 0, "timeout": 10}, "data_dir": str(tmp_path)}
        )
    )
    yield llm
    runtime.install(Settings())


def route(
    request: str,
    registry: Registry | None = None,
    repairs: int = 1,
    strict: bool = True,
    max_tools: int = 32,
    mode: router.Mode = "tools",
) -> router.Route | ChatReply:
    return asyncio.run(
        router.route(
            request,
            registry or builtin_registry(),
            installed_model(),
            repair_attempts=repairs,
            strict=strict,
            max_tools=max_tools,
            mode=mode,
        )
    )


def installed_model() -> llm_module.ChatModel:
    """A chat model of the settings the test installed."""
    return llm_module.ChatModel.of(runtime.settings(), os.environ, llm_module.Clients())


def test_valid_tool_call_becomes_a_route(configured: FakeLLM) -> None:
    configured.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))

    decision = route("stars of acme/rocket")

    assert isinstance(decision, router.Route)
    assert decision.process.name == "github_repo_info"
    assert decision.arguments == {"repo": "acme/rocket"}
    sent = configured.calls("route")[0].body
    assert sent["messages"][-1] == {"role": "user", "content": "stars of acme/rocket"}
    tools = {t["function"]["name"]: t["function"] for t in sent["tools"]}
    assert set(tools) == {"github_repo_info", "text_processing"}
    assert tools["github_repo_info"]["strict"] is True
    assert tools["github_repo_info"]["parameters"]["additionalProperties"] is False


def test_a_conversations_earlier_turns_go_between_the_system_message_and_the_request(configured: FakeLLM) -> None:
    configured.script("route", tool_call("github_repo_info", {"repo": "octo/tiny"}))
    earlier = call_turn("stars of acme/rocket", "github_repo_info", {"repo": "acme/rocket"}, {"stars": 42}, 4000)

    decision = asyncio.run(
        router.route("and for octo/tiny?", builtin_registry(), installed_model(), history=earlier.messages)
    )

    assert isinstance(decision, router.Route) and decision.arguments == {"repo": "octo/tiny"}
    system, *between, last = configured.calls("route")[0].body["messages"]
    assert system["role"] == "system" and last == {"role": "user", "content": "and for octo/tiny?"}
    assert between == json.loads(json.dumps(earlier.messages))


def test_no_tool_call_is_a_chat_reply(configured: FakeLLM) -> None:
    configured.script("route", say("Paris."))
    assert route("capital of France?") == ChatReply(text="Paris.")


def test_unknown_process_is_repaired(configured: FakeLLM) -> None:
    configured.script("route", tool_call("rm_rf", {}), tool_call("github_repo_info", {"repo": "a/b"}))

    decision = route("stars of a/b")

    assert isinstance(decision, router.Route) and decision.arguments == {"repo": "a/b"}
    feedback = configured.calls("route")[1].body["messages"][-1]
    assert feedback["role"] == "tool" and "no tool named 'rm_rf'" in feedback["content"]


@pytest.mark.parametrize("arguments", ['{"repo": ', '{"repo": 5}', "{}", '{"repo": "a/b", "extra": 1}', '["a/b"]'])
def test_invalid_arguments_fail_after_one_repair(configured: FakeLLM, arguments: str) -> None:
    configured.script("route", tool_call("github_repo_info", arguments), tool_call("github_repo_info", arguments))

    with pytest.raises(RoutingError, match="invalid after 2 tries"):
        route("stars")

    assert len(configured.calls("route")) == 2


def test_repair_attempts_are_configurable(configured: FakeLLM) -> None:
    configured.script("route", tool_call("nope", {}))
    with pytest.raises(RoutingError):
        route("x", repairs=0)
    assert len(configured.calls("route")) == 1


def test_optional_parameters_accept_null_in_strict_mode(configured: FakeLLM) -> None:
    def count(repo: str, label: str = "bug") -> int:
        """Count issues."""
        return 0

    registry = Registry([from_signature(count, name="count", source=PythonSource("flow", "x:y"))])
    configured.script("route", tool_call("count", {"repo": "a/b", "label": None}))

    decision = route("count bugs", registry)

    assert isinstance(decision, router.Route) and decision.arguments == {"repo": "a/b", "label": "bug"}
    schema = configured.calls("route")[0].body["tools"][0]["function"]["parameters"]
    assert schema["required"] == ["repo", "label"]
    assert {"type": "null"} in schema["properties"]["label"]["anyOf"]


def test_non_strict_schema_keeps_defaults(configured: FakeLLM) -> None:
    configured.script("route", say("ok"))
    route("x", strict=False)
    function = configured.calls("route")[0].body["tools"][0]["function"]
    assert "strict" not in function


def test_llm_errors_are_translated(configured: FakeLLM) -> None:
    configured.script("route", fail(500))
    with pytest.raises(LLMError, match="answered 500"):
        route("x")
    configured.script("route", fail(404, "model not found"))
    with pytest.raises(UsageError, match="does not know model"):
        route("x")


def test_unreachable_llm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    runtime.install(Settings.model_validate({"llm": {"base_url": "http://127.0.0.1:9/v1", "max_retries": 0}}))
    try:
        with pytest.raises(LLMError, match="could not reach the LLM at http://127.0.0.1:9/v1"):
            route("x")
    finally:
        runtime.install(Settings())


def test_azure_provider_uses_deployment_path_and_api_key_header(llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", API_KEY)
    runtime.install(
        Settings.model_validate(
            {
                "llm": {
                    "provider": "azure",
                    "azure_endpoint": llm.url,
                    "azure_deployment": "routing",
                    "api_version": "2024-10-21",
                    "max_retries": 0,
                }
            }
        )
    )
    try:
        llm.script("route", say("hello"))
        message = asyncio.run(installed_model().chat([{"role": "user", "content": "hi"}], tools=None))
    finally:
        runtime.install(Settings())
    assert message.content == "hello"
    request = llm.calls()[0]
    assert request.path.startswith("/openai/deployments/routing/chat/completions?api-version=2024-10-21")
    assert request.headers["api-key"] == API_KEY
    assert json.dumps(request.body).count(API_KEY) == 0


@pytest.fixture
def large_registry(tmp_path: Path) -> Registry:
    module = tmp_path / "many.py"
    module.write_text(generated_module(200))
    found = discover(Settings.model_validate({"processes": {"paths": [str(module)]}}))
    assert found.problems == [] and len(found.registry) == 202
    return found.registry


def test_large_registry_offers_a_shortlist(configured: FakeLLM, large_registry: Registry) -> None:
    configured.script("route", tool_call("report_137", {"account": "acme", "quarter": 2}))

    decision = route("the quarterly report about topic137 for acme", large_registry, max_tools=32)

    offered = [t["function"]["name"] for t in configured.calls("route")[0].body["tools"]]
    assert len(offered) == 32 and offered[0] == "report_137"
    assert isinstance(decision, router.Route) and decision.arguments == {"account": "acme", "quarter": 2}


def test_a_process_left_off_the_shortlist_cannot_be_chosen(configured: FakeLLM, large_registry: Registry) -> None:
    configured.script("route", tool_call("report_190", {"account": "a"}), tool_call("report_190", {"account": "a"}))

    with pytest.raises(RoutingError, match="no tool named 'report_190'"):
        route("the quarterly report about topic137", large_registry, max_tools=32)
