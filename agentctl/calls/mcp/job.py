"""One tool call in flight: the session's blocking event stream, run in a thread of its own.

The session's streams block (Ray's waits), so each call's events are produced in a thread and handed
to the server's event loop one by one. The thread also asks for approval: it hands a ``Question``
over and waits for its answer, so the loop may ask the client (elicitation) or end the call and ask
in a later one (an input-required result). ``stop()`` makes the stream's ``check`` raise ``Stopped``:
the pool then cancels the request in its actor, and its Prefect run ends Cancelled.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from agentctl.calls.approval import Answer, Approval, ApprovalRequired
from agentctl.errors import AgentctlError
from agentctl.events import ApprovalNeeded, Event, Failed
from agentctl.processes.approval import Approved

Events = Callable[[Approval, Callable[[], None]], Iterator[Event]]  # (approval, check): the call's events


class Stopped(Exception):
    """The client cancelled the call (or the server is stopping): its request is abandoned."""


@dataclass
class Question:
    """The call waits for a person's answer about ``needed``."""

    needed: ApprovalNeeded


@dataclass
class End:
    """The call's events are over."""


Item = Event | Question | End


class Job:
    """The events of one call, produced in a thread, received on the event loop."""

    def __init__(self, events: Events, approved: Approved, cannot_ask: str | None, answer_wait: float) -> None:
        """``cannot_ask``: why the client cannot be asked (a run that needs approval is then refused);
        ``answer_wait``: seconds a question waits for its answer before it counts as no."""
        self._events, self._cannot_ask, self._answer_wait = events, cannot_ask, answer_wait
        self._approval = Approval(approved=approved, ask=self.ask)
        self._token = anyio.lowlevel.current_token()
        sender, receiver = anyio.create_memory_object_stream[Item](math.inf)
        self._sender: MemoryObjectSendStream[Item] = sender
        self.items: MemoryObjectReceiveStream[Item] = receiver
        self._answers: queue.Queue[Answer] = queue.Queue()
        self._stop = threading.Event()
        self.told = 0  # events told to the client so far: the call's progress
        self._thread = threading.Thread(target=self._produce, name="mcp-call", daemon=True)

    def start(self) -> None:
        """Start producing the events."""
        self._thread.start()

    def stop(self) -> None:
        """Abandon the call: its request is cancelled in its actor, its question refused."""
        self._stop.set()

    def answer(self, answer: Answer) -> None:
        """The answer to the question the call waits on."""
        self._answers.put(answer)

    def join(self, timeout: float) -> None:
        """Wait, at most ``timeout`` seconds, for the thread (its cancel reaching the actor)."""
        self._thread.join(timeout)

    def _check(self) -> None:
        if self._stop.is_set():
            raise Stopped

    def ask(self, needed: ApprovalNeeded) -> Answer:
        """In the thread: hand the question to the loop and wait for its answer (no answer in time: no)."""
        if self._cannot_ask is not None:
            raise ApprovalRequired(
                f"{needed.process} needs approval before it runs and {self._cannot_ask}: list it in "
                "processes.auto_approve (AGENTCTL_PROCESSES__AUTO_APPROVE) where agentctl mcp serve runs, "
                "and start the server again"
            )
        self._put(Question(needed))
        deadline = time.monotonic() + self._answer_wait
        while time.monotonic() < deadline:
            self._check()
            with suppress(queue.Empty):
                return self._answers.get(timeout=0.25)  # polled: a cancel must not wait for an answer
        return Answer.NO

    def _produce(self) -> None:
        try:
            for event in self._events(self._approval, self._check):
                self._put(event)
        except Stopped:
            pass
        except AgentctlError as exc:
            self._put(Failed(message=str(exc), exit_code=exc.exit_code, error=type(exc).__name__))
        except Exception as exc:  # the call fails, the server serves on
            self._put(Failed(message=f"internal error: {type(exc).__name__}: {exc}", error="InternalError"))
        finally:
            self._put(End())

    def _put(self, item: Item) -> None:
        # The loop may be gone (the server stopping): the item has no one to reach.
        with suppress(RuntimeError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            anyio.from_thread.run_sync(self._sender.send_nowait, item, token=self._token)
