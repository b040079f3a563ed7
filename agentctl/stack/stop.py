"""Stopping each piece of the stack for ``down`` (or after a failed ``up``): only what ``up``
started, each named in what is returned."""

from __future__ import annotations

import contextlib
import shutil
import signal
from pathlib import Path
from typing import Any

from agentctl.config import Settings
from agentctl.stack import proctree
from agentctl.stack.health import prefect_runs
from agentctl.stack.state import StackState
from agentctl.stack.worker_env import without_secrets


def ray_head(temp_dir: str) -> list[str]:
    """Stop the Ray head whose daemons live under ``temp_dir``."""
    pids = proctree.ray_pids(temp_dir)
    # `ray stop`'s order: the raylet first, the GCS last. Terminated all at once, the GCS and the
    # autoscaler's monitor hang in their shutdown until killed; in this order all exit within ~1 s.
    for bucket in proctree.ray_stop_order(pids):
        for pid in bucket:
            proctree.send(pid, signal.SIGTERM)
        proctree.wait_gone(bucket, timeout=5)
    left = proctree.ray_pids(temp_dir)  # what is left after the grace periods
    for pid in left:
        proctree.send(pid, signal.SIGKILL)
    proctree.wait_gone(left, timeout=5)
    _remove(Path(temp_dir))
    return [f"Ray head and its {len(pids)} processes ({temp_dir})"] if pids else []


def _remove(temp_dir: Path) -> None:
    """Remove a stopped head's temp dir, and agentctl's private one around it: its sockets and
    session logs (a few MB in /tmp) are read by nothing once the head is gone."""
    mine = temp_dir.parent if temp_dir.parent.name.startswith("agentctl-ray-") else temp_dir
    shutil.rmtree(mine, ignore_errors=True)


def actors(ray: Any, names: list[str]) -> list[str]:
    """Kill the named router actors on a Ray up did not start (``ray``: the connected module)."""
    from agentctl.stack.ray_cluster import NAMESPACE

    for name in names:
        with contextlib.suppress(ValueError):  # already gone
            ray.kill(ray.get_actor(name, namespace=NAMESPACE))
    return [f"router actors {', '.join(names)}"]


def prefect(state: StackState) -> list[str]:
    """Stop the Prefect server up started, if it still runs."""
    if state.prefect_pid is None or not prefect_runs(state):
        return []
    proctree.stop_group(state.prefect_pid)
    return [f"Prefect server (pid {state.prefect_pid})"]


def postgres(settings: Settings, state: StackState) -> list[str]:
    """Stop the PostgreSQL server up started."""
    from agentctl.stack.postgres import stop

    if state.postgres_pid is None:
        return []
    stopped = stop(settings.data_dir, settings.database.postgres_bin, without_secrets(settings))
    return [f"PostgreSQL (pid {state.postgres_pid})"] if stopped else []
