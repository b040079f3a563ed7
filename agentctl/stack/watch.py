"""What a request waits on, watched while it waits, so that a dead piece ends the request in
seconds: left alone, Prefect's client retries a dead API for minutes and Ray waits a minute for a
dead head.

The pieces whose processes are known (a session's own Prefect server, the stack's Ray head,
Prefect server and PostgreSQL) are looked at through /proc: no network, a few milliseconds. A
Prefect API of which no process is known (``prefect.api_url``) gets a short health probe, at most
once every ``PROBE_EVERY`` seconds, and is taken for dead once it has not answered for
``DEAD_AFTER`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from agentctl.execution.pool import Died
from agentctl.stack.health import dead_pieces
from agentctl.stack.prefect_server import LocalPrefectAPI, healthy_api
from agentctl.stack.state import StackState

Check = Callable[[], None]  # raises Died when a piece the request needs is gone
PROBE_EVERY = 1.0
DEAD_AFTER = 3.0
STACK_FIX = "agentctl up restarts the stack"


def own_server(api: LocalPrefectAPI) -> Check:
    """The Prefect server a session started for itself: dead once its process has exited."""

    def check() -> None:
        if (code := api.exit_code()) is not None:
            raise Died(f"the local Prefect server exited with code {code}", f"see {api.log_path}", api_dead=True)

    return check


def stack(state: StackState) -> Check:
    """The pieces of ``agentctl up``'s stack: those it started by their processes, a configured
    Prefect API by its health."""
    probe = api(state.prefect_url) if state.prefect_pid is None else nothing

    def look() -> None:
        if dead := dead_pieces(state):
            raise Died(
                f"the stack's {', '.join(dead)} died",
                STACK_FIX,
                api_dead=bool({"Prefect server", "PostgreSQL"} & set(dead)),
                ray_dead="Ray head" in dead,
            )

    pieces = _Shared(look, PROBE_EVERY)

    def check() -> None:
        pieces()
        probe()

    return check


class _Shared:
    """``look`` at most once every ``seconds`` over all the threads that ask (a batch's items each
    wait on the same stack: /proc is read once for all of them); once it has raised, every caller
    raises the same."""

    def __init__(self, look: Check, seconds: float) -> None:
        self._look, self._seconds = look, seconds
        self._last = float("-inf")
        self._died: Died | None = None
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            now = time.monotonic()
            if self._died is None and now - self._last >= self._seconds:
                self._last = now
                try:
                    self._look()
                except Died as exc:
                    self._died = exc
            died = self._died
        if died is not None:  # a copy for each caller: one exception raised in many threads would share a traceback
            raise Died(died.what, died.fix, api_dead=died.api_dead, ray_dead=died.ray_dead)


def api(url: str) -> Check:
    """A Prefect API known only by its URL: dead once it has not answered for ``DEAD_AFTER`` seconds."""
    probed, failing_since = 0.0, None

    def check() -> None:
        nonlocal probed, failing_since
        now = time.monotonic()
        if now - probed < PROBE_EVERY:
            return
        if now - probed > 2 * PROBE_EVERY:  # not probed for a while (between requests): a new count
            failing_since = None
        probed = now
        if healthy_api(url):
            failing_since = None
        elif now - (failing_since := failing_since or now) >= DEAD_AFTER:
            raise Died(
                f"the Prefect API at {url} stopped answering",
                "check that it runs, or prefect.api_url / PREFECT_API_URL",
                api_dead=True,
            )

    return check


def nothing() -> None:
    """Nothing to watch (no Prefect API: ``eval`` routes only)."""
