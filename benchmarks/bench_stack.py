"""A warm ``agentctl ask`` on the stack of ``agentctl up`` against the same ask with no stack up.

Both are measured in the same run, with the test suite's local LLM and GitHub servers. Overhead is
the CLI's wall time minus the time those servers spent answering. The warm ask is then split into
phases measured in-process with the same Session the CLI uses: open (connect to Ray, find the
named actors), routing (until the route arrives), run (until the result); "process" is the
rest of the CLI's wall time (interpreter, imports, exit). The CLI does not disconnect from Ray
before it exits; this benchmark's sessions must, and that cost is shown apart.

    .venv/bin/python benchmarks/bench_stack.py --runs 7
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from local import REQUEST, local_servers, one_ask_phases
from local import report as report_line

from tests.servers import FakeGitHub, FakeLLM, tool_call

AGENTCTL = str(Path(sys.executable).with_name("agentctl"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    llm, github, _, env = local_servers()
    llm.responder = lambda body: tool_call("github_repo_info", {"repo": "acme/rocket"})
    print(f"median of {runs} runs, seconds")
    cold = [overhead(env, llm, github, "ask", REQUEST) for _ in range(runs)]
    report("agentctl ask, no stack (cold): overhead", cold)
    report("agentctl up", [overhead(env, llm, github, "up")])
    first = overhead(env, llm, github, "ask", REQUEST)
    warm = [overhead(env, llm, github, "ask", REQUEST) for _ in range(runs)]
    report("agentctl ask on the stack (warm): overhead", warm)
    print(f"  first ask after up (not in the median)    {first:7.3f}")
    print(f"  cold / warm                               {statistics.median(cold) / statistics.median(warm):7.1f}x")
    report("agentctl up, already up", [overhead(env, llm, github, "up") for _ in range(runs)])
    report("agentctl status", [overhead(env, llm, github, "status") for _ in range(runs)])
    report("agentctl runs", [overhead(env, llm, github, "runs") for _ in range(runs)])
    phases(runs, warm)
    report("agentctl down", [overhead(env, llm, github, "down")])


def overhead(env: dict[str, str], llm: FakeLLM, github: FakeGitHub, *args: str) -> float:
    """Wall time of one CLI call minus the time the local servers spent answering it."""
    before = llm.busy_seconds + github.busy_seconds
    start = time.perf_counter()
    proc = subprocess.run([AGENTCTL, *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"agentctl {' '.join(args)} failed: {proc.stderr}")
    return wall - (llm.busy_seconds + github.busy_seconds - before)


def phases(runs: int, warm: list[float]) -> None:
    """Where a warm ask's time goes, measured in this process with the CLI's own Session."""
    samples = [one_ask_phases() for _ in range(runs)]
    paid = ("open", "routing", "run")
    for name in paid:
        report(f"  {name}", [s[name] for s in samples])
    rest = statistics.median(warm) - sum(statistics.median([s[n] for s in samples]) for n in paid)
    print(f"  {'process (interpreter, imports, exit)':<42} {rest:7.3f}")
    # The CLI leaves the connection to its exit; a process that goes on must disconnect.
    report("  (disconnect: not paid by the CLI)", [s["close"] for s in samples])


def report(name: str, samples: list[float]) -> None:
    report_line(name, samples, width=44)


if __name__ == "__main__":
    main()
