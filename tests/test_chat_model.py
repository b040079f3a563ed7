"""In-process unit tests of the chat model, routing with it, and the error tree: no HTTP, Ray or Prefect."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from agentctl import errors, llm, runtime
from agentctl.config import LLMSettings, RouterSettings
from agentctl.events import ChatReply
from agentctl.processes.builtin import builtin_registry
from agentctl.processes.builtin.github import BadRepoName, GitHubError, TransientGitHubError
from agentctl.routing import router


def completion(content: str | None = None, call: tuple[str, dict[str, Any]] | None = None, tokens: int = 0) -> Any:
    """A chat completion as the openai client returns it, with what the router reads."""
    calls = None
    if call is not None:
        function = SimpleNamespace(name=call[0], arguments=json.dumps(call[1]))
        calls = [SimpleNamespace(id="call_1", type="function", function=function)]
    message = SimpleNamespace(content=content, tool_calls=calls, refusal=None)
    usage = SimpleNamespace(prompt_tokens=tokens, completion_tokens=1)
    return SimpleNamespace(choices=[SimpleNamespace(message=message, finish_reason="stop")], usage=usage)


class FakeModel:
    """A chat model that answers from a script and keeps what it was sent; no client, no HTTP."""

    def __init__(self, *answers: Any, mode: str = "tools") -> None:
        self.llm = LLMSettings.model_validate({"mode": mode})
        self.answers = list(answers)
        self.sent: list[list[dict[str, Any]]] = []

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Any:
        self.sent.append(json.loads(json.dumps(messages)))
        return self.answers.pop(0)


def decide(model: FakeModel, repairs: int = 1) -> router.Route | ChatReply:
    options = RouterSettings(repair_attempts=repairs)
    return asyncio.run(router.decide("stars of acme/rocket", builtin_registry(), model, options))


def test_decide_chooses_with_the_model_it_is_given() -> None:
    model = FakeModel(completion(call=("github_repo_info", {"repo": "acme/rocket"})))
    decision = decide(model)
    assert isinstance(decision, router.Route)
    assert (decision.process.name, decision.arguments) == ("github_repo_info", {"repo": "acme/rocket"})
    assert len(model.sent) == 1


def test_decide_repairs_through_the_same_model() -> None:
    model = FakeModel(
        completion(call=("github_repo_info", {"repository": "acme/rocket"})),
        completion(call=("github_repo_info", {"repo": "acme/rocket"})),
    )
    decision = decide(model)
    assert isinstance(decision, router.Route) and decision.arguments == {"repo": "acme/rocket"}
    feedback = model.sent[1][-1]
    assert feedback["role"] == "tool" and "invalid arguments for github_repo_info" in feedback["content"]


def test_decide_gives_up_after_the_repairs_with_the_models_fault() -> None:
    model = FakeModel(completion(call=("rm_rf", {})), completion(call=("rm_rf", {})))
    with pytest.raises(errors.RoutingError, match="invalid after 2 tries") as caught:
        decide(model)
    assert caught.value.exit_code == errors.EXIT_USAGE
    assert not isinstance(caught.value, errors.UsageError)


def test_decide_reads_the_mode_from_the_model() -> None:
    model = FakeModel(completion(content='{"choice": {"process": "none", "reply": "Hi."}}'), mode="json_schema")
    assert decide(model) == ChatReply(text="Hi.")


class FakeClients(llm.Clients):
    """Clients whose one client answers every request with the next scripted completion."""

    def __init__(self, *answers: Any) -> None:
        super().__init__()
        self.answers = list(answers)
        self.models: list[str] = []

    def get(self, settings: LLMSettings, key: str) -> Any:
        async def create(model: str, messages: list[dict[str, Any]], **_: Any) -> Any:
            self.models.append(model)
            return self.answers.pop(0)

        return SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))


def test_the_chat_model_counts_the_nested_calls_of_the_process_it_is_lent_to() -> None:
    clients = FakeClients(completion("route", tokens=10), completion("nested", tokens=5))
    model = llm.ChatModel(llm=LLMSettings(), key=lambda: "sk-test", clients=clients, name="big-model")

    async def request() -> None:
        await model.complete([{"role": "user", "content": "x"}])
        with runtime.lending(model):  # as the runner does: the process's task copies the context
            process = asyncio.ensure_future(runtime.chat_model().chat([{"role": "user", "content": "y"}]))
        await process

    asyncio.run(request())
    counted = {"requests": 2, "prompt_tokens": 15, "completion_tokens": 2, "total_tokens": 17, "cost": None}
    assert model.usage.as_dict() == counted
    assert clients.models == ["big-model", "big-model"]


def test_a_process_started_outside_the_loan_has_a_model_of_its_own() -> None:
    model = llm.ChatModel(llm=LLMSettings(), key=lambda: "sk-test", clients=FakeClients(), name="m")
    with runtime.lending(model):
        pass
    assert runtime.chat_model() is not model


def test_usage_errors_and_the_models_misbehaviour_are_apart() -> None:
    for user_fault in (errors.UsageError, errors.ConfigError, errors.MissingCredential, BadRepoName):
        assert issubclass(user_fault, errors.UsageError) and user_fault.exit_code == errors.EXIT_USAGE
    assert not issubclass(errors.RoutingError, errors.UsageError)
    assert errors.RoutingError.exit_code == errors.EXIT_USAGE


def test_failures_exit_1_and_transient_github_errors_are_github_errors() -> None:
    for failure in (errors.LLMError, errors.StackError, errors.ActorDied, errors.NotFound, GitHubError):
        assert failure.exit_code == errors.EXIT_FAILED
    assert issubclass(TransientGitHubError, GitHubError)


def fake_client(settings: LLMSettings, key: str) -> Any:
    return SimpleNamespace(base_url=settings.base_url, api_key=key)


def test_clients_are_reused_per_settings_key_and_event_loop() -> None:
    clients, settings = llm.Clients(fake_client), LLMSettings(base_url="http://127.0.0.1:9/v1")

    async def pair() -> tuple[Any, Any, Any]:
        return clients.get(settings, "sk-one"), clients.get(settings, "sk-one"), clients.get(settings, "sk-two")

    first, again, other = asyncio.run(pair())
    assert first is again and other is not first and other.api_key == "sk-two"


def test_a_client_of_a_closed_event_loop_is_never_handed_to_a_new_one() -> None:
    clients, settings = llm.Clients(fake_client), LLMSettings(base_url="http://127.0.0.1:9/v1")

    async def client() -> Any:
        return clients.get(settings, "sk-one")

    # Each asyncio.run is a new loop, often at the address (the id) of the one just closed.
    made = [asyncio.run(client()) for _ in range(20)]
    assert len({id(c) for c in made}) == 20
