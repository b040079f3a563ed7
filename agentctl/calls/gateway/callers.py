"""The gateway's callers: each request's settings and secrets judged against the stack, and its
events streamed from the stack's actors through the gateway's one Ray connection.

The gateway's pool (made once, at start) is shared by every caller: a request gets a view of it that
carries its own settings and secrets (``Pool.for_caller``), so the least busy actor is picked over all
the callers and nothing of a caller outlives its request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import ValidationError

from agentctl.calls.catalog import catalog, list_for
from agentctl.calls.gateway.wire import AskBody, Call, RunBody
from agentctl.config import Settings
from agentctl.errors import ActorDied, ConfigError, UsageError
from agentctl.events import Event, Log
from agentctl.execution.pool import Pool
from agentctl.processes.approval import Approved, needs_approval
from agentctl.processes.deployments import to_records
from agentctl.stack import watch
from agentctl.stack.health import mismatch
from agentctl.stack.lifecycle import Stack
from agentctl.stack.prefect_server import mark_crashed

Check = Callable[[], None]


class NotServed(UsageError):
    """The stack runs for other settings than the caller's: its call goes through Ray instead."""


class Callers:
    """The stack's actors, served to whoever brings settings it can serve."""

    def __init__(self, stack: Stack, pool: Pool) -> None:
        self.stack, self._pool = stack, pool
        self._watch = watch.stack(stack.state)

    def settings(self, call: Call) -> Settings:
        """The caller's settings (the stack's when it sent none); an error when the stack cannot serve them."""
        if call.settings is None:
            return self.stack.settings
        try:
            settings = Settings.model_validate(call.settings)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ConfigError(f"settings: {where}: {first['msg']}: send agentctl's settings, or none") from None
        if (why := mismatch(self.stack.state, settings)) is not None:
            raise NotServed(f"the stack cannot serve these settings: {why}; call through Ray, or agentctl up again")
        return settings

    def ask(self, body: AskBody, settings: Settings, stop: Check) -> Iterator[Event]:
        """The events of ``body``'s request; ``stop`` raises once its client has gone."""
        pool, problems, check = self.ready(body, settings, stop)
        yield from _warnings(problems)
        yield from again_if_dead(
            lambda: pool.ask(
                body.request,
                body.model or settings.llm.model,
                check=check,
                approved=approved(body),
                detach=body.detach,
                resume=body.resume,
                history=body.history,
            )
        )

    def run(self, name: str, body: RunBody, settings: Settings, stop: Check) -> Iterator[Event]:
        """The events of a run of process ``name``; ``stop`` as for ``ask``."""
        pool, problems, check = self.ready(body, settings, stop)
        yield from _warnings(problems)
        yield from again_if_dead(
            lambda: pool.run(name, body.arguments, check=check, approved=approved(body), detach=body.detach)
        )

    def ready(self, call: Call, settings: Settings, stop: Check) -> tuple[Pool, list[str], Check]:
        """The pool's view for this caller, with its deployments listed, and the request's check."""
        listing = list_for(settings)
        pool = self._pool.for_caller(settings, call.secrets)
        pool.deployments = to_records(listing.deployments)
        pool.on_crash = self._mark_crashed

        def check() -> None:
            stop()
            self._watch()

        return pool, listing.problems, check

    def processes(self) -> list[dict[str, Any]]:
        """The processes the stack's actors run and its configured deployments, as ``processes list --json``."""
        settings = self.stack.settings
        found = catalog(settings, list_for(settings))
        return [
            {
                "name": p.name,
                "kind": p.kind,
                "description": p.description,
                "entrypoint": p.entrypoint,
                "needs_approval": needs_approval(p, settings),
                "schema": p.schema(),
            }
            for p in found.registry
        ]

    def status(self) -> dict[str, Any]:
        """``agentctl status --json``, its actors asked through this process's Ray connection."""
        import ray

        from agentctl.calls.status import status

        return status(self.stack.settings, connected=ray).model_dump(mode="json")

    def _mark_crashed(self, run_id: str, kind: str) -> bool:
        return mark_crashed(self.stack.state.prefect_url, run_id, kind, "the router actor running it died (agentctl)")


def again_if_dead(events: Callable[[], Iterator[Event]]) -> Iterator[Event]:
    """``events``, once more when their actor was found dead before the first one (it died between
    requests: the pool has put a new one in its place, as a CLI's own pool would have at attach)."""
    started = False
    try:
        for event in events():
            started = True
            yield event
    except ActorDied:
        if started:
            raise
        yield from events()


def _warnings(problems: list[str]) -> Iterator[Log]:
    for problem in problems:
        yield Log(time=time.time(), level="WARNING", run_name="agentctl", message=problem)


def approved(call: Call) -> Approved:
    """What ``call`` approved beforehand."""
    return Approved(everything=call.approved.everything, names=frozenset(call.approved.names))
