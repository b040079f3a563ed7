"""``ask --dry-run``: route a request in this process and stop; no cluster, no Prefect, nothing runs.

Routing needs only the LLM and the registry, so a dry run skips the Ray cluster and the Prefect
API a real run needs; the decision comes from the same ``router.decide`` the actors call.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

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
