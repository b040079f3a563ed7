"""Where the router actors go on a Ray cluster: one slot per actor, each pinned to an alive node.

The slots take the nodes in turn, the other nodes before the driver's own (which also runs the
CLI, and often Ray's head and the Prefect server): with ``pool.per_node`` each alive node gets that
many actors; with ``pool.size`` that many actors are dealt over the nodes. Each actor is placed with
a soft ``NodeAffinitySchedulingStrategy``: on its node while that node lives, anywhere else when it
is gone (an actor started in a dead one's place still starts).
"""

from __future__ import annotations

from typing import Any

from agentctl.config import PoolSettings


def plan(nodes: list[str], here: str | None, pool: PoolSettings) -> list[str]:
    """The node of each actor slot, dealt in turn over ``nodes`` (``here``, the driver's, last)."""
    order = sorted(n for n in nodes if n != here) + ([here] if here in nodes else [])
    count = pool.per_node * len(order) if pool.per_node else pool.size
    return [order[i % len(order)] for i in range(count)] if order else []


def alive_nodes(ray: Any) -> list[str]:
    """The ids of the cluster's alive nodes."""
    return [node["NodeID"] for node in ray.nodes() if node.get("Alive")]


def slots(ray: Any, pool: PoolSettings) -> list[str]:
    """The node of each actor slot on the cluster ``ray`` is connected to now."""
    return plan(alive_nodes(ray), ray.get_runtime_context().get_node_id(), pool)


def on_node(node: str) -> dict[str, Any]:
    """Ray actor options that place an actor on ``node``, or elsewhere when it died."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node, soft=True)}
