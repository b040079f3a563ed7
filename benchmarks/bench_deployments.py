"""Latency from starting a deployment run to its first log line, agentctl against Prefect's own CLI.

One Prefect API, one ``process`` work pool and one ``prefect worker`` (polling every 0.5 s; Prefect's
default is 10 s, which would dominate every row alike), and the test suite's ``quiet`` flow deployed
from a local directory. Each row is the median of ``--runs`` runs, in seconds:

- reference: ``prefect deployment run quiet/bench`` started -> the run's first log line readable in
  the API (polled every 0.05 s). What a Prefect user has without agentctl.
- source: ``DeploymentSource.run`` in this process (what the router actor does) -> its first ``Log``
  event: the cost of agentctl's starting and following alone.
- ask: ``agentctl ask --yes`` on the stack of ``agentctl up`` started -> the first log line on its
  stdout: routing by the LLM (a local fake, instant), listing the deployment, starting and following.

    HOME=$(mktemp -d) .venv/bin/python benchmarks/bench_deployments.py --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from local import local_servers, report

from tests.deployments import Worker, create_pool, deploy, worker_env
from tests.servers import tool_call

BIN = Path(sys.executable).parent
DEPLOYMENT = "quiet/bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    llm, _, data, env = local_servers()
    from agentctl.stack.prefect_server import LocalPrefectAPI

    api = LocalPrefectAPI(data / "prefect", telemetry=False)
    api.start()
    try:
        api.wait_ready(60)
        env = {**env, "PREFECT_API_URL": api.url, "DO_NOT_TRACK": "1"}
        create_pool(api.url, "bench")
        deployment = deploy(api.url, "bench", ("quiet",), name="bench")["quiet"]
        worker = Worker.start(worker_env(env, api.url), "bench", data / "worker.log")
        try:
            measure(runs, env, api.url, deployment, llm)
        finally:
            worker.stop()
    finally:
        api.stop()


def measure(runs: int, env: dict[str, str], api_url: str, deployment: object, llm: object) -> None:
    print(f"first log line of a deployment run, median of {runs}, seconds")
    report("reference: prefect deployment run", [reference(env, api_url) for _ in range(runs)], width=44)
    report("agentctl: DeploymentSource.run", [source(api_url, deployment) for _ in range(runs)], width=44)
    report("agentctl ask (on agentctl up)", ask_on_stack(runs, env, deployment, llm), width=44)


def reference(env: dict[str, str], api_url: str) -> float:
    """``prefect deployment run`` started -> the run's first log line in the API."""
    import httpx

    start = time.perf_counter()
    out = subprocess.run([str(BIN / "prefect"), "deployment", "run", DEPLOYMENT], env=env, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", out)
    assert run_id, out
    body = {"logs": {"flow_run_id": {"any_": [run_id.group(1)]}}, "limit": 1, "offset": 0}
    with httpx.Client(base_url=api_url, trust_env=False) as http:
        while not http.post("/logs/filter", json=body).json():
            time.sleep(0.05)  # a benchmark's poll of the API
    return time.perf_counter() - start


def source(api_url: str, deployment: object) -> float:
    """``DeploymentSource.run`` -> its first Log event, in this process."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from agentctl.events import Log
    from agentctl.processes.deployment_source import DeploymentSource
    from agentctl.processes.registry import from_signature

    def quiet(n: int = 1) -> int:
        raise NotImplementedError

    process = from_signature(quiet, name="quiet", source=DeploymentSource(deployment))  # type: ignore[arg-type]

    async def first_line() -> float:
        start = time.perf_counter()
        events = process.source.run(process, {"n": 1}, None)
        async for event in events:
            if isinstance(event, Log):
                took = time.perf_counter() - start
                await events.aclose()
                return took
        raise SystemExit("the run ended without a log line")

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        return asyncio.run(first_line())


def ask_on_stack(runs: int, env: dict[str, str], deployment: object, llm: object) -> list[float]:
    """``agentctl ask --yes`` on a stack that is up -> the first log line on its stdout."""
    from agentctl.processes.deployments import tool_name

    env = {**env, "AGENTCTL_PROCESSES__DEPLOYMENTS": DEPLOYMENT}
    name = tool_name(deployment)  # type: ignore[arg-type]
    llm.responder = lambda body: tool_call(name, {"n": 1})  # type: ignore[attr-defined]
    _cli(env, "up")
    try:
        _first_ask_line(env)  # the first run in each actor pays Prefect's first client: not in the median
        return [_first_ask_line(env) for _ in range(runs)]
    finally:
        _cli(env, "down")


def _first_ask_line(env: dict[str, str]) -> float:
    start = time.perf_counter()
    command = [str(BIN / "agentctl"), "ask", "--yes", "run quiet"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    took = _until(proc, lambda line: " │ " in line, start)
    proc.wait()
    return took


def _until(proc: subprocess.Popen[str], wanted: Callable[[str], bool], start: float) -> float:
    for line in proc.stdout or []:
        if wanted(line):
            return time.perf_counter() - start
    raise SystemExit(f"agentctl ask printed no log line (exit {proc.wait()})")


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([str(BIN / "agentctl"), *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"agentctl {' '.join(args)} failed: {done.stderr}")
    return done.stdout


if __name__ == "__main__":
    os.environ.setdefault("DO_NOT_TRACK", "1")
    main()
