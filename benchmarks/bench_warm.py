"""Per-request overhead of a warm session (what ``agentctl repl`` keeps open), against a cold ask.

One Session serves N requests, as the REPL does; each request's overhead is its wall time minus the
time the local LLM and GitHub servers spent answering it. Medians and p90 are printed.

    .venv/bin/python benchmarks/bench_warm.py --requests 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import FakeGitHub, FakeLLM, tool_call  # noqa: E402

KEY = "sk-bench-0123456789abcdef"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    count = parser.parse_args().requests
    llm, github = FakeLLM(KEY), FakeGitHub()
    github.add_repo("acme/rocket", stars=42, contributors=250)
    data = Path(tempfile.mkdtemp(prefix="agentctl-bench-"))
    os.environ.update({"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": f"{llm.url}/v1", "GITHUB_API_URL": github.url,
                       "AGENTCTL_DATA_DIR": str(data), "XDG_CONFIG_HOME": str(data / "config")})
    from agentctl.config import load
    from agentctl.events import Failed
    from agentctl.session import Session

    opened = time.perf_counter()
    with Session(load()) as session:
        session.warm()  # as agentctl repl does before its first prompt
        print(f"session start-up and warm-up (once): {time.perf_counter() - opened:.3f} s")
        overheads, walls = [], []
        for _ in range(count):
            llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))
            servers_before = llm.busy_seconds + github.busy_seconds
            start = time.perf_counter()
            events = list(session.ask("Give me the stars and contributors for acme/rocket"))
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
