"""What a request costs and where it stops, end to end: the real CLI, Ray and Prefect, the local LLM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.servers import FakeLLM, Reply, say, tool_call


def uppercase(body: dict[str, Any]) -> Reply:
    """The model of a text request: the task uppercases; the router sends it there, and answers once
    it has seen a result (when the request goes on after its calls)."""
    if any(tool["function"]["name"] == "UPPER" for tool in body.get("tools", [])):
        return tool_call("UPPER", {"text": "x"})
    if any(message.get("role") == "tool" for message in body["messages"]):
        return say("It is X.")
    return tool_call("text_processing", {"instruction": "Make it uppercase", "text": "x"})


def test_ask_shows_the_cost_and_stops_at_max_tokens(env: dict[str, str], llm: FakeLLM, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[llm.prices]\n"gpt-4o-mini" = { input = 2.0, output = 4.0 }\n')
    env = {**env, "AGENTCTL_CONFIG": str(config)}
    llm.responder = uppercase

    priced = run_cli(env, "ask", "--json", "Make `x` uppercase")

    assert priced.code == 0, priced.stderr
    usage, sent = priced.json()["usage"], len(llm.calls())  # the router's calls and the task's
    assert sent >= 2 and (usage["requests"], usage["total_tokens"]) == (sent, 15 * sent)
    assert usage["cost"] == pytest.approx(sent * (10 * 2.0 + 5 * 4.0) / 1e6)

    # 15 tokens after routing: the text task's own LLM call is refused, and the request ends.
    stopped = run_cli({**env, "AGENTCTL_ROUTER__MAX_TOKENS": "10"}, "ask", "Make `x` uppercase")

    assert stopped.code == 1
    errors = [line for line in stopped.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stopped.stderr
    assert "token limit: 15 tokens used, router.max_tokens = 10; raise router.max_tokens" in errors[0]
    assert len(llm.calls()) == sent + 1 and len(llm.calls("text")) == 1  # only the first request's
