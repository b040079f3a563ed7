"""The batch's driver: at most N items in flight, the input read only as slots free up.

Each item in flight is one thread of this process streaming one request from the pool (the pool
spreads them over its actors, which are async and take many at once). Threads keep the pool's
synchronous streaming, its crash handling and its watch as they are; what is in flight is bounded
by ``concurrency``, so a slow LLM or Prefect never queues unbounded work and memory does not grow
with the input. When the batch stops (Ctrl-C, or the caller stops reading), no new item starts and
every item in flight raises ``Stopped`` from its ``check``, which cancels its request in its actor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from agentctl.calls.batch.reader import Item, Malformed, Read
from agentctl.views import BatchRecord

Check = Callable[[], None]
Work = Callable[[Item, Check], BatchRecord]  # one item's record; its check raises Stopped when the batch stops


class Stopped(Exception):
    """The batch is stopping: the item's request is abandoned (and cancelled where it runs)."""


def drive(reads: Iterable[Read], work: Work, concurrency: int) -> Iterator[BatchRecord | Malformed]:
    """``work`` on every item of ``reads``, ``concurrency`` at a time; records in the order they finish.

    Malformed lines are passed on as they are read.
    """
    stop = threading.Event()

    def check() -> None:
        if stop.is_set():
            raise Stopped

    source = iter(reads)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="batch") as threads:
        running: set[Future[BatchRecord]] = set()
        try:
            while True:
                for read in _refill(source, concurrency - len(running)):
                    if isinstance(read, Malformed):
                        yield read
                    else:
                        running.add(threads.submit(work, read, check))
                if not running:
                    return
                done, running = _finished(running)
                yield from (future.result() for future in done)
        except BaseException:
            stop.set()
            wait(running)  # each cancels its request; what finished was yielded already
            raise


def _refill(source: Iterator[Read], free: int) -> Iterator[Read]:
    """The next reads from ``source`` up to ``free`` items (malformed lines take no slot)."""
    while free > 0:
        read = next(source, None)
        if read is None:
            return
        free -= isinstance(read, Item)
        yield read


def _finished(running: set[Future[BatchRecord]]) -> tuple[set[Future[BatchRecord]], set[Future[BatchRecord]]]:
    """Wait until at least one item has finished: (finished, still running)."""
    done, pending = wait(running, return_when=FIRST_COMPLETED)
    return done, pending
