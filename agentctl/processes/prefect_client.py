"""One Prefect client for every run a router actor makes, and run logs flushed together.

Outside a client context Prefect builds a new HTTP client for each flow run and for each write
(``get_client()``), and each new client loads the CA bundle (``ssl.create_default_context``): in a
batch that was the largest share of the actors' CPU. An actor keeps one client, entered once on its
event loop, and binds it to each request through Prefect's own ``AsyncClientContext``, which Prefect's
engine and ``get_client()`` take when they find it.

Prefect sends run logs in batches every 2 s; a run's result waits for a flush, so that its logs
are all in the API when the result is shown. A flush stops Prefect's log worker, which starts again
(with a new client) on the next line: concurrent runs share one flush (``LogFlush``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any


class SharedClient:
    """A Prefect client for every request of one actor, created on first use on the actor's loop."""

    def __init__(self) -> None:
        self._context: Any = None  # prefect.context.AsyncClientContext, entered once, never left
        self._creating = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def bound(self) -> AsyncIterator[None]:
        """Make the shared client the one Prefect's ``get_client()`` returns in this context."""
        from prefect.context import AsyncClientContext

        context = await self._entered()
        token = AsyncClientContext.__var__.set(context)
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):  # a generator closed from another context
                AsyncClientContext.__var__.reset(token)

    async def _entered(self) -> Any:
        from prefect.context import AsyncClientContext

        async with self._creating:
            if self._context is None or self._context.client.loop is not asyncio.get_running_loop():
                context = AsyncClientContext()
                await context.client.__aenter__()  # the client only: the context is bound per request
                self._context = context
        return self._context


class LogFlush:
    """Flushes the run logs Prefect holds; callers that overlap share one flush that starts after them.

    A flush already under way may have missed a caller's lines: the caller waits for the next one,
    which every caller arriving meanwhile shares.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._current: asyncio.Future[None] | None = None
        self._next: asyncio.Future[None] | None = None

    async def __call__(self) -> None:
        """Return once every log line emitted before the call has reached the API."""
        if self._loop is not asyncio.get_running_loop():  # a new loop (tests): nothing of the old one counts
            self._loop, self._current, self._next = asyncio.get_running_loop(), None, None
        if self._next is None:
            self._next = asyncio.ensure_future(self._after_current())
        await asyncio.shield(self._next)

    async def _after_current(self) -> None:
        if self._current is not None:
            await asyncio.wait([self._current])
        self._next = None  # callers from here on may have lines this flush misses
        self._current = asyncio.ensure_future(_flush())
        await self._current


async def _flush() -> None:
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()
