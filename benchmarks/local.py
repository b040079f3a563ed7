"""What the benchmarks share: the test suite's local LLM and GitHub servers and a user environment
pointed at them, with a data directory of its own."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import FakeGitHub, FakeLLM  # noqa: E402

KEY = "sk-bench-0123456789abcdef"
REQUEST = "Give me the stars and contributors for acme/rocket"


def local_servers() -> tuple[FakeLLM, FakeGitHub, Path, dict[str, str]]:
    """Started servers (acme/rocket: 42 stars, 250 contributors), a data dir, and the environment;
    the environment is also applied to this process."""
    llm, github = FakeLLM(KEY), FakeGitHub()
    github.add_repo("acme/rocket", stars=42, contributors=250)
    data = Path(tempfile.mkdtemp(prefix="agentctl-bench-"))
    env = {
        **os.environ,
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": f"{llm.url}/v1",
        "GITHUB_API_URL": github.url,
        "AGENTCTL_DATA_DIR": str(data),
        "XDG_CONFIG_HOME": str(data / "config"),
    }
    os.environ.update(env)
    return llm, github, data, env


def one_ask_phases() -> dict[str, float]:
    """One ask in this process with the CLI's own Session: open, routing (until the route), run
    (until the result), close; the LLM must already be told how to answer."""
    from agentctl.calls.session import Session
    from agentctl.config import load
    from agentctl.events import Result, Routed

    marks = {"start": time.perf_counter()}
    session = Session(load())
    session.open()
    marks["opened"] = time.perf_counter()
    for event in session.ask(REQUEST):
        if isinstance(event, Routed):
            marks["routed"] = time.perf_counter()
        if isinstance(event, Result):
            marks["result"] = time.perf_counter()
    session.close()
    marks["closed"] = time.perf_counter()
    return {
        "open": marks["opened"] - marks["start"],
        "routing": marks["routed"] - marks["opened"],
        "run": marks["result"] - marks["routed"],
        "close": marks["closed"] - marks["result"],
    }


def report(name: str, samples: list[float], width: int = 40) -> None:
    """One line: the median of ``samples``, with min and max when there are several."""
    spread = f"   (min {min(samples):.3f}, max {max(samples):.3f})" if len(samples) > 1 else ""
    print(f"{name:<{width}} {statistics.median(samples):7.3f}{spread}")
