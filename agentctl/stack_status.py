"""``agentctl status``: what the recorded stack runs, whether each piece answers, and the actors."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from agentctl.config import Settings
from agentctl.stack import StackState, busy, connected, dead_pieces, read_state, state_path, unusable


def status(settings: Settings) -> dict[str, Any]:
    """What is up, where, whether each piece answers, the actors alive and busy, and versions."""
    state = read_state(settings)
    if state is None or not state.ready:  # a stack still starting has no address to ask yet
        unready = None if state is None else unusable(settings, state)
        return {"up": False, "state_file": str(state_path(settings)), "dead": [], "unready": unready,
                "starting": state is not None and busy(settings), "versions": versions()}
    dead = dead_pieces(state)
    actors = _actors(settings, state, "Ray head" in dead)
    dead += [a["name"] for a in actors if not a["alive"]]
    healthy = _healthy(state.prefect_url)
    if not healthy and "Prefect server" not in dead:
        dead.append("Prefect API (not answering)")
    return {
        "up": not dead, "dead": dead, "state_file": str(state_path(settings)), "started_at": state.started_at,
        "ray": {"address": state.ray_address, "started_by_up": state.ray_temp_dir is not None},
        "prefect": {"api_url": state.prefect_url, "ui_url": state.ui_url, "healthy": healthy,
                    "started_by_up": state.prefect_pid is not None, "database": state.database},
        "actors": actors, "versions": versions(),
    }


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url.rstrip('/')}/health", timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def _actors(settings: Settings, state: StackState, ray_dead: bool) -> list[dict[str, Any]]:
    from agentctl import cluster
    from agentctl.errors import StackError

    if ray_dead:
        return [{"name": n, "alive": False, "busy": None, "pid": None} for n in state.actors]
    try:
        cluster.connect(connected(settings, state), {})  # before importing ray: it sets what ray reads at import
    except StackError:
        return [{"name": n, "alive": False, "busy": None, "pid": None} for n in state.actors]
    import ray

    try:
        return [_one_actor(ray, name) for name in state.actors]
    finally:
        cluster.shutdown()


def _one_actor(ray: Any, name: str) -> dict[str, Any]:
    from agentctl import cluster

    try:
        stats = ray.get(ray.get_actor(name, namespace=cluster.NAMESPACE).stats.remote(), timeout=5)
        return {"name": name, "alive": True, **stats}
    except (ValueError, ray.exceptions.RayError):
        return {"name": name, "alive": False, "busy": None, "pid": None}


def versions() -> dict[str, str]:
    """Versions of agentctl and the packages it drives."""
    return {name: version(name) for name in ("agentctl", "ray", "prefect", "openai")}
