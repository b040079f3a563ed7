"""``agentctl mcp serve`` through a real MCP client of the SDK, over stdio and streamable HTTP, on the
real Ray and Prefect: the tool list, a call with its logs and progress, approval asked by elicitation
(declined) or refused (a client that cannot be asked), cancellation, and the HTTP bearer token. Over
HTTP, progress, approval and cancellation are tested with the gateway's ``/mcp`` in test_gateway_mcp."""

from __future__ import annotations

import re
import stat
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import AGENTCTL
from tests.servers import FakeGitHub, FakeLLM, tool_call

FIXTURE = Path(__file__).parent / "fixtures" / "approvals.py"


@pytest.fixture
def serve_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "AGENTCTL_PROCESSES__PATHS": str(FIXTURE)}


def stdio(env: dict[str, str], **options: Any) -> Client:
    """A client that starts ``agentctl mcp serve`` as a desktop client does."""
    return Client(StdioServerParameters(command=AGENTCTL, args=["mcp", "serve"], env=env), **options)


def latest_run(api: str, process: str, expected: str) -> dict[str, Any]:
    """The newest flow run of ``process``, once its state is ``expected`` or 30 s have passed (polled:
    the actor records a cancellation after the call has ended)."""
    deadline = time.monotonic() + 30
    mine = {"tags": {"all_": [f"process:{process}"]}}
    with httpx.Client(trust_env=False) as client:
        while True:
            runs = client.post(
                f"{api}/flow_runs/filter", json={"sort": "EXPECTED_START_TIME_DESC", "limit": 1, "flow_runs": mine}
            ).json()
            if runs and (runs[0]["state"]["type"] == expected or time.monotonic() > deadline):
                return dict(runs[0])


def test_stdio_lists_calls_and_streams(serve_env: dict[str, str], github: FakeGitHub, llm: FakeLLM) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=3)
    logs: list[types.LoggingMessageNotificationParams] = []
    progress: list[tuple[float, str | None]] = []

    async def logged(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async def moved(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, message))

    async def main() -> tuple[types.ListToolsResult, types.CallToolResult, types.CallToolResult]:
        async with stdio(serve_env, logging_callback=logged, log_level="info") as client:
            tools = await client.list_tools()
            result = await client.call_tool("github_repo_info", {"repo": "acme/rocket"}, progress_callback=moved)
            llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))
            asked = await client.call_tool("ask", {"request": "stars of acme/rocket"})
            return tools, result, asked

    tools, result, asked = anyio.run(main)
    by_name = {tool.name: tool for tool in tools.tools}
    assert list(by_name)[0] == "ask" and {"github_repo_info", "text_processing", "write_mark"} <= set(by_name)
    repo = by_name["github_repo_info"]
    assert repo.input_schema["properties"]["repo"]["type"] == "string" and repo.input_schema["required"] == ["repo"]
    assert repo.annotations is not None and repo.annotations.read_only_hint and not repo.annotations.destructive_hint
    mark = by_name["write_mark"].annotations
    assert mark is not None and mark.destructive_hint and not mark.read_only_hint

    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["result"]["stars"] == 42
    assert result.structured_content["run"]["state"] == "Completed"
    assert '"stars": 42' in result.content[0].text  # type: ignore[union-attr]
    assert any("acme/rocket has 42 stars" in str(log.data) for log in logs)
    assert any("acme/rocket has 42 stars" in (message or "") for _, message in progress)
    assert [done for done, _ in progress] == sorted({done for done, _ in progress})  # it only grows
    tags = latest_run(serve_env["PREFECT_API_URL"], "github_repo_info", "COMPLETED")["tags"]
    assert {"agentctl", "mcp"} <= set(tags)

    assert not asked.is_error and asked.structured_content is not None
    assert asked.structured_content["route"] == "github_repo_info"
    assert asked.structured_content["result"]["stars"] == 42


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # 2026-07-28: input-required; handshake: elicitation/create
def test_approval_asked_declined_or_refused(serve_env: dict[str, str], tmp_path: Path, mode: str) -> None:
    mark = tmp_path / "mark.txt"
    questions: list[str] = []

    async def answer(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        questions.append(params.message)
        if "no-thanks" in params.message:
            return types.ElicitResult(action="decline")
        return types.ElicitResult(action="accept", content={"approve": True})

    async def main() -> tuple[types.CallToolResult, types.CallToolResult, types.CallToolResult]:
        async with stdio(serve_env, elicitation_callback=answer, mode=mode) as client:
            declined = await client.call_tool("write_mark", {"path": str(mark), "text": "no-thanks"})
            approved = await client.call_tool("write_mark", {"path": str(mark), "text": "hello"})
        async with stdio(serve_env, mode=mode) as client:  # no elicitation: nobody can be asked
            refused = await client.call_tool("write_mark", {"path": str(mark), "text": "again"})
        return declined, approved, refused

    declined, approved, refused = anyio.run(main)
    assert "write_mark needs your approval" in questions[0] and "no-thanks" in questions[0]
    assert declined.is_error and declined.content[0].text == "error: not approved: write_mark did not run"  # type: ignore[union-attr]
    assert not approved.is_error and approved.structured_content is not None
    assert approved.structured_content["result"] == f"wrote {mark}"
    assert refused.is_error
    assert "processes.auto_approve" in refused.content[0].text  # type: ignore[union-attr]
    assert mark.read_text() == "hello"  # only the approved call ran


def test_cancel_cancels_the_run(serve_env: dict[str, str], github: FakeGitHub) -> None:
    github.add_repo("acme/held", stars=1, contributors=1)
    api = serve_env["PREFECT_API_URL"]

    async def main() -> tuple[str, types.CallToolResult]:
        async with stdio(serve_env) as client:
            gate = github.hold()
            async with anyio.create_task_group() as calls:
                calls.start_soon(client.call_tool, "github_repo_info", {"repo": "acme/held"})
                await anyio.to_thread.run_sync(github.arrived.wait, 60)
                calls.cancel_scope.cancel()  # the client sends notifications/cancelled
            cancelled = await anyio.to_thread.run_sync(latest_run, api, "github_repo_info", "CANCELLED")
            gate.set()
            return cancelled["state"]["type"], await client.call_tool("github_repo_info", {"repo": "acme/held"})

    state, again = anyio.run(main)
    assert state == "CANCELLED"
    assert not again.is_error  # the server serves on


@pytest.fixture
def http_server(serve_env: dict[str, str]) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    server = subprocess.Popen(
        [AGENTCTL, "mcp", "serve", "--http", "--port", "0"],
        env=serve_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stderr is not None
    lines = []
    for line in server.stderr:  # it says its address once it listens
        lines.append(line)
        if "http://127.0.0.1:" in line:
            break
    url = re.search(r"http://127\.0\.0\.1:\d+/mcp", "".join(lines))
    assert url is not None, "".join(lines)
    token = re.search(r"token \(shown this once, kept in (\S+)\): (\S+)", "".join(lines))
    assert token is not None, "".join(lines)
    try:
        yield url.group(0), token.group(2), server
    finally:
        server.terminate()
        server.wait(timeout=60)


@asynccontextmanager
async def over_http(url: str, token: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, trust_env=False) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


def test_http_needs_the_token(
    http_server: tuple[str, str, subprocess.Popen[str]], serve_env: dict[str, str], github: FakeGitHub
) -> None:
    url, token, server = http_server
    github.add_repo("acme/rocket", stars=42, contributors=3)
    kept = Path(serve_env["AGENTCTL_DATA_DIR"]) / "mcp_token"
    assert kept.read_text().strip() == token and stat.S_IMODE(kept.stat().st_mode) == 0o600
    with httpx.Client(trust_env=False) as plain:
        assert plain.post(url, json={}).status_code == 401
        assert plain.post(url, json={}, headers={"Authorization": "Bearer wrong"}).status_code == 401

    async def main() -> tuple[list[str], types.CallToolResult]:
        with pytest.raises(Exception):  # noqa: B017 (the SDK's own error for a 401, whatever its class)
            async with over_http(url, "wrong") as client:
                await client.list_tools()
        async with over_http(url, token) as client:
            tools = await client.list_tools()
            return [tool.name for tool in tools.tools], await client.call_tool(
                "github_repo_info", {"repo": "acme/rocket"}
            )

    names, result = anyio.run(main)
    assert "github_repo_info" in names and "ask" in names
    assert result.structured_content is not None and result.structured_content["result"]["stars"] == 42
    assert server.poll() is None


def test_the_mcp_tag_keeps_the_stack_usable() -> None:
    from agentctl.calls.mcp.serve import tagged
    from agentctl.config import Settings
    from agentctl.stack.health import processes_key

    settings = Settings()
    assert tagged(settings).processes.run_tags == ["mcp"]
    assert processes_key(tagged(settings)) == processes_key(settings)  # the stack of up serves the server
