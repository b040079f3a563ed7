"""What the benchmarks share: the test suite's local LLM and GitHub servers and a user environment
pointed at them, with a data directory of its own."""

from __future__ import annotations

import os
import sys
import tempfile
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
        **os.environ, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": f"{llm.url}/v1", "GITHUB_API_URL": github.url,
        "AGENTCTL_DATA_DIR": str(data), "XDG_CONFIG_HOME": str(data / "config"),
    }
    os.environ.update(env)
    return llm, github, data, env
