"""The overhead of calling an MCP server's tool through agentctl, against the SDK's own client.

One local MCP server (the test suite's ``tests/fixtures/mcp/calc.py``, over stdio), its tool ``add``
called with ``{"a": 1, "b": 2}``. Each row is the median of ``--runs`` calls after one warm-up call,
in seconds:

- sdk: ``mcp.Client.call_tool`` on an open session, in this process: the server's own cost.
- pool: ``Session.run`` on the stack of ``agentctl up`` (the actor's session with the server warm):
  Ray to the router actor, a Prefect task run (created, run, its state and result recorded in the
  API), the call on the actor's session, the events back. What ``ask`` adds after routing.
- cli: ``agentctl processes run calc_add`` on that stack, the whole CLI process; it also lists the
  servers' tools in the CLI (a short-lived session per server) to check the parameters first.

    HOME=$(mktemp -d) .venv/bin/python benchmarks/bench_mcp_tools.py --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from local import ROOT, local_servers, report

BIN = Path(sys.executable).parent
CALC = ROOT / "tests" / "fixtures" / "mcp" / "calc.py"
ARGUMENTS = {"a": 1, "b": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    _, _, data, env = local_servers()
    config = data / "config.toml"
    config.write_text(f'[[mcp.servers]]\nname = "calc"\ncommand = ["{sys.executable}", "{CALC}"]\n')
    env = {**env, "AGENTCTL_CONFIG": str(config)}
    os.environ.update(env)
    print(f"a call of an MCP tool on a warm session, median of {runs} after a warm-up, seconds")
    sdk = asyncio.run(sdk_calls(runs))
    report("sdk: mcp.Client.call_tool", sdk, width=44)
    _cli(env, "up")
    try:
        pool = pool_calls(runs)
        report("agentctl: pool (Session.run on agentctl up)", pool, width=44)
        cli = [_timed_cli(env) for _ in range(runs + 1)][1:]
        report("agentctl: processes run (on agentctl up)", cli, width=44)
    finally:
        _cli(env, "down")
    overhead = statistics.median(pool) - statistics.median(sdk)
    print(f"{'overhead of the actor path (pool - sdk)':<44} {overhead:7.3f}")


async def sdk_calls(runs: int) -> list[float]:
    """``call_tool`` on one open session: one warm-up, then ``runs`` timed calls."""
    from mcp import Client, StdioServerParameters

    async with Client(StdioServerParameters(command=sys.executable, args=[str(CALC)])) as client:
        await client.call_tool("add", ARGUMENTS)
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            result = await client.call_tool("add", ARGUMENTS)
            samples.append(time.perf_counter() - start)
            assert result.structured_content == {"result": 3}, result
        return samples


def pool_calls(runs: int) -> list[float]:
    """``Session.run`` on the stack: one warm-up (it starts the actor's session), then ``runs`` timed."""
    from agentctl.calls.session import Session
    from agentctl.config import load
    from agentctl.events import Failed, Result

    def one() -> float:
        start = time.perf_counter()
        events = list(session.run("calc_add", ARGUMENTS))
        took = time.perf_counter() - start
        outcome = events[-1]
        if isinstance(outcome, Failed) or not isinstance(outcome, Result):
            raise SystemExit(f"the call failed: {outcome}")
        return took

    with Session(load()) as session:
        one()
        return [one() for _ in range(runs)]


def _timed_cli(env: dict[str, str]) -> float:
    start = time.perf_counter()
    _cli(env, "processes", "run", "calc_add", "-p", "a=1", "-p", "b=2")
    return time.perf_counter() - start


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([str(BIN / "agentctl"), *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"agentctl {' '.join(args)} failed: {done.stderr}")
    return done.stdout


if __name__ == "__main__":
    os.environ.setdefault("DO_NOT_TRACK", "1")
    main()
