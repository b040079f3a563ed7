"""``agentctl status``: what the recorded stack runs, whether each piece answers, and the actors, as
a view model (the same behind rich output and ``--json``)."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from agentctl.config import Settings
from agentctl.stack import gateway
from agentctl.stack.health import dead_pieces, unready
from agentctl.stack.lifecycle import Stack
from agentctl.stack.prefect_server import healthy_api
from agentctl.stack.state import StackState, busy, state_path
from agentctl.views import ActorStatus, GatewayStatus, PrefectStatus, RayStatus, StackDown, StackUp, StatusView


def status(settings: Settings, connected: Any = None) -> StatusView:
    """What is up, where, whether each piece answers, the actors alive and busy, and versions.

    ``connected``: the ``ray`` module of a process connected to the stack's Ray already (the gateway)."""
    stack = Stack.load(settings)
    if stack is None or not stack.state.ready:  # a stack still starting has no address to ask yet
        return StackDown(
            state_file=str(state_path(settings)),
            unready=None if stack is None else unready(stack.state, settings),
            starting=stack is not None and busy(settings),
            versions=versions(),
        )
    return _ready(settings, stack, connected)


def _ready(settings: Settings, stack: Stack, connected: Any) -> StackUp:
    state = stack.state
    dead = dead_pieces(state)
    actors = _actors(stack, "Ray head" in dead, connected)
    gateway = _gateway(settings, state)
    if gateway is not None and not gateway.alive:
        dead.append("gateway")
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
        gateway=gateway,
        versions=versions(),
    )


def _actors(stack: Stack, ray_dead: bool, connected: Any) -> list[ActorStatus]:
    if ray_dead:
        return [ActorStatus(name=name, alive=False) for name in stack.state.actors]
    if connected is not None:
        return [_one_actor(connected, name) for name in stack.state.actors]
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


def _gateway(settings: Settings, state: StackState) -> GatewayStatus | None:
    """The gateway up started (or should have: enabled, and none recorded), and whether it answers."""
    if state.gateway_pid is None and not settings.gateway.enabled:
        return None
    alive = gateway.answers(settings, state)
    return GatewayStatus(url=state.gateway_url, pid=state.gateway_pid, alive=alive, mcp_url=gateway.mcp_url(state))


def versions() -> dict[str, str]:
    """Versions of agentctl and the packages it drives."""
    return {name: version(name) for name in ("agentctl", "ray", "prefect", "openai")}
