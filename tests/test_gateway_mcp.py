"""MCP over streamable HTTP through the SDK's own client, against a real ``agentctl up`` stack's gateway
(``/mcp``, its token) and against ``agentctl mcp serve --http`` alone: the same tests for both (tools,
a call with progress and logs, approval by elicitation approved and declined, cancellation from the
client), then what is the gateway's own (401s, the Host check, secrets by header, status, and
``mcp serve --http`` pointing at it)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import AGENTCTL, API_KEY, base_env, run_cli
from tests.servers import FakeGitHub, FakeLLM, tool_call
from tests.test_mcp_serve import FIXTURE, latest_run
from tests.test_stack import _down, _up

UP_KEY = "sk-up-time-key-not-the-callers"  # the LLM server refuses it: an ask works with the client's key only
SECRET = {"Agentctl-Secret-OPENAI_API_KEY": API_KEY}


@dataclass
class Endpoint:
    """An MCP endpoint over HTTP: where, the headers a client sends, and the Prefect API its runs go to."""

    url: str
    headers: dict[str, str]
    prefect: str
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, llm_server: FakeLLM, github_server: FakeGitHub
) -> Iterator[dict[str, str]]:
    """A stack of two router actors that run the approval fixture, started with a key the LLM refuses."""
    root = tmp_path_factory.mktemp("gateway-mcp")
    env = {
        **base_env(root, llm_server, github_server),
        "AGENTCTL_POOL__SIZE": "2",
        "AGENTCTL_PROCESSES__PATHS": str(FIXTURE),
    }
    _up({**env, "OPENAI_API_KEY": UP_KEY})
    yield env
    _down(env)


def _state(env: dict[str, str]) -> dict[str, Any]:
    return dict(json.loads((Path(env["AGENTCTL_DATA_DIR"]) / "stack.json").read_text()))


def _token(env: dict[str, str]) -> str:
    return (Path(env["AGENTCTL_DATA_DIR"]) / "gateway_token").read_text().strip()


def _on_gateway(env: dict[str, str]) -> Endpoint:
    state = _state(env)
    headers = {"Authorization": f"Bearer {_token(env)}", **SECRET}
    return Endpoint(f"{state['gateway_url']}/mcp", headers, state["prefect_url"], env)


@pytest.fixture
def serve_http(serve_env: dict[str, str]) -> Iterator[Endpoint]:
    """``agentctl mcp serve --http`` alone (no stack), on the shared Ray and Prefect."""
    server = subprocess.Popen(
        [AGENTCTL, "mcp", "serve", "--http", "--port", "0"],
        env=serve_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stderr is not None
    said = ""
    for line in server.stderr:  # it says its address once it listens
        said += line
        if "http://127.0.0.1:" in line:
            break
    url, token = re.search(r"http://127\.0\.0\.1:\d+/mcp", said), re.search(r"kept in \S+\): (\S+)", said)
    assert url is not None and token is not None, said
    try:
        yield Endpoint(url.group(0), {"Authorization": f"Bearer {token.group(1)}"}, serve_env["PREFECT_API_URL"])
    finally:
        server.terminate()
        server.wait(timeout=60)


@pytest.fixture
def serve_env(env: dict[str, str]) -> dict[str, str]:
    """The shared Ray and Prefect, with the approval fixture."""
    return {**env, "AGENTCTL_PROCESSES__PATHS": str(FIXTURE)}


@pytest.fixture(params=["gateway", "serve-http"])
def endpoint(request: pytest.FixtureRequest) -> Endpoint:
    """Each test below runs against the gateway's ``/mcp`` and against ``mcp serve --http`` alone."""
    if request.param == "gateway":
        return _on_gateway(request.getfixturevalue("stack"))
    found: Endpoint = request.getfixturevalue("serve_http")
    return found


@asynccontextmanager
async def connected(endpoint: Endpoint, headers: dict[str, str] | None = None, **options: Any) -> AsyncIterator[Client]:
    """The SDK's client on ``endpoint``, sending its headers (or ``headers``)."""
    sent = endpoint.headers if headers is None else headers
    async with (
        httpx2.AsyncClient(headers=sent, trust_env=False) as http,
        Client(streamable_http_client(endpoint.url, http_client=http), **options) as client,
    ):
        yield client


def test_a_call_streams_progress_and_logs(endpoint: Endpoint, github: FakeGitHub, llm: FakeLLM) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=3)
    logs: list[types.LoggingMessageNotificationParams] = []
    progress: list[tuple[float, str | None]] = []

    async def logged(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async def moved(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, message))

    async def main() -> tuple[types.ListToolsResult, types.CallToolResult, types.CallToolResult]:
        async with connected(endpoint, logging_callback=logged, log_level="info") as client:
            tools = await client.list_tools()
            result = await client.call_tool("github_repo_info", {"repo": "acme/rocket"}, progress_callback=moved)
            llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))
            return tools, result, await client.call_tool("ask", {"request": "stars of acme/rocket"})

    tools, result, asked = anyio.run(main)
    names = [tool.name for tool in tools.tools]
    assert names[0] == "ask" and {"github_repo_info", "text_processing", "write_mark"} <= set(names)
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["result"]["stars"] == 42
    assert result.structured_content["run"]["state"] == "Completed"
    assert any("acme/rocket has 42 stars" in str(log.data) for log in logs)
    assert any("acme/rocket has 42 stars" in (message or "") for _, message in progress)
    assert [done for done, _ in progress] == sorted({done for done, _ in progress})  # it only grows
    assert {"agentctl", "mcp"} <= set(latest_run(endpoint.prefect, "github_repo_info", "COMPLETED")["tags"])
    assert not asked.is_error and asked.structured_content is not None, asked
    assert asked.structured_content["result"]["stars"] == 42


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # 2026-07-28: input-required; handshake: elicitation/create
def test_approval_by_elicitation_approved_and_declined(endpoint: Endpoint, tmp_path: Path, mode: str) -> None:
    mark = tmp_path / "mark.txt"
    questions: list[str] = []

    async def answer(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        questions.append(params.message)
        if "no-thanks" in params.message:
            return types.ElicitResult(action="decline")
        return types.ElicitResult(action="accept", content={"approve": True})

    async def main() -> tuple[types.CallToolResult, types.CallToolResult]:
        async with connected(endpoint, elicitation_callback=answer, mode=mode) as client:
            declined = await client.call_tool("write_mark", {"path": str(mark), "text": "no-thanks"})
            return declined, await client.call_tool("write_mark", {"path": str(mark), "text": "hello"})

    declined, approved = anyio.run(main)
    assert "write_mark needs your approval" in questions[0] and "no-thanks" in questions[0]
    assert declined.is_error and declined.content[0].text == "error: not approved: write_mark did not run"  # type: ignore[union-attr]
    assert not approved.is_error and approved.structured_content is not None
    assert approved.structured_content["result"] == f"wrote {mark}"
    assert mark.read_text() == "hello"  # only the approved call ran


def test_a_call_cancelled_by_the_client_ends_cancelled(endpoint: Endpoint, github: FakeGitHub) -> None:
    github.add_repo("acme/held", stars=1, contributors=1)

    async def main() -> tuple[str, types.CallToolResult]:
        async with connected(endpoint) as client:
            gate = github.hold()
            try:
                async with anyio.create_task_group() as calls:
                    calls.start_soon(client.call_tool, "github_repo_info", {"repo": "acme/held"})
                    assert await anyio.to_thread.run_sync(github.arrived.wait, 60)
                    calls.cancel_scope.cancel()  # the client sends notifications/cancelled
                cancelled = await anyio.to_thread.run_sync(
                    latest_run, endpoint.prefect, "github_repo_info", "CANCELLED"
                )
            finally:
                gate.set()
            return cancelled["state"]["type"], await client.call_tool("github_repo_info", {"repo": "acme/held"})

    state, again = anyio.run(main)
    assert state == "CANCELLED"
    assert not again.is_error and again.structured_content is not None  # the endpoint serves on
    assert again.structured_content["run"]["state"] == "Completed"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-the-token"}, {"Authorization": "Basic eDp5"}])
def test_the_gateways_mcp_needs_its_token(stack: dict[str, str], llm: FakeLLM, headers: dict[str, str]) -> None:
    gateway = _on_gateway(stack)
    hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    response = httpx.post(gateway.url, json=hello, headers=headers, timeout=30, trust_env=False)
    assert response.status_code == 401 and "gateway_token" in response.json()["error_description"]

    async def main() -> None:
        async with connected(gateway, headers) as client:
            await client.list_tools()

    with pytest.raises(Exception):  # noqa: B017 (the SDK's own error for a 401, whatever its class)
        anyio.run(main)
    assert llm.calls() == []


def test_the_gateways_mcp_keeps_the_host_check(stack: dict[str, str]) -> None:
    gateway = _on_gateway(stack)
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    headers = {**gateway.headers, "Host": "attacker.example", "Accept": "application/json, text/event-stream"}
    response = httpx.post(gateway.url, json=hello, headers=headers, timeout=30, trust_env=False)
    assert response.status_code == 421  # DNS rebinding: refused before any session exists


def test_an_ask_on_the_gateway_needs_the_key_by_header(stack: dict[str, str]) -> None:
    gateway = _on_gateway(stack)
    auth = {"Authorization": gateway.headers["Authorization"]}

    async def main() -> tuple[types.CallToolResult, types.CallToolResult]:
        async with connected(gateway, auth) as client:
            keyless = await client.call_tool("ask", {"request": "hi"})
        async with connected(gateway, {**auth, "Agentctl-Secret-OPENAI_KEY": "sk-typo"}) as client:
            return keyless, await client.call_tool("github_repo_info", {"repo": "acme/rocket"})

    keyless, misnamed = anyio.run(main)
    assert keyless.is_error
    assert keyless.content[0].text == (  # type: ignore[union-attr]
        "error: no LLM API key: the gateway keeps none; send the header Agentctl-Secret-OPENAI_API_KEY "
        "with the MCP client's requests"
    )
    assert misnamed.is_error and "OPENAI_KEY is no secret the stack's settings use" in misnamed.content[0].text  # type: ignore[union-attr]
    assert "sk-typo" not in misnamed.content[0].text  # type: ignore[union-attr]


def test_status_and_mcp_serve_name_the_gateways_endpoint(stack: dict[str, str]) -> None:
    url = f"{_state(stack)['gateway_url']}/mcp"
    status = run_cli(stack, "status", "--json")
    assert status.code == 0 and status.json()["gateway"]["mcp_url"] == url
    shown = run_cli(stack, "status")
    assert url in shown.stdout and _token(stack) not in shown.stdout + shown.stderr
    served = run_cli(stack, "mcp", "serve", "--http", timeout=60)  # with --port it would serve its own
    token_file = Path(stack["AGENTCTL_DATA_DIR"]) / "gateway_token"
    assert served.code == 0 and served.stdout == ""
    assert served.stderr.strip().splitlines() == [
        f"agentctl mcp serve: the stack's gateway serves MCP at {url} (token in {token_file}); "
        "send secrets as Agentctl-Secret-<VARIABLE> headers; --standalone serves one of its own"
    ]
