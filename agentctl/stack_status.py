"""``agentctl status``: what the recorded stack runs, whether each piece answers, and the actors."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from agentctl.config import Settings
from agentctl.prefect_api import healthy_api
from agentctl.stack import StackState, busy, dead_pieces, on_ray, read_state, state_path, unusable


def status(settings: Settings) -> dict[str, Any]:
    """What is up, where, whether each piece answers, the actors alive and busy, and versions."""
    state = read_state(settings)
    if state is None or not state.ready:  # a stack still starting has no address to ask yet
        unready = None if state is None else unusable(settings, state)
        return {
            "up": False,
            "state_file": str(state_path(settings)),
            "dead": [],
            "unready": unready,
            "starting": state is not None and busy(settings),
            "versions": versions(),
        }
    dead = dead_pieces(state)
    actors = _actors(settings, state, "Ray head" in dead)
    dead += [a["name"] for a in actors if not a["alive"]]
    healthy = healthy_api(state.prefect_url)
    if not healthy and "Prefect server" not in dead:
        dead.append("Prefect API (not answering)")
    return {
        "up": not dead,
        "dead": dead,
        "state_file": str(state_path(settings)),
        "started_at": state.started_at,
        "ray": {"address": state.ray_address, "started_by_up": state.ray_temp_dir is not None},
        "prefect": {
            "api_url": state.prefect_url,
            "ui_url": state.ui_url,
            "healthy": healthy,
            "started_by_up": state.prefect_pid is not None,
            "database": state.database,
        },
        "actors": actors,
        "versions": versions(),
    }


def _actors(settings: Settings, state: StackState, ray_dead: bool) -> list[dict[str, Any]]:
    if ray_dead:
        return [_dead(name) for name in state.actors]
    with on_ray(settings, state) as ray:
        return [_one_actor(ray, name) if ray is not None else _dead(name) for name in state.actors]


def _one_actor(ray: Any, name: str) -> dict[str, Any]:
    from agentctl.cluster import NAMESPACE

    try:
        stats = ray.get(ray.get_actor(name, namespace=NAMESPACE).stats.remote(), timeout=5)
        return {"name": name, "alive": True, **stats}
    except (ValueError, ray.exceptions.RayError):
        return _dead(name)


def _dead(name: str) -> dict[str, Any]:
    return {"name": name, "alive": False, "busy": None, "pid": None}


def versions() -> dict[str, str]:
    """Versions of agentctl and the packages it drives."""
    return {name: version(name) for name in ("agentctl", "ray", "prefect", "openai")}
