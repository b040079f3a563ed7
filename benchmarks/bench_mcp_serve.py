"""The overhead of an MCP ``tools/call`` on a warm ``agentctl mcp serve``, next to the same run by other ways.

On the stack of ``agentctl up`` (SQLite), with the test suite's local GitHub server, the quick process
``github_repo_info`` on a repository of 3 contributors is run, after one warm-up each, ``--runs``
times (median) three ways: the pool directly (a Session on the stack in this process: the floor),
an MCP ``tools/call`` through the SDK's client over stdio to one ``agentctl mcp serve`` that stays
up (which attaches to the same stack), the same over streamable HTTP to the stack's gateway (``/mcp``,
one client session kept open), and ``agentctl processes run --json`` (a CLI process per run).

    .venv/bin/python benchmarks/bench_mcp_serve.py --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
from local import local_servers, report
from mcp import Client
from mcp.client.stdio import StdioServerParameters

AGENTCTL = str(Path(sys.executable).with_name("agentctl"))
PROCESS, ARGUMENTS = "github_repo_info", {"repo": "acme/tiny"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    _, github, _, env = local_servers()
    github.add_repo("acme/tiny", stars=7, contributors=3)
    _cli(env, "up")
    try:
        pool = _pool(runs)
        mcp = anyio.run(_mcp, env, runs)
        gateway = anyio.run(_gateway_mcp, Path(env["AGENTCTL_DATA_DIR"]), runs)
        cli = [_timed(lambda: _cli(env, "processes", "run", PROCESS, "--param", "repo=acme/tiny", "--json"))]
        cli += [
            _timed(lambda: _cli(env, "processes", "run", PROCESS, "--param", "repo=acme/tiny", "--json"))
            for _ in range(runs)
        ]
    finally:
        _cli(env, "down")
    print(f"{PROCESS} on agentctl up's stack, median of {runs} after a warm-up, seconds")
    report("pool directly (Session.run)", pool)
    report("MCP tools/call, stdio, warm server", mcp)
    report("MCP tools/call, HTTP, the gateway", gateway)
    report("agentctl processes run --json", cli[1:])
    print(f"{'MCP overhead over the pool':<40} {statistics.median(mcp) - statistics.median(pool):7.3f}")
    print(f"{'MCP overhead on the gateway':<40} {statistics.median(gateway) - statistics.median(pool):7.3f}")


def _cli(env: dict[str, str], *args: str) -> None:
    proc = subprocess.run([AGENTCTL, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"agentctl {' '.join(args)} failed: {proc.stderr}")


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _pool(runs: int) -> list[float]:
    from agentctl.calls.session import Session
    from agentctl.config import load

    with Session(load()) as session:
        assert session.on_stack, session.notice
        times = [_timed(lambda: list(session.run(PROCESS, ARGUMENTS))) for _ in range(runs + 1)]
    return times[1:]


async def _mcp(env: dict[str, str], runs: int) -> list[float]:
    times = []
    async with Client(StdioServerParameters(command=AGENTCTL, args=["mcp", "serve"], env=env)) as client:
        for _ in range(runs + 1):
            start = time.perf_counter()
            result = await client.call_tool(PROCESS, ARGUMENTS)
            times.append(time.perf_counter() - start)
            assert not result.is_error, result.content
    return times[1:]


async def _gateway_mcp(data: Path, runs: int) -> list[float]:
    import json

    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    url = json.loads((data / "stack.json").read_text())["gateway_url"] + "/mcp"
    headers = {"Authorization": f"Bearer {(data / 'gateway_token').read_text().strip()}"}
    times = []
    async with (
        httpx2.AsyncClient(headers=headers, trust_env=False) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        for _ in range(runs + 1):
            start = time.perf_counter()
            result = await client.call_tool(PROCESS, ARGUMENTS)
            times.append(time.perf_counter() - start)
            assert not result.is_error, result.content
    return times[1:]


if __name__ == "__main__":
    main()
