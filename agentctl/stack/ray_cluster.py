"""Ray: start a local cluster on loopback, or connect to the one configured; token auth on for both."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentctl.config import Settings
from agentctl.errors import StackError
from agentctl.private import private_dir
from agentctl.stack import ray_auth

NAMESPACE = "agentctl"
PROBE_TIMEOUT = 5.0  # seconds for a configured cluster to answer; Ray's own retries take ~20 s
_own_temp_dir: Path | None = None  # the private dir of the local cluster connect started


def private_ray_dir(parent: Path) -> str:
    """Ray's temp dir inside ``parent``, made the user's alone (0700): Ray's logs hold what runs print,
    and Ray makes every directory of its own tree 0777, so only a parent it does not touch can."""
    try:
        private_dir(parent)  # an older agentctl let Ray own it, and Ray made it 0777
    except OSError as exc:
        raise StackError(f"cannot make Ray's temp dir {parent} ({exc.strerror}): remove it and try again") from None
    return str(parent / "ray")


def connect(settings: Settings, env_vars: dict[str, str], py_modules: list[str] | None = None) -> bool:
    """Start or connect to Ray, its workers given ``env_vars`` and the user's code (``py_modules``,
    see ``shipping``); return True when this call started a local cluster."""
    address = settings.ray.address
    _prepare_env(settings, address)
    import ray

    quiet_console()
    if address:
        _check_joinable(address)
    try:
        _init(ray, settings, {"env_vars": env_vars, **({"py_modules": py_modules} if py_modules else {})}, address)
    except (OSError, RuntimeError, ValueError) as exc:  # OSError: a socket path too long, a full disk
        _remove_temp_dir()
        raise StackError(_init_failure(address, exc)) from None
    return not address


def _init_failure(address: str | None, exc: Exception) -> str:
    """One line for a cluster that would not start or answer; Ray's message says why."""
    if address:
        return f"could not reach Ray at {address}: {exc}; check ray.address / RAY_ADDRESS"
    return f"could not start a local Ray cluster: {exc}"


def _prepare_env(settings: Settings, address: str | None) -> None:
    """What Ray reads from the environment when it is imported: set before the import."""
    ray_auth.prepare(starting=not address)  # the workers of a local cluster inherit this environment
    if not address or address.startswith(("127.", "localhost")):
        # With cluster mode off Ray takes 127.0.0.1 as the node address and binds only to loopback.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if not settings.prefect.telemetry:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray's own telemetry, off like Prefect's


def _init(ray: Any, settings: Settings, runtime_env: dict[str, Any], address: str | None) -> None:
    global _own_temp_dir
    local = not address
    temp_dir = None
    if local:
        # Not the shared /tmp/ray; under /tmp because Ray's socket paths must stay under 108 bytes.
        _own_temp_dir = Path(tempfile.mkdtemp(prefix="agentctl-ray-s"))
        temp_dir = private_ray_dir(_own_temp_dir)
    ray.init(
        address="local" if local else address,
        namespace=NAMESPACE,
        include_dashboard=settings.ray.dashboard if local else None,
        num_cpus=settings.ray.num_cpus if local else None,
        runtime_env=runtime_env,
        logging_level=logging.ERROR,
        log_to_driver=False,
        _temp_dir=temp_dir,
    )


def quiet_console() -> None:
    """Keep what Ray's cluster pushes to a driver (a raylet's death with its last 20 log lines, a
    worker's error) off this process's output: Ray prints it to stdout, which breaks ``--json``, and
    agentctl reports every failure itself in one line; Ray's logs under its temp dir keep it all."""
    import importlib

    worker = importlib.import_module("ray._private.worker")
    worker.print_to_stdstream = _print_nothing  # type: ignore[attr-defined]


def _print_nothing(data: dict[str, Any], ignore_prefix: bool) -> None:
    """Ray's console output, dropped (see ``quiet_console``)."""


def _check_joinable(address: str) -> None:
    """Ask the cluster's GCS for its id with this process's token, in seconds: Ray's own ``init``
    retries a wrong token or an empty port for ~20 s and prints its log lines meanwhile."""
    if address == "auto" or "://" in address:
        return  # found through Ray's temp dir, or Ray Client: no GCS address to ask
    problem = _probe(address)
    if problem is not None:
        raise StackError(problem)


def _probe(address: str) -> str | None:
    """None when the GCS at ``address`` takes this process's token; else what to fix."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT).close()
    except (OSError, ValueError):  # Ray would retry an empty port for over a minute
        return f"no Ray cluster answers at {address}: start it (ray start --head) or fix ray.address / RAY_ADDRESS"
    from ray._raylet import InnerGcsClient  # type: ignore[attr-defined]  # Ray's stub lists only part of it
    from ray.exceptions import AuthenticationError, RayError

    try:
        with _quiet_stderr():  # Ray's C++ client logs each refused attempt there
            InnerGcsClient.standalone(address, None, int(PROBE_TIMEOUT * 1000))
    except AuthenticationError:
        return _refusal(address)
    except RayError as exc:
        return f"Ray at {address} does not answer ({type(exc).__name__}): check ray.address / RAY_ADDRESS"
    return None


def _refusal(address: str) -> str:
    if ray_auth.token_on():
        return (
            f"Ray at {address} refused the auth token in {ray_auth.token_path()}: put that cluster's token "
            "there (or set RAY_AUTH_TOKEN_PATH to its file)"
        )
    return (
        f"Ray at {address} requires token auth: set {ray_auth.MODE_VAR}=token and put its token in "
        f"{ray_auth.token_path()}"
    )


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the block: Ray's C++ side writes there, past Python."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def shutdown() -> None:
    """Disconnect from Ray; a local cluster started by ``connect`` stops with it, and its temp dir goes."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    _remove_temp_dir()


def _remove_temp_dir() -> None:
    global _own_temp_dir
    if _own_temp_dir is not None:
        shutil.rmtree(_own_temp_dir, ignore_errors=True)
        _own_temp_dir = None
