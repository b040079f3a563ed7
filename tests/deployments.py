"""A real ``process`` work pool, a real ``prefect worker`` on it and deployments of local flows, for tests.

The deployments are built from a local directory (``flow.from_source(<dir>, entrypoint)``): no
Docker, no git. The worker polls every half second and its runs send logs every 0.2 s, so a test
waits on what it controls, not on Prefect's defaults.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agentctl.processes.deployment_source import Deployment

FLOWS_DIR = Path(__file__).parent / "fixtures" / "deployed"
FLOWS = ("held", "fails", "quiet")


def worker_env(base: dict[str, str], api_url: str) -> dict[str, str]:
    """The worker's environment: quick polls and log batches; results kept where any process here reads them."""
    return {
        **base,
        "PREFECT_API_URL": api_url,
        "PREFECT_WORKER_QUERY_SECONDS": "0.5",
        "PREFECT_WORKER_HEARTBEAT_SECONDS": "30",
        "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.2",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "DO_NOT_TRACK": "1",
    }


def create_pool(api_url: str, name: str) -> None:
    """A ``process`` work pool named ``name``, through the API."""
    import httpx

    with httpx.Client(base_url=api_url, trust_env=False, timeout=30) as http:
        http.post("/work_pools/", json={"name": name, "type": "process"}).raise_for_status()


def deploy(api_url: str, pool: str, flows: tuple[str, ...] = FLOWS, name: str = "test") -> dict[str, Deployment]:
    """Each of ``flows`` (in ``FLOWS_DIR``) deployed as ``<flow>/<name>`` into ``pool``: its Deployment, by flow."""
    from prefect import flow
    from prefect.settings import PREFECT_API_URL, temporary_settings

    found = {}
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        for flow_name in flows:
            source = flow.from_source(source=str(FLOWS_DIR), entrypoint=f"deployed_flows.py:{flow_name}")
            # What `Flow.deploy` registers, without its image build and push or its console output.
            deployment_id = source.to_deployment(name=name, work_pool_name=pool).apply()
            found[flow_name] = Deployment(id=str(deployment_id), flow_name=source.name, name=name, work_pool=pool)
    return found


@dataclass
class Deployed:
    """The deployments of the session: ``ready`` in a pool with a worker, ``idle`` in ``idle_pool``, which has none."""

    api_url: str
    pool: str
    ready: dict[str, Deployment]
    idle_pool: str
    idle: dict[str, Deployment]


@dataclass
class Worker:
    """A ``prefect worker start`` process of our own, stopped with its process group."""

    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, env: dict[str, str], pool: str, log: Path) -> Worker:
        prefect = str(Path(os.environ.get("VIRTUAL_ENV", "")) / "bin" / "prefect")
        if not Path(prefect).exists():
            import sys

            prefect = str(Path(sys.executable).with_name("prefect"))
        command = [prefect, "worker", "start", "--pool", pool, "--type", "process"]
        with log.open("wb") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return cls(process)

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
