"""The batch's driver: at most N items in flight, the input read only as slots free up.

Each item in flight is one thread of this process streaming one request from the pool (the pool
spreads them over its actors, which are async and take many at once); the input is read by one
more, a line each time a slot frees. Threads keep the pool's
synchronous streaming, its crash handling and its watch as they are; what is in flight is bounded
by ``concurrency``, so a slow LLM or Prefect never queues unbounded work and memory does not grow
with the input. When the batch stops (Ctrl-C, or the caller stops reading), no new item starts and
every item in flight raises ``Stopped`` from its ``check``, which cancels its request in its actor.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from agentctl.calls.batch.reader import Item, Malformed, Read
from agentctl.views import BatchRecord

Check = Callable[[], None]
Work = Callable[[Item, Check], BatchRecord]  # one item's record; its check raises Stopped when the batch stops


class Stopped(Exception):
    """The batch is stopping: the item's request is abandoned (and cancelled where it runs)."""


def drive(reads: Iterable[Read], work: Work, concurrency: int) -> Iterator[BatchRecord | Malformed]:
    """``work`` on every item of ``reads``, ``concurrency`` at a time; records in the order they finish.

    The input is read in a thread of its own, a line when a slot is free, so a record is passed on
    as soon as its item finishes even while the next line is slow to come (stdin, a gateway's
    client). Malformed lines are passed on as they are read.
    """
    stop = threading.Event()

    def check() -> None:
        if stop.is_set():
            raise Stopped

    happened: queue.Queue[_Happened] = queue.Queue()
    slots = threading.Semaphore(concurrency)
    reader = threading.Thread(target=_read, args=(iter(reads), slots, happened, stop), name="batch-read", daemon=True)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="batch") as threads:
        running: set[Future[BatchRecord]] = set()
        reader.start()
        try:
            yield from _outcomes(happened, running, lambda item: threads.submit(work, item, check), slots)
        except BaseException:
            stop.set()
            wait(running)  # each cancels its request; what finished was yielded already
            raise


_Happened = tuple[str, Any]  # ("read", Read) | ("done", Future) | ("end", None) | ("error", exception)


def _outcomes(
    happened: queue.Queue[_Happened],
    running: set[Future[BatchRecord]],
    submit: Callable[[Item], Future[BatchRecord]],
    slots: threading.Semaphore,
) -> Iterator[BatchRecord | Malformed]:
    """What happens, in order: items started as they are read, records as they finish."""
    reading = True
    while reading or running:
        kind, value = happened.get()
        if kind == "read" and isinstance(value, Malformed):
            yield value
        elif kind == "read":
            future = submit(value)
            running.add(future)
            future.add_done_callback(lambda done: happened.put(("done", done)))
        elif kind == "done":
            running.discard(value)
            yield value.result()
            slots.release()  # once the record is taken: the next line is read when an item is over
        elif kind == "error":
            raise value
        else:
            reading = False


def _read(
    source: Iterator[Read], slots: threading.Semaphore, happened: queue.Queue[_Happened], stop: threading.Event
) -> None:
    """Read a line each time a slot is free (malformed lines take none), until the input ends or the batch stops."""
    try:
        while _slot(slots, stop):
            read = next(source, None)
            if read is None:
                happened.put(("end", None))
                return
            if isinstance(read, Malformed):
                slots.release()
            happened.put(("read", read))
    except BaseException as exc:  # the input failed, or its gateway client went (Stopped): the batch ends
        happened.put(("error", exc))


def _slot(slots: threading.Semaphore, stop: threading.Event) -> bool:
    """Wait for a free slot; False once the batch stops."""
    while not slots.acquire(timeout=0.25):  # polled: the batch may stop while the reader waits
        if stop.is_set():
            return False
    return not stop.is_set()
