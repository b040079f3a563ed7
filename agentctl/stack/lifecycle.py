"""The persistent local stack of ``agentctl up``: a Ray head, a Prefect server with its UI (on
SQLite, or PostgreSQL with ``--postgres``), and a pool of named, detached router actors, recorded in
``<data_dir>/stack.json`` so later calls find them. ``down`` stops what ``up`` started and nothing
else; a configured ``RAY_ADDRESS`` or ``PREFECT_API_URL`` is used, never started or stopped.

Its pieces: the record and the lock (``stack_state``), whether it can serve a call
(``stack_health``), starting and stopping each piece (``stack_start``, ``stack_stop``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from agentctl import interrupts
from agentctl.config import Settings
from agentctl.errors import StackError, UsageError
from agentctl.stack import gateway, proctree, start, stop
from agentctl.stack.health import Unusable, keeps_history_for, processes_key, unusable_for
from agentctl.stack.state import StackState, forget_state, locked, read_state, write_state

if TYPE_CHECKING:
    from agentctl.execution.pool import Pool

ACTOR_PREFIX = "agentctl-router-"
HUNG_WAIT = 2.0  # seconds a gateway that hangs gets to end on SIGTERM before SIGKILL


class Stack:
    """The stack ``up`` recorded in ``settings.data_dir``: judged, attached to, started, stopped."""

    def __init__(self, settings: Settings, state: StackState) -> None:
        self.settings, self.state = settings, state

    @classmethod
    def load(cls, settings: Settings) -> Stack | None:
        """The recorded stack, if there is one (it may have died since, or still be starting); a
        ``StackError`` naming the file when it cannot be read."""
        state = read_state(settings)
        return None if state is None else cls(settings, state)

    def unusable_for(self, settings: Settings) -> Unusable | None:
        """Why this stack cannot serve a call with ``settings``, or None when it can."""
        return unusable_for(self.state, settings)

    def keeps_history_for(self, settings: Settings) -> bool:
        """Whether its Prefect API is alive and the one ``settings`` use, for run history."""
        return keeps_history_for(self.state, settings)

    def ray_settings(self, settings: Settings) -> Settings:
        """``settings`` pointed at the stack's Ray."""
        ray = settings.ray.model_copy(update={"address": self.state.ray_address})
        return settings.model_copy(update={"ray": ray})

    def attach(self, settings: Settings, secrets: dict[str, str]) -> Pool:
        """Connect to the stack's Ray and return a pool on its named actors (started where dead)."""
        from agentctl.execution.pool import Pool
        from agentctl.stack import shipping
        from agentctl.stack.worker_env import actor_env

        # The job's environment is what an actor started in a dead one's place gets.
        shipping.connect(self.ray_settings(settings), actor_env(settings, self.state.prefect_url, self.state.ui_url))
        if not self.state.actors:
            self._name_actors(settings)
        deadline = time.time() + settings.prefect.startup_timeout
        return Pool.create(settings, secrets, deadline, names=self.state.actors)

    def _name_actors(self, settings: Settings) -> None:
        """One name per slot of the cluster as it is now (``placement``), recorded before they start:
        a failed up stops them on a Ray it did not start."""
        import ray

        from agentctl.execution import placement

        count = len(placement.slots(ray, settings.pool))
        self.state.actors = [f"{ACTOR_PREFIX}{i}" for i in range(count)]
        write_state(self.settings, self.state)

    @contextlib.contextmanager
    def on_ray(self) -> Iterator[Any]:
        """The ``ray`` module connected to the stack's Ray for the block, or None when it cannot be reached."""
        from agentctl.stack import ray_cluster

        try:  # connected before importing ray: it sets what ray reads at import
            ray_cluster.connect(self.ray_settings(self.settings), {})
        except StackError:
            yield None
            return
        import ray

        try:
            yield ray
        finally:
            ray_cluster.shutdown()

    @classmethod
    def start(cls, settings: Settings, secrets: dict[str, str], postgres: bool) -> Stack:
        """Start every piece that is not configured, then the actors; on any failure (Ctrl-C too)
        stop what was started so far, from what the state records."""
        state = StackState(
            ray_address="", prefect_url="", processes=processes_key(settings), started_at=time.time(), ready=False
        )
        stack = cls(settings, state)
        try:
            stack._start_pieces(postgres)
            stack.start_actors(secrets)
            stack.start_gateway()
            interrupts.check()
        except BaseException:
            stack.stop()
            raise
        state.ready = True
        write_state(settings, state)
        return stack

    def _start_pieces(self, postgres: bool) -> None:
        database = start.database(self.settings, self.state, postgres)
        self._recorded()
        api = start.prefect(self.settings, self.state, database)
        self._recorded()  # before the wait: a failed or interrupted up must find the server to stop it
        start.ray(self.settings, self.state)
        self._recorded()
        start.prefect_ready(self.settings, self.state, api)
        self._recorded()

    def _recorded(self) -> None:
        """Write the state after a step; a Ctrl-C swallowed during it stops up here (``start`` cleans up)."""
        write_state(self.settings, self.state)
        interrupts.check()

    def start_actors(self, secrets: dict[str, str]) -> None:
        """Start the named router actors that are not alive (all of them, named the first time) and warm them."""
        from agentctl.stack import ray_cluster

        try:
            self.attach(self.settings, secrets).warm()
        finally:
            ray_cluster.shutdown()

    def start_gateway(self) -> None:
        """Start the gateway when it is enabled and does not run or does not answer (the first ``up``,
        or one that died or hangs)."""
        if not self.settings.gateway.enabled:
            return
        if gateway.runs(self.state):
            if gateway.answers(self.settings, self.state):
                return
            assert self.state.gateway_pid is not None
            # It hangs (stopped, stuck): it may never handle SIGTERM, and its requests are lost anyway.
            proctree.stop_group(self.state.gateway_pid, timeout=HUNG_WAIT)
        process = gateway.launch(self.settings, self.state)
        self._recorded()  # before the wait: a failed up must find it to stop it
        gateway.wait_ready(self.settings, self.state, process)

    def stop(self) -> list[str]:
        """Stop what the state records as started by up, then forget it; say what stopped."""
        state = self.state
        stopped = gateway.stop(state)  # first: it is a Ray driver, and its requests are cancelled in the actors
        stopped += stop.ray_head(state.ray_temp_dir) if state.ray_temp_dir else self._stop_actors()
        stopped += stop.prefect(state) + stop.postgres(self.settings, state)
        forget_state(self.settings)
        return stopped

    def _stop_actors(self) -> list[str]:
        if not self.state.actors:
            return []
        with self.on_ray() as ray:
            return [] if ray is None else stop.actors(ray, self.state.actors)


def up(
    settings: Settings, secrets: dict[str, str], postgres: bool = False, waiting: Callable[[], None] = lambda: None
) -> tuple[Stack, bool]:
    """Start what is missing; return the stack and whether it was already up."""
    with locked(settings, waiting):
        stack = Stack.load(settings)
        if stack is not None and _reusable(stack, settings, postgres):
            stack.start_actors(secrets)
            stack.start_gateway()
            return stack, True
        if stack is not None:
            stack.stop()  # a stack that crashed or whose up failed: clean up what is left
        return Stack.start(settings, secrets, postgres), False


def _reusable(stack: Stack, settings: Settings, postgres: bool) -> bool:
    """Whether up keeps ``stack`` (False: start afresh); an error when it runs for other settings."""
    why = stack.unusable_for(settings)
    if why is not None and not why.stale:
        raise UsageError(f"a stack is up for other settings: {why.reason}; agentctl down, then up")
    if why is None and postgres and stack.state.database == "sqlite":
        raise UsageError("the running stack uses SQLite: run agentctl down, then agentctl up --postgres")
    return why is None


def down(settings: Settings, waiting: Callable[[], None] = lambda: None) -> list[str]:
    """Stop what ``up`` started (named actors, the Ray head, Prefect, PostgreSQL); say what stopped."""
    with locked(settings, waiting):
        stack = Stack.load(settings)
        return [] if stack is None else stack.stop()
