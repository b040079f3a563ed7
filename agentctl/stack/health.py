"""Whether the recorded stack can serve a call: its pieces alive (pids and /proc, no network, no Ray
import), finished starting, and started for the same settings. The one place this is judged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentctl.config import Settings
from agentctl.processes.discovery import anchored, import_path
from agentctl.stack import proctree
from agentctl.stack.state import StackState, busy


@dataclass(frozen=True)
class Unusable:
    """Why the recorded stack cannot serve a call. ``stale``: it is starting, half started or has a
    dead piece (``up`` starts it afresh); else it runs, for other settings."""

    reason: str
    stale: bool


def unusable_for(state: StackState, settings: Settings) -> Unusable | None:
    """Why the stack of ``state`` cannot serve a call with ``settings``, or None when it can."""
    if (reason := unready(state, settings)) is not None:
        return Unusable(reason, stale=True)
    if dead := dead_pieces(state):
        return Unusable(f"its {', '.join(dead)} died", stale=True)
    if (reason := mismatch(state, settings)) is not None:
        return Unusable(reason, stale=False)
    return None


def unready(state: StackState, settings: Settings) -> str | None:
    """Why the stack is not ready yet (its ``up`` still runs, or died half way), or None."""
    if state.ready:
        return None
    return "agentctl up is still starting it" if busy(settings) else "its agentctl up did not finish"


def dead_pieces(state: StackState) -> list[str]:
    """The pieces ``up`` started that no longer run."""
    dead = []
    if state.ray_temp_dir is not None and not proctree.ray_head_runs(state.ray_temp_dir):
        dead.append("Ray head")
    if not prefect_runs(state):
        dead.append("Prefect server")
    if state.postgres_pid is not None and not _postgres_runs(state.postgres_pid, state.postgres_data):
        dead.append("PostgreSQL")
    return dead


def prefect_runs(state: StackState) -> bool:
    """Whether the Prefect server up started still runs (True for a configured one: not ours to judge)."""
    return state.prefect_pid is None or prefect_is(state.prefect_pid, state.prefect_url)


def prefect_is(pid: int, url: str) -> bool:
    """Whether ``pid`` is still the Prefect server serving ``url`` (a pid can be reused after a crash)."""
    port = url.rsplit(":", 1)[-1].split("/")[0]
    command = proctree.cmdline(pid)
    return "uvicorn" in command and f"--port {port}" in command


def _postgres_runs(pid: int, data: str | None) -> bool:
    # The server names its data directory on its command line; state files of older versions lack it.
    return (data or "postgres") in proctree.cmdline(pid)


def mismatch(state: StackState, settings: Settings) -> str | None:
    """Why the running stack cannot serve a call with ``settings``, or None when it can."""
    if settings.ray.address and settings.ray.address != state.ray_address:
        return f"ray.address is {settings.ray.address} but the stack's Ray is at {state.ray_address}"
    if other_prefect(state, settings):
        return f"prefect.api_url is {settings.prefect.api_url} but the stack's is {state.prefect_url}"
    if processes_key(settings) != state.processes:
        return "its actors load other processes (processes.* or the directory they are imported from differ)"
    return None


def other_prefect(state: StackState, settings: Settings) -> bool:
    """Whether ``settings`` name a Prefect API other than the stack's."""
    configured = settings.prefect.api_url
    return configured is not None and configured != "" and configured.rstrip("/") != state.prefect_url.rstrip("/")


def keeps_history_for(state: StackState, settings: Settings) -> bool:
    """Whether the stack's Prefect API is alive and the one ``settings`` use (for run history)."""
    return bool(state.prefect_url) and prefect_runs(state) and not other_prefect(state, settings)


def processes_key(settings: Settings) -> dict[str, Any]:
    """What decides which processes the actors load: the processes settings, and where modules come from.

    Not ``run_tags``: each request brings its own (``agentctl mcp serve`` adds ``mcp``)."""
    key: dict[str, Any] = anchored(settings).processes.model_dump(exclude={"run_tags"})
    if settings.processes.modules:
        key["import_path"] = import_path(settings)
    return key
