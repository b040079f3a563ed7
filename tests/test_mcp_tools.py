"""Tools of other MCP servers as processes, through the CLI: a real MCP server of the SDK
(``tests/fixtures/mcp/calc.py``, MCPServer, FastMCP before mcp 2) over stdio, on the real Ray and
Prefect of the ``env`` fixture; listed, shown, routed, run; a server that does not start, one that is
too slow, one that crashes under a call; its secrets masked."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agentctl import prefect_rest
from agentctl.config import McpServerSettings
from agentctl.processes.mcp_source import transport
from agentctl.processes.mcp_tools import asks_first, tool_name, usable
from tests.conftest import run_cli
from tests.servers import FakeLLM, say, tool_call

CALC = Path(__file__).parent / "fixtures" / "mcp" / "calc.py"
SECRET = "calc-secret-4b9e1d7a"
DEADLINE = 60.0  # seconds for a stopped server's process to be gone


def _configured(env: dict[str, str], tmp_path: Path, *entries: str) -> dict[str, str]:
    """``env`` with a config file holding ``entries`` (TOML tables of [[mcp.servers]])."""
    config = tmp_path / "config.toml"
    config.write_text("\n".join(entries))
    return {**env, "AGENTCTL_CONFIG": str(config), "CALC_SECRET": SECRET}


def _calc(tmp_path: Path, name: str = "calc", **more: str) -> str:
    """A [[mcp.servers]] entry that starts the fixture server, its starts recorded in ``starts``."""
    lines = [
        "[[mcp.servers]]",
        f'name = "{name}"',
        f'command = ["{sys.executable}", "{CALC}"]',
        f'env = {{ CALC_SECRET = "${{CALC_SECRET}}", CALC_STARTS = "{tmp_path / "starts"}" }}',
        *(f"{key} = {value}" for key, value in more.items()),
    ]
    return "\n".join(lines) + "\n"


def _starts(tmp_path: Path) -> list[int]:
    path = tmp_path / "starts"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def _task_run(env: dict[str, str], run_id: str, state: str) -> dict[str, Any]:
    """The task run as the Prefect API records it, once it has its final ``state``: the server records
    an in-actor task run from its events, after the call has returned."""
    deadline = time.monotonic() + DEADLINE
    with prefect_rest.client(env["PREFECT_API_URL"], timeout=30) as http:
        while time.monotonic() < deadline:
            response = http.get(f"/task_runs/{run_id}")
            if response.status_code == 200 and (response.json().get("state") or {}).get("type") == state:
                return dict(response.json())
            time.sleep(0.1)  # polling the API for a condition, with a deadline
    raise AssertionError(
        f"task run {run_id} never reached {state} in the Prefect API: {response.status_code} {response.text[:600]}"
    )


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)  # polling for the process's end, with a deadline
    return False


def test_list_and_show_its_tools_with_one_line_for_each_server_that_fails(env: dict[str, str], tmp_path: Path) -> None:
    slow = _calc(tmp_path, "slow", timeout="2").replace("CALC_SECRET =", 'CALC_START_DELAY = "60", CALC_SECRET =')
    broken = '[[mcp.servers]]\nname = "broken"\ncommand = ["agentctl-no-such-server"]\n'
    configured = _configured(env, tmp_path, _calc(tmp_path), slow, broken)

    listed = run_cli(configured, "processes", "list", "--json")

    assert listed.code == 0, listed.stderr
    assert listed.stderr.splitlines() == [
        "warning: MCP server slow did not answer in 2 s: left out",
        "warning: MCP server broken did not start: cannot run 'agentctl-no-such-server': not found "
        "(check its command and cwd): left out",
    ]
    tools = {p["name"]: p for p in listed.json() if p["kind"] == "mcp"}
    assert {"calc_add", "calc_write_note", "calc_divide", "calc_hang"} <= set(tools)
    assert tools["calc_add"]["description"] == "Add two whole numbers."
    assert tools["calc_add"]["schema"]["required"] == ["a", "b"]
    assert (tools["calc_add"]["needs_approval"], tools["calc_write_note"]["needs_approval"]) == (False, True)

    shown = run_cli(configured, "processes", "show", "calc_write_note", "--json")
    assert shown.code == 0, shown.stderr
    details = shown.json()
    assert details["server"] == "calc" and details["tool"] == "write_note"
    assert details["annotations"] == {"destructiveHint": True}
    assert details["transport"].startswith(f"stdio: {sys.executable} {CALC}; env CALC_SECRET=***, CALC_STARTS=***")
    assert SECRET not in shown.stdout + listed.stdout


def test_processes_run_calls_a_tool_as_a_prefect_task_run_and_the_server_stops_with_the_actor(
    env: dict[str, str], tmp_path: Path
) -> None:
    configured = _configured(env, tmp_path, _calc(tmp_path))

    result = run_cli(configured, "processes", "run", "calc_add", "-p", "a=2", "-p", "b=3", "--json")

    assert result.code == 0, result.stderr
    document = result.json()
    assert document["result"] == {"result": 5}
    assert (document["run"]["kind"], document["run"]["state"]) == ("task", "Completed")
    recorded = _task_run(env, document["run"]["id"], "COMPLETED")
    assert "process:calc_add" in recorded["tags"]
    *_, actors_server = _starts(tmp_path)  # the CLI's listing started one too, and stopped it
    assert _gone(actors_server)  # the call's actor is gone, and its server with it


def test_ask_routes_to_tools_on_one_server_per_actor_restarted_after_a_crash(
    env: dict[str, str], llm: FakeLLM, tmp_path: Path
) -> None:
    configured = _configured(env, tmp_path, _calc(tmp_path))
    marker = str(tmp_path / "crashed")
    llm.script("route", tool_call("calc_pid", {}))
    llm.script("step", tool_call("calc_crash_once", {"marker": marker}), tool_call("calc_pid", {}), say("done"))

    result = run_cli(configured, "ask", "--json", "what is the pid, crash once, and the pid again")

    assert result.code == 0, result.stderr
    document = result.json()
    calls = [call for step in document["steps"] for call in step["calls"]]
    assert [c["route"] for c in calls] == ["calc_pid", "calc_crash_once", "calc_pid"]
    first, survived, second = (c["result"] for c in calls)
    assert survived == {"result": "survived"}  # retried by Prefect on a new server after the crash
    assert _starts(tmp_path) == [first["result"], second["result"]]  # started once, then once after the crash
    assert any("Retry 1/1 will start" in line["message"] for line in calls[1]["logs"])
    assert document["answer"] == "done"


def test_a_tool_error_fails_the_call_at_once_with_the_secret_masked(env: dict[str, str], tmp_path: Path) -> None:
    configured = _configured(env, tmp_path, _calc(tmp_path))

    divided = run_cli(configured, "processes", "run", "calc_divide", "-p", "a=1", "-p", "b=0", "--json")
    whispered = run_cli(configured, "processes", "run", "calc_whisper", "--json")

    assert (divided.code, divided.json()["error"]["message"]) == (
        1,
        "calc_divide ended Failed: Error executing tool divide: cannot divide by zero",
    )
    assert not any("Retry" in line["message"] for line in divided.json()["logs"])
    assert whispered.code == 1
    assert (
        whispered.json()["error"]["message"]
        == "calc_whisper ended Failed: Error executing tool whisper: the token is ***"
    )
    assert SECRET not in whispered.stdout + whispered.stderr
    run = _task_run(env, whispered.json()["run"]["id"], "FAILED")
    assert SECRET not in str(run["state"]["message"]) and "***" in str(run["state"]["message"])


def test_a_call_slower_than_its_timeout_fails_in_transport_after_its_retries(
    env: dict[str, str], tmp_path: Path
) -> None:
    configured = _configured(env, tmp_path, _calc(tmp_path, call_timeout="1", retries="0"))

    result = run_cli(configured, "processes", "run", "calc_hang", "-p", "seconds=30", "--json")

    assert result.code == 1
    error: dict[str, Any] = result.json()["error"]
    assert error["message"] == "calc_hang ended Failed: MCP server calc did not answer the call: no answer in 1 s"


def test_a_server_over_http_is_listed_with_its_headers_masked(env: dict[str, str], tmp_path: Path) -> None:
    from agentctl.stack.prefect_server import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, str(CALC), str(port)], stderr=subprocess.DEVNULL)
    try:
        _until_listening(port)
        entry = f'[[mcp.servers]]\nname = "web"\nurl = "http://127.0.0.1:{port}/mcp"\n'
        entry += 'headers = { Authorization = "Bearer ${CALC_SECRET}" }\n'
        configured = _configured(env, tmp_path, entry)
        listed = run_cli(configured, "processes", "list", "--json")
        shown = run_cli(configured, "processes", "show", "web_add", "--json")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert (listed.code, listed.stderr) == (0, ""), listed.stderr
    assert {"web_add", "web_divide"} <= {p["name"] for p in listed.json()}
    assert shown.json()["transport"] == f"HTTP http://127.0.0.1:{port}/mcp; headers Authorization=***"


def _until_listening(port: int) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)  # polling for the server's port, with a deadline
    raise AssertionError(f"the MCP server did not listen on {port}")


def test_names_approval_and_transport_as_shown() -> None:
    long = "t" * 80
    assert tool_name("my-server", "get.thing") == "my_server_get_thing"
    assert len(tool_name("s", long)) == 64 and tool_name("s", long) != tool_name("s", long + "x")
    plain = McpServerSettings(name="s", url="https://user:pw@example.com/mcp?key=abc")
    assert (asks_first(plain, {"readOnlyHint": True}), asks_first(plain, {"destructiveHint": False})) == (False, True)
    assert asks_first(plain.model_copy(update={"confirm": True}), {"readOnlyHint": True})
    assert transport(plain) == "HTTP https://***@example.com/mcp?***"
    both = McpServerSettings(name="b", url="http://x", command=["y"])
    assert usable([plain, both, plain]) == (
        [plain],
        [
            "MCP server b needs exactly one of command (stdio) or url (HTTP): left out",
            "two [[mcp.servers]] entries are named s: the second is left out",
        ],
    )
