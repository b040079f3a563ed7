"""A router actor's run path without Ray or Prefect: for tests of ``RouterActor._execute``."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any


async def _api_ready() -> None:
    return None


def bare_actor() -> Any:
    """What ``RouterActor._execute`` uses of its actor: an API that is ready, and no Prefect client to
    bind (the sources these tests run use none)."""
    from agentctl.execution.actor import RouterActor

    actor = SimpleNamespace(_wait_for_api=_api_ready, _prefect=SimpleNamespace(bound=contextlib.nullcontext))
    actor._source_events = lambda *args: RouterActor._source_events(actor, *args)  # type: ignore[arg-type]
    return actor
