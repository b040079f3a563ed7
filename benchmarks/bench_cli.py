"""Wall time of the CLI: ``--help``, ``processes list`` and a cold ``ask``, medians over several runs.

The LLM and GitHub are the local servers of the test suite, so the figures are agentctl's own cost
(plus Ray's and Prefect's). A cold ask is split into phases measured in-process with a Session:
start-up (Prefect API + Ray + actors), routing (until the route arrives), run (until the result),
shutdown; "process" is the rest of the CLI's wall time (interpreter, imports, exit).

    .venv/bin/python benchmarks/bench_cli.py --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from local import REQUEST, local_servers, one_ask_phases, report

from tests.servers import FakeGitHub, FakeLLM, tool_call
from tests.test_cli_processes import generated_module

AGENTCTL = str(Path(sys.executable).with_name("agentctl"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    llm, github, data, env = local_servers()
    print(f"median of {runs} runs, seconds")
    report("agentctl --help", [timed(env, "--help") for _ in range(runs)])
    report("agentctl processes list", [timed(env, "processes", "list") for _ in range(runs)])
    many = data / "many.py"
    many.write_text(generated_module(200))
    env_many = {**env, "AGENTCTL_PROCESSES__PATHS": str(many)}
    report("agentctl processes list (202 processes)", [timed(env_many, "processes", "list") for _ in range(runs)])
    cold = [timed(env, "ask", REQUEST, script=(llm, github)) for _ in range(runs)]
    report("agentctl ask (cold)", cold)
    phases = [in_process(llm) for _ in range(runs)]
    for name in ("startup", "routing", "run", "shutdown"):
        report(f"  {name}", [p[name] for p in phases])
    rest = statistics.median(cold) - sum(statistics.median([p[n] for p in phases]) for n in phases[0])
    print(f"  {'process (interpreter, imports, exit)':<38} {rest:7.3f}")


def timed(env: dict[str, str], *args: str, script: tuple[FakeLLM, FakeGitHub] | None = None) -> float:
    if script:
        script[0].script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))
    start = time.perf_counter()
    proc = subprocess.run([AGENTCTL, *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"agentctl {' '.join(args)} failed: {proc.stderr}")
    return elapsed


def in_process(llm: FakeLLM) -> dict[str, float]:
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))
    phases = one_ask_phases()
    return {"startup": phases["open"], "routing": phases["routing"], "run": phases["run"], "shutdown": phases["close"]}


if __name__ == "__main__":
    main()
