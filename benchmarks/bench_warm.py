"""Per-request overhead of a warm session (what ``agentctl repl`` keeps open), against a cold ask.

One Session serves N requests, as the REPL does; each request's overhead is its wall time minus the
time the local LLM and GitHub servers spent answering it. Medians and p90 are printed.

    .venv/bin/python benchmarks/bench_warm.py --requests 20

``--gateway``: on a stack of ``agentctl up``, in one run, the whole CLI process (medians of
``--runs``): ``agentctl --help``; an ask the model answers without running anything (the front
door's own cost); a warm ``ask`` that runs the github flow and answers, through the stack's gateway,
and the same ask through Ray (``AGENTCTL_GATEWAY__ENABLED=false``); then a plain HTTP ``POST /v1/ask``
against the same request in a warm Ray driver (the actor's own time, seen from the closest caller).
The CLI processes write and use their bytecode, as an installed package has it.

    .venv/bin/python benchmarks/bench_warm.py --gateway --runs 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local import REQUEST, local_servers

from tests.servers import FakeGitHub, FakeLLM, Reply, say, tool_call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--gateway", action="store_true", help="The CLI through the stack's gateway vs Ray.")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if args.gateway:
        return gateway(args.runs)
    count = args.requests
    llm, github, _, _ = local_servers()
    from agentctl.calls.session import Session
    from agentctl.config import load
    from agentctl.events import Failed

    opened = time.perf_counter()
    with Session(load()) as session:
        session.warm()  # as agentctl repl does before its first prompt
        print(f"session start-up and warm-up (once): {time.perf_counter() - opened:.3f} s")
        overheads, walls = [], []
        for _ in range(count):
            llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))
            servers_before = llm.busy_seconds + github.busy_seconds
            start = time.perf_counter()
            events = list(session.ask(REQUEST))
            wall = time.perf_counter() - start
            if any(isinstance(e, Failed) for e in events):
                raise SystemExit(f"request failed: {events[-1]}")
            walls.append(wall)
            overheads.append(wall - (llm.busy_seconds + github.busy_seconds - servers_before))
    print("per request:", " ".join(f"{w:.2f}" for w in walls))
    report(f"wall per request ({count} requests, warm)", walls)
    report("overhead per request (wall - LLM and GitHub server time)", overheads)
    report("  requests 2..N only", overheads[1:])


GREETING = "Just say hello"


def answer(route: Reply) -> Callable[[dict[str, Any]], Reply]:
    """The local LLM's replies: a greeting is answered at once; anything else calls ``route``, then says done."""

    def reply(body: dict[str, Any]) -> Reply:
        last = body["messages"][-1]
        if last["role"] == "tool":
            return say("done")
        return say("hello") if last["role"] == "user" and GREETING in str(last["content"]) else route

    return reply


def gateway(runs: int) -> None:
    """The table of ``--gateway``: whole CLI processes, then one request over HTTP vs in a Ray driver."""
    llm, github, _, env = local_servers()
    route = tool_call("github_repo_info", {"repo": "acme/rocket"})
    llm.responder = answer(route)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # else every agentctl module is compiled again (~50 ms a call)
    cli(env, "up")
    try:
        cli(env, "ask", REQUEST)  # the first ask warms the actors: not in the medians
        rows = [
            ("agentctl --help", [cli(env, "--help") for _ in range(runs)]),
            ("agentctl ask, answered without a run", [cli(env, "ask", GREETING) for _ in range(runs)]),
            ("agentctl ask, through the gateway", [cli(env, "ask", REQUEST) for _ in range(runs)]),
            ("agentctl ask, through Ray", [cli({**env, RAY_PATH: "false"}, "ask", REQUEST) for _ in range(runs)]),
        ]
        table(rows, runs)
        api_vs_actor(env, runs, llm, github)
    finally:
        cli(env, "down")


RAY_PATH = "AGENTCTL_GATEWAY__ENABLED"
AGENTCTL = str(Path(sys.executable).with_name("agentctl"))


def cli(env: dict[str, str], *args: str) -> float:
    """Wall time of one whole ``agentctl`` process."""
    start = time.perf_counter()
    proc = subprocess.run([AGENTCTL, *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"agentctl {' '.join(args)} failed: {proc.stderr}")
    return wall


def table(rows: list[tuple[str, list[float]]], runs: int) -> None:
    """Medians, and each against ``--help``'s."""
    help_median = statistics.median(rows[0][1])
    print(f"whole process, median of {runs} (seconds)           median    min     max   x --help")
    for name, samples in rows:
        median = statistics.median(samples)
        print(f"{name:<48} {median:6.3f} {min(samples):6.3f} {max(samples):6.3f}  {median / help_median:5.2f}x")


def api_vs_actor(env: dict[str, str], runs: int, llm: FakeLLM, github: FakeGitHub) -> None:
    """``POST /v1/ask`` read to its end with httpx vs the same ask in a warm Ray driver (``Session.ask``),
    each minus the local servers' time."""
    import httpx

    from agentctl.calls.session import Session
    from agentctl.config import load

    data = Path(env["AGENTCTL_DATA_DIR"])
    url = json.loads((data / "stack.json").read_text())["gateway_url"]
    headers = {"Authorization": f"Bearer {(data / 'gateway_token').read_text().strip()}"}
    body = {"request": REQUEST, "secrets": {"OPENAI_API_KEY": env["OPENAI_API_KEY"]}}

    def over_http() -> None:
        with httpx.stream("POST", f"{url}/v1/ask", json=body, headers=headers, timeout=60) as response:
            for _ in response.iter_lines():
                pass

    with Session(load()) as session:
        session.warm()
        in_driver = [served(lambda: list(session.ask(REQUEST)), llm, github) for _ in range(runs)]
    http = [served(over_http, llm, github) for _ in range(runs)]
    added = statistics.median(http) - statistics.median(in_driver)
    print(f"{'one ask in a warm Ray driver (the actor, minus servers)':<56} {statistics.median(in_driver):6.3f}")
    print(f"{'the same ask, POST /v1/ask over HTTP (minus servers)':<56} {statistics.median(http):6.3f}")
    print(f"{'added by the API':<56} {added * 1000:6.1f} ms")


def served(call: Callable[[], object], llm: FakeLLM, github: FakeGitHub) -> float:
    """Wall time of ``call`` minus the time the local servers spent answering it."""
    before = llm.busy_seconds + github.busy_seconds
    start = time.perf_counter()
    call()
    return time.perf_counter() - start - (llm.busy_seconds + github.busy_seconds - before)


def report(name: str, samples: list[float]) -> None:
    p90 = statistics.quantiles(samples, n=10)[-1] if len(samples) > 1 else samples[0]
    print(f"{name:<60} median {statistics.median(samples):.3f} s  p90 {p90:.3f} s  max {max(samples):.3f} s")


if __name__ == "__main__":
    main()
