"""Where the router actors go on a Ray cluster: one slot per actor, each pinned to an alive node.

The slots take the nodes in turn, the other nodes before the driver's own (which also runs the
CLI, and often Ray's head and the Prefect server): with ``pool.per_node`` each alive node gets that
many actors; with ``pool.size`` that many actors are dealt over the nodes. Each actor is pinned to
its node with ``NodeAffinitySchedulingStrategy(soft=False)`` while that node lives; one started in
a dead actor's place after its node died goes wherever Ray puts it.

Not ``SPREAD``: Ray deals it round robin per raylet over everything scheduled there (other pools,
other drivers), so it promises no count per node. Not a placement group: its bundles must reserve
resources (these actors take none) and it is one more object to keep and remove with the actors.
Not ``soft=True``: Ray 2.60 then often places the actor on the driver's node although its own is
alive, seen on a two-node cluster here.
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


def on_node(ray: Any, node: str) -> dict[str, Any]:
    """Ray actor options that pin an actor to ``node``, or none when that node died."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if node not in alive_nodes(ray):
        return {}
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node, soft=False)}
