"""Per-request overhead of a warm session (what ``agentctl repl`` keeps open), against a cold ask.

One Session serves N requests, as the REPL does; each request's overhead is its wall time minus the
time the local LLM and GitHub servers spent answering it. Medians and p90 are printed.

    .venv/bin/python benchmarks/bench_warm.py --requests 20
"""

from __future__ import annotations

import argparse
import statistics
import time

from local import REQUEST, local_servers

from tests.servers import tool_call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    count = parser.parse_args().requests
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


def report(name: str, samples: list[float]) -> None:
    p90 = statistics.quantiles(samples, n=10)[-1] if len(samples) > 1 else samples[0]
    print(f"{name:<60} median {statistics.median(samples):.3f} s  p90 {p90:.3f} s  max {max(samples):.3f} s")


if __name__ == "__main__":
    main()
