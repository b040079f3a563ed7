"""``ask --dry-run``: route a request in this process and stop; no cluster, no Prefect, nothing runs.

Routing needs only the LLM and the registry, so a dry run skips the Ray cluster and the Prefect
API a real run needs; the decision comes from the same ``router.decide`` the actors call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from agentctl import llm
from agentctl.calls.catalog import catalog, list_for
from agentctl.config import Settings
from agentctl.events import ChatReply, Event, Log, Routed, Usage
from agentctl.processes.approval import needs_approval
from agentctl.routing import router
from agentctl.routing.policy import retry_policy


def dry_run(settings: Settings, request: str) -> Iterator[Event]:
    """Yield the route (with the model's reason, the retry policy and whether a run would wait for
    approval) or the chat reply, then usage."""
    settings.api_key()
    found = catalog(settings, list_for(settings))
    for problem in found.problems:
        yield Log(time=time.time(), level="WARNING", run_name="agentctl", message=problem)
    model = llm.ChatModel.of(settings, os.environ, llm.Clients())
    decision = asyncio.run(router.decide(request, found.registry, model, settings.router))
    yield from _told(decision, model, settings)


def _told(decision: ChatReply | router.Route, model: llm.ChatModel, settings: Settings) -> Iterator[Event]:
    """A decision as a dry run tells it: the route (its policy, its approval) or the reply, then usage."""
    if isinstance(decision, ChatReply):
        yield decision
    else:
        process = decision.process
        yield Routed(
            process=process.name,
            process_kind=process.kind,
            arguments=decision.arguments,
            reason=decision.reason,
            policy=retry_policy(process, settings),
            needs_approval=needs_approval(process, settings),
        )
    yield Usage.model_validate(model.usage.as_dict())


class DryRouter:
    """Dry runs of many requests (a batch): one catalog, one set of LLM clients, one event loop in a
    thread of its own that every caller's routing shares, whatever thread the caller is in."""

    def __init__(self, settings: Settings) -> None:
        settings.api_key()
        self.settings = settings
        self.found = catalog(settings, list_for(settings))
        self._clients = llm.Clients()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="dry-router", daemon=True).start()

    def route(
        self, request: str, model: str | None = None, check: Callable[[], None] = lambda: None
    ) -> Iterator[Event]:
        """The dry run's events for ``request``; ``check`` runs while it waits, and what it raises
        cancels the routing."""
        chat = llm.ChatModel.of(self.settings, os.environ, self._clients, model)
        decided = router.decide(request, self.found.registry, chat, self.settings.router)
        future = asyncio.run_coroutine_threadsafe(decided, self._loop)
        while True:
            try:
                decision = future.result(timeout=0.25)
                break
            except concurrent.futures.TimeoutError:
                _checked(check, future)
        yield from _told(decision, chat, self.settings)

    def close(self) -> None:
        """Stop the event loop."""
        self._loop.call_soon_threadsafe(self._loop.stop)


def _checked(check: Callable[[], None], future: concurrent.futures.Future[Any]) -> None:
    try:
        check()
    except BaseException:
        future.cancel()
        raise
