"""In-process unit tests of what a request spends: its cost from llm.prices and its bounds
(router.max_tokens, router.max_cost), with the real openai client against the local LLM server,
which reports 10 prompt + 5 completion tokens per completion. No Ray, Prefect or subprocess."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from agentctl import errors, llm
from agentctl.config import ModelPrice, Settings
from agentctl.events import Usage
from agentctl.output.stream import usage_line
from agentctl.spending import Bounds, TokenCount
from agentctl.views import AskOutput
from tests.conftest import API_KEY
from tests.servers import FakeLLM, say

HELLO = [{"role": "user", "content": "hello"}]


def model_for(server: FakeLLM, **sections: Any) -> llm.ChatModel:
    """The request's chat model as an actor makes it, for settings pointed at ``server``."""
    base = {"base_url": f"{server.url}/v1", "max_retries": 0}
    settings = Settings.model_validate({**sections, "llm": {**base, **sections.get("llm", {})}})
    return llm.ChatModel.of(settings, {"OPENAI_API_KEY": API_KEY}, llm.Clients())


def ask(*calls: llm.ChatModel) -> None:
    """One request's LLM calls, in order, on one event loop."""

    async def request() -> None:
        for model in calls:
            await model.complete(HELLO)

    asyncio.run(request())


@pytest.fixture
def server(llm: FakeLLM) -> FakeLLM:
    llm.responder = lambda body: say("hi")
    return llm


PRICES = {"big": {"input": 2.0, "output": 4.0}, "small": {"input": 0.5, "output": 1.0}}


def test_the_cost_is_priced_per_call_with_the_model_it_named(server: FakeLLM) -> None:
    model = model_for(server, llm={"model": "big", "prices": PRICES})
    ask(model, model.using("small"))  # a nested call on a cheaper model counts in the same request
    assert [c.body["model"] for c in server.calls()] == ["big", "small"]
    usage = model.usage.as_dict()
    assert (usage["requests"], usage["total_tokens"]) == (2, 30)
    # big: (10 * 2.0 + 5 * 4.0) / 1e6; small: (10 * 0.5 + 5 * 1.0) / 1e6
    assert usage["cost"] == pytest.approx(40e-6 + 10e-6)


def test_a_model_without_a_price_leaves_the_cost_unknown_not_partial(server: FakeLLM) -> None:
    model = model_for(server, llm={"model": "big", "prices": PRICES})
    ask(model, model.using("unlisted"))
    assert model.usage.as_dict()["cost"] is None
    unpriced = model_for(server, llm={"model": "big"})
    ask(unpriced)
    assert unpriced.usage.as_dict()["cost"] is None and unpriced.usage.total_tokens == 15


def test_max_tokens_refuses_the_call_of_a_request_at_the_bound(server: FakeLLM) -> None:
    model = model_for(server, router={"max_tokens": 30})
    with pytest.raises(errors.BudgetExceeded) as stopped:
        ask(model, model, model)  # 15 tokens, then 30: at the bound, the third call is refused
    assert len(server.calls()) == 2 and model.usage.total_tokens == 30
    assert str(stopped.value) == (
        "the request stopped at its token limit: 30 tokens used, router.max_tokens = 30; "
        "raise router.max_tokens to go further"
    )
    assert stopped.value.exit_code == errors.EXIT_FAILED


def test_max_cost_refuses_the_call_of_a_request_at_the_bound(server: FakeLLM) -> None:
    model = model_for(server, llm={"model": "big", "prices": PRICES}, router={"max_cost": 0.00008})
    with pytest.raises(errors.BudgetExceeded) as stopped:
        ask(model, model, model)  # 0.00004, then 0.00008: at the bound, the third call is refused
    assert len(server.calls()) == 2
    assert str(stopped.value) == (
        "the request stopped at its cost limit: 0.00008 spent, router.max_cost = 0.00008; "
        "raise router.max_cost to go further"
    )


def test_max_cost_without_a_price_for_the_model_is_a_usage_error_before_any_call(server: FakeLLM) -> None:
    model = model_for(server, llm={"model": "unlisted", "prices": PRICES}, router={"max_cost": 1.0})
    with pytest.raises(errors.ConfigError) as refused:
        ask(model)
    assert server.calls() == []
    assert refused.value.exit_code == errors.EXIT_USAGE
    assert str(refused.value) == (
        "router.max_cost needs the price of model 'unlisted': add it to [llm.prices] or unset router.max_cost"
    )


def test_the_usage_line_shows_the_cost_only_when_it_is_known() -> None:
    counts = {"requests": 2, "prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
    assert usage_line(Usage(**counts, cost=0.000045)) == (
        "tokens: 30 (20 prompt + 10 completion) in 2 LLM requests · cost 0.000045"
    )
    assert usage_line(Usage(**counts)) == "tokens: 30 (20 prompt + 10 completion) in 2 LLM requests"


def test_the_request_record_of_ask_json_and_of_a_batch_carries_the_cost() -> None:
    record = AskOutput(request="r")
    record.add(Usage(requests=1, prompt_tokens=10, completion_tokens=5, total_tokens=15, cost=0.00004))
    assert record.document()["usage"]["cost"] == 0.00004  # batch records are these documents, one a line


COMPLETION = SimpleNamespace(usage=SimpleNamespace(prompt_tokens=10, completion_tokens=5))
BIG, SMALL = ModelPrice(input=2.0, output=4.0), ModelPrice(input=0.5, output=1.0)


def test_a_steps_usage_is_what_was_spent_since_it_began_cost_included() -> None:
    count = TokenCount()
    first = count.as_dict()
    count.add(COMPLETION, "big", BIG)
    second = count.as_dict()
    count.add(COMPLETION, "small", SMALL)
    assert count.since(first)["cost"] == pytest.approx(40e-6 + 10e-6)
    step = count.since(second)
    assert {k: step[k] for k in ("requests", "total_tokens")} == {"requests": 1, "total_tokens": 15}
    assert step["cost"] == pytest.approx(10e-6)
    count.add(COMPLETION, "unlisted", None)
    assert count.since(second)["cost"] is None


def test_a_request_that_goes_on_after_a_pause_keeps_its_spending_and_its_bounds() -> None:
    before = TokenCount()
    before.add(COMPLETION, "big", BIG)
    before.add(COMPLETION, "big", BIG)
    resumed = TokenCount(bounds=Bounds(max_tokens=30))
    resumed.restore(before.as_dict())
    assert resumed.as_dict() == before.as_dict()
    with pytest.raises(errors.BudgetExceeded, match="30 tokens used, router.max_tokens = 30"):
        resumed.check("big", BIG)
    unknown = TokenCount()
    unknown.restore({**before.as_dict(), "cost": None})
    unknown.add(COMPLETION, "big", BIG)
    assert unknown.cost is None
