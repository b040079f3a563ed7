"""How the router copes when the LLM misbehaves, in both modes; every request that reached the
local server is counted, so repair and retry budgets are exact."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentctl import llm, runtime
from agentctl.config import Settings
from agentctl.errors import LLMError, RoutingError, UsageError
from agentctl.events import ChatReply
from agentctl.processes.builtin import builtin_registry
from agentctl.processes.discovery import discover
from agentctl.routing import router
from tests.conftest import API_KEY
from tests.servers import FakeLLM, Reply, answer, fail, tool_call

FIXTURES = Path(__file__).parent / "fixtures"
GOOD = tool_call("github_repo_info", {"repo": "acme/rocket"})


@pytest.fixture
def configure(llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)

    def install(**llm_settings: Any) -> FakeLLM:
        options = {"base_url": f"{llm.url}/v1", "max_retries": 0, "timeout": 10, **llm_settings}
        runtime.install(Settings.model_validate({"llm": options}))
        return llm

    yield install
    runtime.install(Settings())


def decide(request: str = "stars of acme/rocket", **options: Any) -> router.Route | ChatReply:
    settings = runtime.settings()
    merged = {"repair_attempts": 1, "strict": True, "max_tools": 32, "mode": settings.llm.mode, **options}
    model = llm.ChatModel.of(settings, os.environ, llm.Clients())
    return asyncio.run(router.route(request, builtin_registry(), model, **merged))


class TestToolsMode:
    def test_reason_given_beside_the_call_is_kept(self, configure: Any) -> None:
        llm = configure()
        llm.script("route", Reply(tool_calls=GOOD.tool_calls, content="The user asks for repository stars."))
        decision = decide()
        assert isinstance(decision, router.Route) and decision.reason == "The user asks for repository stars."

    def test_several_calls_are_repaired(self, configure: Any) -> None:
        llm = configure()
        llm.script("route", tool_call("github_repo_info", {"repo": "a/b"}, ("text_processing", {})), GOOD)
        decision = decide()
        assert isinstance(decision, router.Route) and decision.arguments == {"repo": "acme/rocket"}
        repair = llm.calls("route")[1].body["messages"]
        assert [m["role"] for m in repair[-3:]] == ["assistant", "tool", "tool"]
        assert "expected one tool call, got 2" in repair[-1]["content"]

    @pytest.mark.parametrize(
        "bad",
        [
            Reply(finish_reason="length", content="I think the tool to"),
            Reply(content=""),
            tool_call("github_repo_info", {"repo": "not a repo"}),
            tool_call("github_repo_info", {"repo": "a/" + "b" * 300}),
        ],
    )
    def test_invalid_answers_get_exactly_one_repair(self, configure: Any, bad: Reply) -> None:
        llm = configure()
        llm.script("route", bad, bad)
        with pytest.raises(RoutingError, match="invalid after 2 tries"):
            decide()
        assert len(llm.calls("route")) == 2

    def test_repair_budget_is_configurable(self, configure: Any) -> None:
        llm = configure()
        llm.script("route", Reply(content=""), Reply(content=""), GOOD)
        assert isinstance(decide(repair_attempts=2), router.Route)
        assert len(llm.calls("route")) == 3

    def test_refusal_is_final_at_once(self, configure: Any) -> None:
        llm = configure()
        llm.script("route", Reply(refusal="I can't help with that."), GOOD)
        with pytest.raises(RoutingError, match="refused to route the request: I can't help with that."):
            decide()
        assert len(llm.calls("route")) == 1

    def test_a_server_without_tools_is_pointed_at_json_schema_mode(self, configure: Any) -> None:
        llm = configure()
        llm.supports_tools = False
        with pytest.raises(UsageError, match='set llm.mode = "json_schema"'):
            decide()


class TestJsonSchemaMode:
    def test_same_validated_route_without_tools(self, configure: Any) -> None:
        llm = configure(mode="json_schema")
        llm.supports_tools = False
        llm.script(
            "route",
            answer(
                {"process": "github_repo_info", "arguments": {"repo": "acme/rocket"}, "reason": "stars were asked for"}
            ),
        )
        decision = decide()
        assert isinstance(decision, router.Route)
        assert (decision.process.name, decision.arguments, decision.reason) == (
            "github_repo_info",
            {"repo": "acme/rocket"},
            "stars were asked for",
        )
        body = llm.calls("route")[0].body
        assert "tools" not in body
        options = body["response_format"]["json_schema"]["schema"]["properties"]["choice"]["anyOf"]
        assert [o["properties"]["process"]["enum"] for o in options] == [
            ["github_repo_info"],
            ["text_processing"],
            ["none"],
        ]

    def test_none_is_a_chat_reply(self, configure: Any) -> None:
        llm = configure(mode="json_schema")
        llm.script("route", answer({"process": "none", "reply": "Paris."}))
        assert decide() == ChatReply(text="Paris.")

    @pytest.mark.parametrize(
        "bad",
        [
            Reply(content='{"choice": {"process": "github_repo_info", "arguments": '),
            answer({"process": "rm_rf", "arguments": {}, "reason": ""}),
            answer({"process": "github_repo_info", "arguments": {"repository": "a/b"}, "reason": ""}),
            answer({"process": "none", "reply": ""}),
            Reply(content='["github_repo_info"]'),
        ],
    )
    def test_invalid_answers_are_repaired_with_the_error(self, configure: Any, bad: Reply) -> None:
        llm = configure(mode="json_schema")
        llm.script("route", bad, answer({"process": "github_repo_info", "arguments": {"repo": "a/b"}, "reason": ""}))
        decision = decide()
        assert isinstance(decision, router.Route) and decision.arguments == {"repo": "a/b"}
        feedback = llm.calls("route")[1].body["messages"][-1]
        assert feedback["role"] == "user" and feedback["content"].startswith("Error: ")

    def test_nested_model_definitions_are_hoisted(self, configure: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.syspath_prepend(str(FIXTURES))
        registry = discover(Settings.model_validate({"processes": {"modules": ["userflows"]}})).registry
        schema = router.union_schema(registry, strict=True)
        refs = _refs(schema)
        assert refs and all(ref.removeprefix("#/$defs/") in schema["$defs"] for ref in refs)


class TestTransportBudgets:
    def test_server_errors_are_retried_by_the_client_only(self, configure: Any) -> None:
        llm = configure(max_retries=2)
        llm.script("route", fail(500), fail(500), fail(500), GOOD)
        with pytest.raises(LLMError, match="answered 500"):
            decide()
        assert len(llm.calls("route")) == 3  # max_retries + 1, and no repair on top

    def test_429_honours_retry_after(self, configure: Any) -> None:
        llm = configure(max_retries=1)
        llm.script("route", fail(429, "slow down", {"retry-after-ms": "20"}), GOOD)
        assert isinstance(decide(), router.Route)
        assert len(llm.calls("route")) == 2

    def test_persistent_429_says_so(self, configure: Any) -> None:
        llm = configure(max_retries=1)
        llm.script("route", *[fail(429, "slow down", {"retry-after-ms": "10"})] * 2)
        with pytest.raises(LLMError, match="still rate limiting"):
            decide()
        assert len(llm.calls("route")) == 2

    @pytest.mark.parametrize("retries", [0, 1])
    def test_slow_replies_time_out(self, configure: Any, retries: int) -> None:
        llm = configure(timeout=0.3, max_retries=retries)
        llm.script("route", *[Reply(tool_calls=GOOD.tool_calls, delay=1.0)] * (retries + 1))
        with pytest.raises(LLMError, match="did not answer within 0.3 s"):
            decide()
        assert len(llm.calls("route")) == retries + 1


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []
