"""``agentctl status``: what the recorded stack runs, whether each piece answers, and the actors, as
a view model (the same behind rich output and ``--json``)."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from agentctl.config import Settings
from agentctl.stack.health import dead_pieces, unready
from agentctl.stack.lifecycle import Stack
from agentctl.stack.prefect_server import healthy_api
from agentctl.stack.state import busy, state_path
from agentctl.views import ActorStatus, PrefectStatus, RayStatus, StackDown, StackUp, StatusView


def status(settings: Settings) -> StatusView:
    """What is up, where, whether each piece answers, the actors alive and busy, and versions."""
    stack = Stack.load(settings)
    if stack is None or not stack.state.ready:  # a stack still starting has no address to ask yet
        return StackDown(
            state_file=str(state_path(settings)),
            unready=None if stack is None else unready(stack.state, settings),
            starting=stack is not None and busy(settings),
            versions=versions(),
        )
    return _ready(settings, stack)


def _ready(settings: Settings, stack: Stack) -> StackUp:
    state = stack.state
    dead = dead_pieces(state)
    actors = _actors(stack, "Ray head" in dead)
    dead += [a.name for a in actors if not a.alive]
    healthy = healthy_api(state.prefect_url)
    if not healthy and "Prefect server" not in dead:
        dead.append("Prefect API (not answering)")
    return StackUp(
        up=not dead,
        dead=dead,
        state_file=str(state_path(settings)),
        started_at=state.started_at,
        ray=RayStatus(address=state.ray_address, started_by_up=state.ray_temp_dir is not None),
        prefect=PrefectStatus(
            api_url=state.prefect_url,
            ui_url=state.ui_url,
            healthy=healthy,
            started_by_up=state.prefect_pid is not None,
            database=state.database,
        ),
        actors=actors,
        versions=versions(),
    )


def _actors(stack: Stack, ray_dead: bool) -> list[ActorStatus]:
    if ray_dead:
        return [ActorStatus(name=name, alive=False) for name in stack.state.actors]
    with stack.on_ray() as ray:
        return [_one_actor(ray, name) for name in stack.state.actors]


def _one_actor(ray: Any, name: str) -> ActorStatus:
    from agentctl.stack.ray_cluster import NAMESPACE

    if ray is None:
        return ActorStatus(name=name, alive=False)
    try:
        stats = ray.get(ray.get_actor(name, namespace=NAMESPACE).stats.remote(), timeout=5)
        return ActorStatus(name=name, alive=True, **stats)
    except (ValueError, ray.exceptions.RayError):
        return ActorStatus(name=name, alive=False)


def versions() -> dict[str, str]:
    """Versions of agentctl and the packages it drives."""
    return {name: version(name) for name in ("agentctl", "ray", "prefect", "openai")}
