"""Shared fixtures: the local LLM and GitHub servers, a shared Prefect API, a network guard, and a
fresh HOME for every CLI a test starts (and one for this process).

Nothing here reaches the internet: every client is pointed at a local server through the same
configuration a user sets. What guards that: in this process, a socket guard refuses any IPv4/IPv6
connect to a host that is not loopback; in child processes (the CLI, Ray's workers, Prefect's
server) only the proxy variables, pointing at a proxy that does not exist, which stop clients that
honour them. Complete only where the suite runs in a network namespace with loopback alone, as
``.ci/run`` does when run as root: there any other connection fails at the network.

Nothing here reads or writes the developer's HOME: what Ray, Prefect and agentctl keep there (Ray's
auth token, Prefect's profiles) would make the tests pass where a new user's first call fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deployments import Deployed, Worker, create_pool, deploy, worker_env
from tests.servers import FakeGitHub, FakeLLM

API_KEY = "sk-test-7f3c9a1e5b2d4c6f8a0e"
GITHUB_TOKEN = "ghp_testtoken_5e8d2c1b9a7f"
AGENTCTL = str(Path(sys.executable).with_name("agentctl"))
LOOPBACK = ("127.0.0.1", "::1", "localhost")
# Any client that ignores the local servers hits this proxy, which refuses every connection.
DEAD_PROXY = "http://127.0.0.1:9"
NO_PROXY = "127.0.0.1,localhost,::1"
# The developer's settings for agentctl, Prefect, Ray and the LLM client never reach a test.
FOREIGN = ("AGENTCTL_", "OPENAI_", "AZURE_", "PREFECT_", "RAY_", "XDG_")


def fresh_home(root: Path) -> dict[str, str]:
    """HOME, the XDG directories and PREFECT_HOME of a user who never ran anything, under ``root``."""
    home = root / "home"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)  # as root's and most users' HOME: others cannot enter
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "PREFECT_HOME": str(home / ".prefect"),
    }


def _own_home_for_this_process() -> Path:
    """This process (the shared Prefect API, tests that import Prefect or Ray) gets a fresh HOME too;
    set at import, before anything imports Prefect, which reads PREFECT_HOME then."""
    root = Path(tempfile.mkdtemp(prefix="agentctl-tests-"))
    for name in [n for n in os.environ if n.startswith(FOREIGN)]:
        del os.environ[name]
    os.environ.update(fresh_home(root))
    return root


_PROCESS_HOME = _own_home_for_this_process()


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_PROCESS_HOME, ignore_errors=True)


def _guard_connect(original: Any) -> Any:
    def connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and self.family in (socket.AF_INET, socket.AF_INET6) and host not in LOOPBACK:
            raise ConnectionRefusedError(f"tests must not reach the network (tried {host})")
        return original(self, address)

    return connect


@pytest.fixture(autouse=True, scope="session")
def no_network() -> Iterator[None]:
    original = socket.socket.connect
    socket.socket.connect = _guard_connect(original)  # type: ignore[method-assign]
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        os.environ[name] = DEAD_PROXY
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = NO_PROXY
    yield
    socket.socket.connect = original  # type: ignore[method-assign]


@pytest.fixture(autouse=True, scope="session")
def interruptible_children() -> Iterator[None]:
    """Let the CLIs the tests start take Ctrl-C, as a terminal's foreground job does.

    A suite started as a background job (``.ci/run &``, some CI runners) inherits SIGINT ignored,
    and exec keeps an ignored signal ignored: the Ctrl-C tests would then test nothing but that.
    A handler, unlike SIG_IGN, is reset to the default in every child at exec.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield


@pytest.fixture(scope="session")
def llm_server() -> Iterator[FakeLLM]:
    server = FakeLLM(API_KEY)
    yield server
    server.close()


@pytest.fixture(scope="session")
def github_server() -> Iterator[FakeGitHub]:
    server = FakeGitHub()
    yield server
    server.close()


@pytest.fixture
def llm(llm_server: FakeLLM) -> FakeLLM:
    llm_server.reset()
    return llm_server


@pytest.fixture
def github(github_server: FakeGitHub) -> FakeGitHub:
    github_server.reset()
    return github_server


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real Prefect API server for the CLI tests that set PREFECT_API_URL."""
    from agentctl.stack.prefect_server import LocalPrefectAPI

    api = LocalPrefectAPI(tmp_path_factory.mktemp("prefect-shared"), telemetry=False)
    api.start()
    _wait_healthy(api.url)
    yield api.url
    api.stop()


@pytest.fixture(scope="session")
def deployed(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """Deployments of ``tests/fixtures/deployed`` on the shared Prefect API: in a real ``process`` work
    pool served by a real ``prefect worker start`` (with a HOME of its own), and in a pool with no worker."""
    root = tmp_path_factory.mktemp("worker")
    create_pool(prefect_api, "agentctl-tests")
    create_pool(prefect_api, "no-worker")
    ready = deploy(prefect_api, "agentctl-tests")
    idle = deploy(prefect_api, "no-worker", ("quiet",), name="idle")
    worker = Worker.start(worker_env(isolated_env(root), prefect_api), "agentctl-tests", root / "worker.log")
    yield Deployed(prefect_api, "agentctl-tests", ready, "no-worker", idle)
    worker.stop()


def _wait_healthy(url: str) -> None:
    import httpx

    with httpx.Client(trust_env=False) as client:
        for _ in range(1200):
            try:
                if client.get(f"{url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            # Readiness polling of a server we started, not a race being hidden.
            import time

            time.sleep(0.1)
    raise RuntimeError("the shared Prefect API did not start")


def isolated_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment for a program a test starts (agentctl, ``ray start``): a fresh HOME
    under ``tmp_path``, none of the developer's agentctl, Prefect, Ray or LLM settings. Ray's temp dirs
    are agentctl's own private ones (``ray start`` helpers pass their own): under ``tmp_path`` they would
    pass the 107 bytes Ray's socket paths may have."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    keep.pop("GITHUB_TOKEN", None)
    return {**keep, **fresh_home(tmp_path)}


def base_env(tmp_path: Path, llm: FakeLLM, github: FakeGitHub) -> dict[str, str]:
    """The environment a user would set, pointed at the local servers; no user config is read."""
    return {
        **isolated_env(tmp_path),
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": f"{llm.url}/v1",
        "GITHUB_API_URL": github.url,
        "AGENTCTL_DATA_DIR": str(tmp_path / "data"),
        "AGENTCTL_GITHUB__RETRY_DELAY_SECONDS": "0",
        "AGENTCTL_LLM__MAX_RETRIES": "0",
        "AGENTCTL_POOL__SIZE": "1",
        "COLUMNS": "200",
    }


@dataclass
class CLIResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def start_ray_head(env: dict[str, str], ip: str = "127.0.0.1", joinable: bool = False) -> tuple[str, str]:
    """A Ray head on loopback that agentctl did not start, with token auth on as Ray's docs set it up
    (``ray get-auth-token --generate``, then ``ray start``) in ``env``'s HOME: its address and temp dir.
    ``joinable``: other nodes may join it (Ray's cluster mode, off by default on loopback)."""
    from agentctl.stack.prefect_server import free_port

    ray = str(Path(AGENTCTL).with_name("ray"))
    env = {k: v for k, v in env.items() if not k.startswith("RAY_")}
    port, temp_dir = free_port(), tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    subprocess.run([ray, "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=120)
    command = [
        ray,
        "start",
        "--head",
        f"--node-ip-address={ip}",
        f"--port={port}",
        f"--temp-dir={temp_dir}",
        "--include-dashboard=false",
        "--disable-usage-stats",
    ]
    cluster = "1" if joinable else "0"
    subprocess.run(
        command, env={**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": cluster}, check=True, capture_output=True, timeout=120
    )
    return f"{ip}:{port}", temp_dir


def join_ray_node(address: str, token_path: str, env: dict[str, str], resources: list[str]) -> str:
    """A second Ray node on this machine joined to the head at ``address`` with its token, its own temp
    dir (returned; ``stop_ray_head`` stops it) and ``resources`` (custom, one unit each), its workers
    started in ``env``; returned once a driver on the head gets work placed there."""
    ray = str(Path(AGENTCTL).with_name("ray"))
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    command = [
        ray,
        "start",
        f"--address={address}",
        "--node-ip-address=127.0.0.1",
        f"--temp-dir={temp_dir}",
        f"--resources={json.dumps(dict.fromkeys(resources, 1))}",
        "--disable-usage-stats",
    ]
    env = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": token_path, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=120)
    # `ray start` returns once the node is registered; the head's raylet places work there only once
    # it has heard of the node's resources, until then it places "soft" node affinity elsewhere.
    ready = {**env, "RAY_ADDRESS": address, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    subprocess.run(
        [sys.executable, "-c", _NODE_READY, *resources], env=ready, check=True, capture_output=True, timeout=120
    )
    return temp_dir


_NODE_READY = """
import sys, ray
ray.init(log_to_driver=False)
ray.get(ray.remote(num_cpus=0, resources={r: 1 for r in sys.argv[1:]})(lambda: None).remote(), timeout=90)
"""


def stop_ray_head(temp_dir: str) -> None:
    """Stop the head ``start_ray_head`` started, and nothing else."""
    from agentctl.stack import proctree

    for pids in proctree.ray_stop_order(proctree.ray_pids(temp_dir)):
        for pid in pids:
            proctree.send(pid, signal.SIGKILL)
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One Ray head for the CLI tests of routing and runs, joined as a user joins their own ``ray
    start`` cluster: its address and its token's file. The calls that start a cluster of their own
    (a fresh machine) are tested with ``base_env``."""
    home = isolated_env(tmp_path_factory.mktemp("ray-shared"))
    address, temp_dir = start_ray_head(home)
    yield {"RAY_ADDRESS": address, "RAY_AUTH_TOKEN_PATH": str(Path(home["HOME"]) / ".ray" / "auth_token")}
    stop_ray_head(temp_dir)


@pytest.fixture
def env(
    tmp_path: Path, llm: FakeLLM, github: FakeGitHub, prefect_api: str, ray_cluster: dict[str, str]
) -> dict[str, str]:
    """User environment with the shared Prefect API and Ray cluster configured."""
    return {**base_env(tmp_path, llm, github), "PREFECT_API_URL": prefect_api, **ray_cluster}


def run_cli(env: dict[str, str], *args: str, timeout: float = 180, cwd: Path | None = None) -> CLIResult:
    """Run the installed ``agentctl`` as a user would."""
    # No terminal on stdin, whoever runs the suite: nothing can wait for a person's answer.
    proc = subprocess.run(
        [AGENTCTL, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL
    )
    return CLIResult(proc.returncode, proc.stdout, proc.stderr)


SERVED_DEPLOYMENTS = {"etl/daily-load", "etl/weekly-load", "reports/daily"}  # tests/fixtures/deployments/serve.py


@pytest.fixture(scope="session")
def served_deployments(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The flows of ``tests/fixtures/deployments`` served by ``serve`` in a process of their own, against
    the shared Prefect API; yields that API's URL once all their deployments are in it."""
    home = tmp_path_factory.mktemp("served")
    env = {**isolated_env(home), "PREFECT_API_URL": prefect_api, "DO_NOT_TRACK": "1"}
    command = [sys.executable, "-m", "tests.fixtures.deployments.serve"]
    root = Path(__file__).resolve().parent.parent
    log = home / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_deployments(prefect_api, server, log)
        yield prefect_api
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_for_deployments(api: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Until the API lists every served deployment; the server's output if it exits first."""
    import time

    import httpx

    deadline = time.monotonic() + 120
    with httpx.Client(base_url=api + "/", trust_env=False, timeout=5) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"serving the fixture flows failed: {log.read_text()[-2000:]}")
            flows = {f["id"]: f["name"] for f in client.post("flows/filter", json={}).json()}
            deployments = client.post("deployments/filter", json={}).json()
            if {f"{flows.get(d['flow_id'])}/{d['name']}" for d in deployments} >= SERVED_DEPLOYMENTS:
                return
            time.sleep(0.2)  # polling the API for a condition, with a deadline
    raise RuntimeError("the served fixture deployments did not appear in the Prefect API")
