"""The pool of router actors on Ray: create them, pick one per request, stream its events back."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import TypeAdapter

from agentctl.config import Settings
from agentctl.errors import ActorDied, StackError, first_line
from agentctl.events import Event, Failed, Log, Paused, Result, RouteOutcome
from agentctl.execution import placement
from agentctl.processes.approval import NOTHING, Approved
from agentctl.processes.discovery import shipped

_events: TypeAdapter[Event] = TypeAdapter(Event)
CANCEL_WAIT = 10.0  # seconds a cancelled request gets to end (its Prefect run set Cancelled) before we exit
REPLACE_WAIT = 10.0  # seconds Ray's control store gets to free a dead named actor's name


Crashed = Callable[[str, str], bool]  # (run id, run kind): mark that Prefect run Crashed; whether it was
Run = tuple[str, str]  # (run id, run kind)


class Died(StackError):
    """What a request's ``check`` raises: a piece the request needs died (``what``), and ``fix``.

    ``api_dead``: the Prefect API is gone, so the request's run cannot be marked Crashed;
    ``ray_dead``: Ray is gone, so the request cannot be cancelled in its actor either.
    """

    def __init__(self, what: str, fix: str, api_dead: bool = False, ray_dead: bool = False) -> None:
        super().__init__(f"{what}: {fix}")
        self.what, self.fix, self.api_dead, self.ray_dead = what, fix, api_dead, ray_dead


FLUSH_WITHIN = 5.0  # seconds a session waits for its actors to send Prefect their events and logs


class Pool:
    """A fixed set of router actors; each request goes to the least busy one.

    Ties go to the first actor, so requests made one after another stay on an actor whose Prefect
    client and flows are already warm, and the others take the load only when requests overlap.
    An actor that dies is replaced at once, so the pool keeps its size; the Prefect run it was
    carrying is handed to ``on_crash``.
    """

    def __init__(self, spawn: Callable[[int], Any], size: int, caller: dict[str, Any] | None = None) -> None:
        self._spawn = spawn
        self._actors = [spawn(i) for i in range(size)]
        self._busy = [0] * size
        self._lock = threading.Lock()  # a batch streams requests from many threads: picks and counts stay exact
        self._caller = caller  # the CLI call's settings and secrets, for actors started by another call
        self.deployments: list[dict[str, Any]] = []  # the session's listing, handed with each request
        self.on_crash: Crashed = lambda run_id, kind: False

    def for_caller(self, settings: Settings, secrets: dict[str, str]) -> Pool:
        """This pool for another caller (the gateway's callers): the same actors and busy counts,
        each request bringing ``settings`` and ``secrets`` (kept by the view alone, never written)."""
        view = copy.copy(self)  # shallow: the actors, the counts and their lock stay shared
        view._caller = {"settings": shipped(settings).model_dump_json(exclude={"database"}), "secrets": secrets}
        view.deployments = []
        return view

    @property
    def size(self) -> int:
        """How many router actors the pool holds."""
        return len(self._actors)

    def _pick(self) -> int:
        return min(range(len(self._actors)), key=lambda i: (self._busy[i], i))

    def _take(self) -> int:
        """The least busy actor's index, counted busy with one more request."""
        with self._lock:
            index = self._pick()
            self._busy[index] += 1
            return index

    def _release(self, index: int) -> None:
        with self._lock:
            self._busy[index] -= 1

    def _streamed(self, call: Callable[[Any], Any], check: Callable[[], None]) -> Iterator[Event]:
        index = self._take()
        run: Run | None = None
        try:
            for event in _stream(call(self._actors[index]), check):
                run = _in_progress(run, event)
                yield event
        except ActorDied as exc:
            raise self._actor_died(index, run, exc, check) from None
        except Died as exc:
            raise self._died(exc, run) from None
        finally:
            self._release(index)

    def _actor_died(self, index: int, run: Run | None, exc: ActorDied, check: Callable[[], None]) -> StackError:
        """The error for an actor that died: with a piece it needed (``check`` says which), or alone,
        and then a new actor takes its place."""
        try:
            check()
        except Died as cause:
            return self._died(cause, run)
        return self._replace(index, run, exc)

    def _died(self, exc: Died, run: Run | None) -> StackError:
        """One line: what died, what became of the request's run, the fix."""
        return StackError(f"{exc.what}{self._marked(run, exc.api_dead)}: {exc.fix}")

    def _marked(self, run: Run | None, api_dead: bool = False) -> str:
        """What became of the run a dead actor or a dead piece left behind (marked Crashed if it can be)."""
        if run is None:
            return ""
        if api_dead:
            done = "cannot be marked Crashed while the Prefect API is down"
        else:
            done = "is marked Crashed" if self.on_crash(*run) else "could not be marked Crashed"
        return f"; its Prefect {run[1]} run {run[0]} {done}"

    def _replace(self, index: int, run: Run | None, exc: ActorDied) -> ActorDied:
        """Start a new actor in the dead one's place; mark its run Crashed; the error to raise."""
        marked = self._marked(run)
        try:
            self._actors[index] = self._respawn(index)
        except Exception as failed:  # the head itself may be gone: say so instead of a traceback
            return ActorDied(
                f"{exc}{marked}; no new router actor could start ({first_line(str(failed))}): see agentctl status"
            )
        return ActorDied(f"{exc}{marked}; a new router actor took its place: ask again")

    def _respawn(self, index: int) -> Any:
        """A new actor in slot ``index``, never the dead one.

        The request can learn of a death before Ray's control store does, and until then a named
        actor's ``get_if_exists`` hands back the dead actor: it is killed for good, and the name is
        awaited; then the new actor's answer (``REPLACE_WAIT`` seconds for both).
        """
        import contextlib

        import ray

        dead = self._actors[index]
        with contextlib.suppress(Exception):
            ray.kill(dead, no_restart=True)
        deadline = time.monotonic() + REPLACE_WAIT
        while (actor := self._spawn(index)) == dead and time.monotonic() < deadline:
            time.sleep(0.1)
        # Ray registers a new actor after .remote() returns: a CLI that exited before that would lose it.
        ray.get(actor.stats.remote(), timeout=max(deadline - time.monotonic(), 1.0))
        return actor

    @classmethod
    def create(
        cls, settings: Settings, secrets: dict[str, str], api_deadline: float, names: list[str] | None = None
    ) -> Pool:
        """Start the router actors over the cluster's nodes (``placement``); with ``names``, named
        detached ones that outlive us, else one per slot of ``pool.size`` or ``pool.per_node``.

        A named actor that is already alive is used as it is (``agentctl up``'s, found by a later call),
        and each request then brings this call's settings and secrets.
        """
        import ray

        from agentctl.execution.actor import RouterActor

        # Async actors interleave requests; num_cpus=0 lets a pool larger than the machine start.
        # No Ray-level retries: the LLM client and Prefect retry what is worth retrying (see policy).
        actor = ray.remote(RouterActor)
        options: dict[str, Any] = {"num_cpus": 0, "max_concurrency": 100, "max_restarts": 0, "max_task_retries": 0}
        config = shipped(settings).model_dump_json(exclude={"database"})  # only the Prefect server needs it
        nodes = placement.slots(ray, settings.pool)

        def placed(index: int, **named: Any) -> Any:
            return actor.options(**options, **named, **placement.on_node(ray, nodes[index % len(nodes)]))

        # Each actor's own deadline: one started in a dead one's place by a long-lived caller (the
        # gateway) gets as long as the first ones had, not a deadline that passed long ago.
        wait = api_deadline - time.time()
        if names is None:
            return cls(lambda i: placed(i).remote(config, secrets, time.time() + wait), len(nodes))

        def named(index: int) -> Any:
            # Actors that outlive this call keep no secrets: every request brings its caller's.
            detached = placed(index, name=names[index], lifetime="detached", get_if_exists=True)
            return detached.remote(config, {}, time.time() + wait)

        return cls(named, len(names), {"settings": config, "secrets": secrets})

    def ask(
        self,
        request: str,
        model: str | None = None,
        check: Callable[[], None] = lambda: None,
        approved: Approved = NOTHING,
        detach: bool = False,
        resume: Paused | None = None,
        history: list[dict[str, Any]] | None = None,
    ) -> Iterator[Event]:
        """Carry out ``request`` (with ``model``, if given) on the next actor; yield its events.

        A call that needs approval runs only if ``approved`` covers it, else the request pauses
        (``ApprovalNeeded`` …, ``Paused``); ``resume`` goes on from such a pause, with its answers.
        ``detach``: the events end once a deployment's flow run exists (``Started``).
        ``history``: earlier turns' messages the model sees before ``request``.
        """
        paused = None if resume is None else resume.model_dump(mode="json")

        def call(actor: Any) -> Any:
            return actor.handle.options(num_returns="streaming").remote(
                request,
                model,
                self._caller,
                self.deployments,
                approved,
                detach,
                resume=paused,
                history=history,
                owner=_ray_job(),
            )

        return self._streamed(call, check)

    def run(
        self,
        name: str,
        arguments: dict[str, Any],
        check: Callable[[], None] = lambda: None,
        approved: Approved = NOTHING,
        detach: bool = False,
    ) -> Iterator[Event]:
        """Run process ``name`` on the next actor, without the LLM; yield its events.

        It runs only if it needs no approval or ``approved`` covers it (else ``ApprovalNeeded``);
        ``detach`` as for ``ask``.
        """

        def call(actor: Any) -> Any:
            return actor.run.options(num_returns="streaming").remote(
                name, arguments, self._caller, self.deployments, approved, detach, owner=_ray_job()
            )

        return self._streamed(call, check)

    def flush(self, timeout: float = FLUSH_WITHIN) -> None:
        """Wait (at most ``timeout`` seconds) until every actor has sent Prefect what it holds: before
        the actors go, or a task run's last states, which travel only as events, would be lost."""
        import contextlib

        import ray

        with contextlib.suppress(ray.exceptions.RayError):  # an actor gone has nothing left to send
            ray.wait([actor.flushed.remote() for actor in self._actors], num_returns=len(self._actors), timeout=timeout)

    def warm(self) -> None:
        """Wait until every actor has Prefect imported and sees the Prefect API."""
        import ray

        try:
            ray.get([actor.ready.remote() for actor in self._actors])
        except ray.exceptions.RayError as exc:
            raise StackError(f"the router actors did not start: {first_line(str(exc))}") from None

    def route_many(self, requests: list[tuple[str, str | None]], concurrency: int) -> list[RouteOutcome]:
        """Route each (request, model) without running anything; a sliding window of ``concurrency``."""
        import ray

        results: dict[int, RouteOutcome] = {}
        pending: dict[Any, tuple[int, int]] = {}
        queue = list(enumerate(requests))
        while queue or pending:
            while queue and len(pending) < concurrency:
                index, (request, model) = queue.pop(0)
                actor = self._pick()
                self._busy[actor] += 1
                pending[self._actors[actor].route.remote(request, model, self._caller, self.deployments)] = (
                    index,
                    actor,
                )
            done, _ = ray.wait(list(pending), num_returns=1)
            index, actor = pending.pop(done[0])
            self._busy[actor] -= 1
            try:
                results[index] = RouteOutcome.model_validate(ray.get(done[0]))
            except ray.exceptions.RayActorError as exc:
                raise StackError(f"a router actor died during the evaluation: {first_line(exc.error_msg)}") from None
        return [results[i] for i in range(len(requests))]


def _ray_job() -> str | None:
    """This process's Ray job, sent with each request: the actor stops a request whose caller's job
    ended (its process died: Ray would let the request run on, its events going nowhere)."""
    import ray

    # Asked of a process not connected, the runtime context would start a Ray cluster of its own.
    return str(ray.get_runtime_context().get_job_id()) if ray.is_initialized() else None


def _in_progress(run: Run | None, event: Event) -> Run | None:
    """The run a request has in progress after ``event``: the latest one logging, until its outcome
    (a request of several steps runs one after another; a dead actor's is the one to mark Crashed)."""
    if isinstance(event, Log) and event.run_id:
        return (event.run_id, event.run_kind or "flow")
    if isinstance(event, Result | Failed) and event.run is not None and run is not None and event.run.id == run[0]:
        return None
    return run


def _stream(stream: Any, check: Callable[[], None]) -> Iterator[Event]:
    """Yield the events of a Ray streaming generator as they arrive.

    ``check`` runs while waiting and may raise to abandon the request (a dead Prefect server).
    """
    import ray

    try:
        while True:
            ready, _ = ray.wait([stream], timeout=0.25)
            if not ready:
                check()
                continue
            try:
                ref = next(stream)
            except StopIteration:
                return
            yield _events.validate_python(ray.get(ref))
    except ray.exceptions.RayActorError as exc:
        raise ActorDied(f"the router actor died while handling the request ({first_line(exc.error_msg)})") from None
    except Died as exc:
        if not exc.ray_dead:  # a cancel travels through Ray
            _cancel(stream)
        raise
    except BaseException:
        _cancel(stream)
        raise


def _cancel(stream: Any) -> None:
    """Cancel the request and wait, at most ``CANCEL_WAIT`` seconds, until the actor has ended it.

    Without the wait the process can exit before Ray has delivered the cancel, and an actor of
    ``agentctl up``, which outlives this process, would run the request on.
    """
    import contextlib

    import ray

    # Cancelling is best effort: the stream may have ended already, or its actor died.
    with contextlib.suppress(Exception):
        ray.cancel(stream)
        deadline = time.monotonic() + CANCEL_WAIT
        while (left := deadline - time.monotonic()) > 0:
            # Not next(stream): at the stream's end it waits, unbounded, for the actor's generator to
            # return; this returns a nil ref once ``left`` has passed (Ray's own bounded form of it).
            ref = stream._next_sync(timeout_s=min(left, 0.25))
            if not ref.is_nil():
                ray.get(ref)  # raises at the end: StopIteration, or the cancellation itself
