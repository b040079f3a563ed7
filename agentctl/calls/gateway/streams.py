"""What every streamed answer of the gateway shares: keep-alive lines while it is quiet, and the
refusal of a request its caller stopped waiting for."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import TypeVar

import anyio
from anyio.abc import ObjectReceiveStream

from agentctl.calls.gateway.callers import NotServed
from agentctl.calls.gateway.wire import Call

KEEPALIVE = 1.0  # seconds of quiet after which a stream gets an empty line
KEPT_ALIVE = b"\n"
STOPPED = "the stack's gateway stopped (agentctl down, or a new up) while the request ran: it was cancelled"

T = TypeVar("T")


def not_expired(call: Call) -> None:
    """Nothing when ``call``'s caller still waits; else NotServed: a gateway that hung (stopped, stuck)
    and goes on reads requests whose callers gave up on it and went through Ray: not run twice."""
    if call.expires is not None and time.time() > call.expires:
        raise NotServed("the caller stopped waiting before the gateway read this request: it was not started")


async def kept_alive(items: ObjectReceiveStream[T]) -> AsyncGenerator[T | None, None]:
    """``items`` as they come, and None after every ``KEEPALIVE`` seconds without one (its client
    then knows the gateway still answers while what it waits for runs long).

    The receive is never cancelled for the keep-alive (a cancelled one may drop the item it was
    handed): the same one is awaited again, and cancelled only when the stream ends.
    """
    pending = asyncio.ensure_future(items.receive())
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE)
            if not done:
                yield None
                continue
            try:
                yield pending.result()
            except anyio.EndOfStream:
                return
            pending = asyncio.ensure_future(items.receive())
    finally:
        pending.cancel()
