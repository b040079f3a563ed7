"""What a request costs and where it stops, end to end: the real CLI, Ray and Prefect, the local LLM."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.servers import FakeLLM, tool_call

UPPER = tool_call("text_processing", {"instruction": "Make it uppercase", "text": "x"})


def test_ask_shows_the_cost_and_stops_at_max_tokens(env: dict[str, str], llm: FakeLLM, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[llm.prices]\n"gpt-4o-mini" = { input = 2.0, output = 4.0 }\n')
    env = {**env, "AGENTCTL_CONFIG": str(config)}
    llm.script("route", UPPER, UPPER)
    llm.script("text", tool_call("UPPER", {"text": "x"}), tool_call("UPPER", {"text": "x"}))  # one never asked for

    priced = run_cli(env, "ask", "--json", "Make `x` uppercase")

    assert priced.code == 0, priced.stderr
    usage = priced.json()["usage"]
    assert (usage["requests"], usage["total_tokens"]) == (2, 30)  # the router's call and the task's
    assert usage["cost"] == pytest.approx(2 * (10 * 2.0 + 5 * 4.0) / 1e6)

    # 15 tokens after routing: the text task's own LLM call is refused, and the request ends.
    stopped = run_cli({**env, "AGENTCTL_ROUTER__MAX_TOKENS": "10"}, "ask", "Make `x` uppercase")

    assert stopped.code == 1
    errors = [line for line in stopped.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stopped.stderr
    assert "token limit: 15 tokens used, router.max_tokens = 10; raise router.max_tokens" in errors[0]
    assert len(llm.calls("text")) == 1  # only the first request's
