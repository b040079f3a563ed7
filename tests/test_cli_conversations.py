"""Conversations end to end: ``ask -c`` and ``ask --conversation`` carry the earlier turns to the model."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.conftest import API_KEY, run_cli
from tests.servers import FakeGitHub, FakeLLM, say, tool_call


def test_ask_continues_the_last_conversation(env: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=3)
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}), say("octo/tiny: no data yet."))

    first = run_cli(env, "ask", "--json", f"stars of acme/rocket, key {API_KEY}")
    second = run_cli(env, "ask", "-c", "--json", "and for octo/tiny?")
    unknown = run_cli(env, "ask", "--conversation", "nope1234", "and then?")

    assert first.code == 0 and second.code == 0, first.stderr + second.stderr
    talk = first.json()["conversation"]
    assert second.json()["conversation"] == talk
    system, *earlier, request = llm.calls("route")[1].body["messages"]
    assert request == {"role": "user", "content": "and for octo/tiny?"}
    # The first turn as stored (the key redacted): the request, the call, and its result as JSON.
    assert [m["role"] for m in earlier] == ["user", "assistant", "tool", "assistant"]  # request, call, result, answer
    assert earlier[0]["content"] == "stars of acme/rocket, key ***"
    assert earlier[1]["tool_calls"][0]["function"]["name"] == "github_repo_info"
    assert json.loads(earlier[2]["content"])["stars"] == 42
    saved = Path(env["AGENTCTL_DATA_DIR"]) / "conversations" / f"{talk}.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600 and API_KEY not in saved.read_text()
    assert len(json.loads(saved.read_text())["turns"]) == 2

    assert unknown.code == 2 and len(llm.calls("route")) == 2  # refused before anything started
    assert unknown.stderr.strip().splitlines() == [
        f"error: no conversation 'nope1234' in {saved.parent}: a plain `agentctl ask \"...\"` starts one, "
        "`agentctl ask -c` continues the last"
    ]
