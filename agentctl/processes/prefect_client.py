"""Prefect clients shared by every run a router actor makes, and when run logs are flushed.

Outside a client context Prefect builds a new HTTP client for each flow run and for each write
(``get_client()``), and each new client loads the CA bundle (``ssl.create_default_context``, ~24 ms
of CPU here): in a batch that was the largest share of the actors' CPU. An actor keeps one async and
one sync client, and binds them to each request through Prefect's own ``AsyncClientContext`` and
``SyncClientContext``, which Prefect's engines and ``get_client()`` take when they find them.

Prefect sends run logs in batches every 2 s; a flush stops its log worker, which starts again with
a new client: ``RunLogs`` says when a run's result waits for one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any


class SharedClient:
    """Prefect clients for every request of one actor, created on first use: an async one on the
    actor's loop (Prefect's engine, agentctl's writes) and a sync one (what Prefect reads with a sync
    client even in an async run, such as the server's default result storage, and sync runs)."""

    def __init__(self) -> None:
        self._async: Any = None  # prefect.context.AsyncClientContext, its client entered once, never left
        self._sync: Any = None  # prefect.context.SyncClientContext, the same
        self._creating = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def bound(self) -> AsyncIterator[None]:
        """Make the shared clients the ones Prefect's ``get_client()`` returns in this context."""
        from prefect.context import AsyncClientContext, SyncClientContext

        async_context, sync_context = await self._entered()
        tokens = AsyncClientContext.__var__.set(async_context), SyncClientContext.__var__.set(sync_context)
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):  # a generator closed from another context
                AsyncClientContext.__var__.reset(tokens[0])
                SyncClientContext.__var__.reset(tokens[1])

    async def _entered(self) -> tuple[Any, Any]:
        from prefect.context import AsyncClientContext, SyncClientContext

        async with self._creating:
            if self._async is None or self._async.client.loop is not asyncio.get_running_loop():
                # The clients only are entered: their contexts are bound per request.
                async_context, sync_context = AsyncClientContext(), SyncClientContext()
                await async_context.client.__aenter__()
                sync_context.client.__enter__()
                self._async, self._sync = async_context, sync_context
        return self._async, self._sync


class RunLogs:
    """When the run logs Prefect holds are flushed: at the end of a run whose request is the only one
    in progress in its actor (``serving`` counts them).

    A request alone in its actor (an ``ask``) returns its result once every line of it is in the
    API, so that ``agentctl runs show`` right after it has them all. Where requests overlap (a batch),
    each flush would stop Prefect's log worker, which starts again with a new client on the next
    line: their lines go in Prefect's own batches (every 2 s), and the last request's run flushes for
    all. Runs outside an actor (no request counted) flush at their end.
    """

    def __init__(self) -> None:
        self._requests = 0

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Count one request in progress for as long as the context lasts."""
        self._requests += 1
        try:
            yield
        finally:
            self._requests -= 1

    def alone(self) -> bool:
        """Whether at most one request is in progress: a run ending now should flush."""
        return self._requests <= 1

    async def flush(self) -> None:
        """Return once every log line emitted so far has reached the API."""
        await _flush()


async def flush_all() -> None:
    """Return once every event and log line of this process has reached the API (its queue services
    drained: they start again on their next item)."""
    from prefect.events.worker import EventsWorker

    # drain_all drains every queue service of the process (they share one registry): logs too.
    await EventsWorker.drain_all(at_exit=False)  # type: ignore[misc]


async def _flush() -> None:
    from prefect.logging.handlers import APILogWorker

    # Not APILogHandler.aflush(): its drain_all stops every Prefect queue service of the process
    # (they share one registry), the events worker too, which then reconnects for the next run.
    drained = APILogWorker.instance().drain()
    if not isinstance(drained, bool):  # an awaitable, on a running loop
        await drained


BUSY_ATTEMPTS = 6  # over ~1.5 s, where Prefect's client waits 2 s before its first retry


async def busy_retried(client: Any, path: str, body: dict[str, Any]) -> Any:
    """POST ``body`` to ``path`` with Prefect's ``client``, tried again soon while the server answers
    503; the answer's JSON.

    A Prefect server on SQLite answers 503 when a write meets another (its own event and log writes
    included), and Prefect's client then waits 2 s (even with no retries left) before it tries again:
    the calls of one step, created at once, would each wait that long. A 503 rolled the write back,
    so trying again is safe. Prefect's HTTP client is used without its retrying ``send``.
    """
    import httpx

    http = client._client  # Prefect's httpx client, whose own send would wait the 2 s
    for attempt in range(BUSY_ATTEMPTS):
        response = await httpx.AsyncClient.send(http, http.build_request("POST", path, json=body))
        if response.status_code != 503 or attempt == BUSY_ATTEMPTS - 1:
            response.raise_for_status()
            return response.json()
        await asyncio.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable: the last attempt returns or raises")
