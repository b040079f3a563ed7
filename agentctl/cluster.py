"""Ray: start a local cluster on loopback, or connect to the one configured."""

from __future__ import annotations

import logging
import os
from typing import Any

from agentctl.config import Settings
from agentctl.errors import StackError

NAMESPACE = "agentctl"


def connect(settings: Settings, env_vars: dict[str, str]) -> bool:
    """Start or connect to Ray; return True when this call started a local cluster."""
    local = not settings.ray.address
    loopback = (settings.ray.address or "").startswith(("127.", "localhost"))
    if loopback:
        # A head on this machine (agentctl up's) has Ray's default token auth on; an explicit
        # address needs the driver told so, or it retries for ~20 s and fails.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    if local or loopback:
        # With cluster mode off Ray takes 127.0.0.1 as the node address and binds only to loopback;
        # Ray reads this when it is imported, so it must be set first.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if not settings.prefect.telemetry:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray's own telemetry, off like Prefect's
    import ray

    quiet_console()
    try:
        _init(ray, settings, env_vars, local)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "a local Ray cluster" if local else f"Ray at {settings.ray.address}"
        raise StackError(f"could not start or reach {where}: {exc}; check ray.address / RAY_ADDRESS") from None
    return local


def _init(ray: Any, settings: Settings, env_vars: dict[str, str], local: bool) -> None:
    ray.init(
        address="local" if local else settings.ray.address,
        namespace=NAMESPACE,
        include_dashboard=settings.ray.dashboard if local else None,
        num_cpus=settings.ray.num_cpus if local else None,
        runtime_env={"env_vars": env_vars},
        logging_level=logging.ERROR,
        log_to_driver=False,
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


def shutdown() -> None:
    """Disconnect from Ray; a local cluster started by ``connect`` stops with it."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
