"""The stack's output: ``up``'s lines and the ``status`` view, as rich text or JSON."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from agentctl.output.untrusted import cells, literal, printable
from agentctl.stack.gateway import mcp_url
from agentctl.stack.state import StackState
from agentctl.views import StackDown, StackUp, StatusView

DEAD_FIX = "agentctl up restarts them (the whole stack when Ray, Prefect or PostgreSQL died)"
GATEWAY_TOKEN = "<data_dir>/gateway_token"


def describe(state: StackState) -> str:
    """One line per piece, for ``up``."""
    lines = [f"Ray: {state.ray_address}", f"Prefect API: {state.prefect_url}", f"database: {state.database}"]
    if state.ui_url:
        lines.append(f"Prefect UI: {state.ui_url}")
    lines.append(f"router actors: {', '.join(state.actors)}")
    if state.gateway_url:
        lines.append(f"gateway: {state.gateway_url} (token in {GATEWAY_TOKEN})")
        lines.append(f"MCP: {mcp_url(state)} (streamable HTTP, the gateway's token)")
    return "\n".join(lines)


def status_view(view: StatusView) -> Group:
    """``agentctl status`` as a table of pieces, then what to do about dead ones."""
    table = Table("piece", "state", "where", title="agentctl stack", title_justify="left")
    if isinstance(view, StackDown):
        table.add_row(*_down_row(view))
        return Group(table, Text(_versions(view), style="dim"))
    _up_rows(table, view)
    parts: list[Any] = [table, Text(_versions(view), style="dim")]
    if view.dead:
        parts.append(literal(f"dead: {', '.join(sorted(set(view.dead)))}. {DEAD_FIX}", style="bold red"))
    return Group(*parts)


def _down_row(view: StackDown) -> list[RenderableType]:
    if view.unready:
        fix = "wait for it" if view.starting else "agentctl up starts it afresh"
        return cells("stack", Text("not ready", style="red"), f"{view.unready}: {fix}")
    return cells("stack", Text("down", style="red"), "start one with agentctl up")


def _up_rows(table: Table, view: StackUp) -> None:
    dead, ray, prefect = set(view.dead), view.ray, view.prefect
    origin = "started by up" if ray.started_by_up else "configured"
    table.add_row(*cells("Ray", _state("Ray head" not in dead, f"up ({origin})"), ray.address))
    table.add_row(*cells("Prefect API", _state(prefect.healthy, "healthy", "not answering"), prefect.api_url))
    table.add_row(*cells("Prefect UI", "", prefect.ui_url or "none (configured API)"))
    table.add_row(*cells("database", _state("PostgreSQL" not in dead, "up"), prefect.database))
    for actor in view.actors:
        where = f"router actor, pid {actor.pid}, node {actor.node}" if actor.alive else "router actor"
        table.add_row(*cells(actor.name, _state(actor.alive, f"alive, {actor.busy} busy"), where))
    if view.gateway is not None:
        gateway = view.gateway
        where = f"{gateway.url}, pid {gateway.pid}" if gateway.url else "not started"
        table.add_row(*cells("gateway", _state(gateway.alive, "answering"), where))
        if gateway.mcp_url is not None:
            where = f"{gateway.mcp_url} (token in {GATEWAY_TOKEN})"
            table.add_row(*cells("MCP", _state(gateway.alive, "answering"), where))


def _state(ok: bool, good: str, bad: str = "dead") -> Text:
    return literal(good, style="green") if ok else literal(bad, style="red")


def _versions(view: StatusView) -> str:
    return printable("versions: " + ", ".join(f"{k} {v}" for k, v in view.versions.items()))
