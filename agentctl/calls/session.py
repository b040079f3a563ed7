"""A session: the Prefect API and Ray cluster a request needs, the actor pool, and ``ask()``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from agentctl.calls.approval import Approval, Run, approved_events
from agentctl.calls.catalog import list_for
from agentctl.config import Settings
from agentctl.errors import StackError
from agentctl.events import Event, Log, Paused, RouteOutcome
from agentctl.execution.pool import Pool
from agentctl.processes.approval import Approved
from agentctl.processes.deployments import Listing, to_records
from agentctl.processes.discovery import anchored
from agentctl.stack import ray_cluster, shipping, watch
from agentctl.stack.lifecycle import Stack
from agentctl.stack.prefect_server import LocalPrefectAPI, mark_crashed
from agentctl.stack.worker_env import actor_env, secrets_of


class Session:
    """Starts what is missing (a local Prefect API, a local Ray cluster) and stops what it started."""

    def __init__(
        self,
        settings: Settings,
        prefect: bool = True,
        standalone: bool = False,
        last: bool = False,
        listing: Listing | None = None,
    ) -> None:
        """``last``: the process exits after this session, so a connection to a cluster it did not
        start is left to the exit (``ray.shutdown`` of a driver costs ~0.26 s). ``listing``: the
        Prefect deployments the caller already listed (and warned about); else the session lists them."""
        self.settings = anchored(settings)
        self._last = last
        self._needs_prefect = prefect
        self._standalone = standalone
        self._api: LocalPrefectAPI | None = None
        self._ray_started = False
        self._ray_connected = False
        self._pool: Pool | None = None
        self._stack: Stack | None = None
        self._watch: watch.Check = watch.nothing
        self.notice: str | None = None
        self._listed = listing is None  # its problems are this session's to report
        self.listing = listing

    def __enter__(self) -> Session:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def open(self) -> None:
        """Use the stack ``agentctl up`` keeps, if one runs; else start what is missing for this session."""
        stack = None if self._standalone else self._usable_stack()
        if stack is not None:
            self._attach(stack)
        else:
            self._start()
        assert self._pool is not None
        if self.listing is None:
            self.listing = list_for(self.settings)
        self._pool.deployments = to_records(self.listing.deployments)
        self._pool.on_crash = self._mark_crashed
        self._watch = self._what_to_watch()

    def _what_to_watch(self) -> watch.Check:
        """What requests depend on and ``watch`` can tell dead in seconds."""
        if self._api is not None:
            return watch.own_server(self._api)
        if self._stack is not None:
            return watch.stack(self._stack.state)
        return watch.api(self.prefect_url) if self.prefect_url else watch.nothing

    def _usable_stack(self) -> Stack | None:
        try:
            stack = Stack.load(self.settings)
        except StackError as exc:
            return self._not_using(str(exc))
        why = None if stack is None else stack.unusable_for(self.settings)
        if why is not None:
            return self._not_using(f"{why.reason} (agentctl up starts what is missing)" if why.stale else why.reason)
        return stack

    def _not_using(self, reason: str) -> Stack | None:
        """No stack for this call, and the warning that says why."""
        self.notice = f"not using the stack of agentctl up: {reason}; a temporary one serves this call"
        return None

    def _attach(self, stack: Stack) -> None:
        self._stack = stack
        self._ray_connected = True  # close() disconnects even when the pool cannot be made
        self._pool = stack.attach(self.settings, self._secrets())

    def _start(self) -> None:
        api_url = self.settings.prefect.api_url or ""
        if not api_url and self._needs_prefect:
            settings = self.settings
            self._api = LocalPrefectAPI(settings.data_dir, settings.prefect.telemetry, settings.secret_names())
            self._api.start()
            api_url = self._api.url
        # A session's own server serves no UI and stops with the session: no "View at" links.
        ui_url = "" if self._api is not None else None
        self._ray_started = shipping.connect(self.settings, actor_env(self.settings, api_url, ui_url))
        self._ray_connected = True
        deadline = time.time() + self.settings.prefect.startup_timeout
        self._pool = Pool.create(self.settings, self._secrets(), deadline)

    def _mark_crashed(self, run_id: str, kind: str) -> bool:
        # Not marked is no error of its own: the request's error says whether it was.
        return mark_crashed(self.prefect_url, run_id, kind, "the router actor running it died (agentctl)")

    @property
    def prefect_url(self) -> str:
        """The Prefect API every run of this session reports to."""
        if self._stack is not None:
            return self._stack.state.prefect_url
        return self._api.url if self._api is not None else (self.settings.prefect.api_url or "")

    @property
    def on_stack(self) -> bool:
        """Whether this session uses the stack of ``agentctl up``."""
        return self._stack is not None

    def ask(
        self,
        request: str,
        model: str | None = None,
        approval: Approval | None = None,
        detach: bool = False,
        check: watch.Check = watch.nothing,
        history: list[dict[str, Any]] | None = None,
    ) -> Iterator[Event]:
        """Carry out ``request`` (with ``model``, if given); yield its events as they happen.

        A call that needs approval runs once ``approval`` has it (approved already, or asked: the
        request then goes on from where it paused). ``detach``: stop once a deployment's flow run
        exists; its worker carries it on. ``check`` runs while the request waits, beside the
        session's own watch: what it raises abandons the request, which is cancelled in its actor (a
        batch that stops). ``history``: earlier turns' messages (a conversation), sent before ``request``.
        """
        pool = self._pool
        assert pool is not None, "open() the session first"
        approval, both = approval or Approval(), self._watching(check)
        events = pool.ask(request, model, check=both, approved=approval.approved, detach=detach, history=history)

        def resume(paused: Paused, approved: Approved) -> Iterator[Event]:
            return pool.ask(request, model, check=both, approved=approved, detach=detach, resume=paused)

        return approved_events(events, approval, self._approved_run(detach, both), resume)

    def run(
        self,
        name: str,
        arguments: dict[str, Any],
        approval: Approval | None = None,
        detach: bool = False,
        check: watch.Check = watch.nothing,
    ) -> Iterator[Event]:
        """Run process ``name`` with ``arguments``, without the LLM; yield its events.

        A process that needs approval runs once ``approval`` has it (approved already, or asked);
        ``detach`` and ``check`` as for ``ask``.
        """
        assert self._pool is not None, "open() the session first"
        approval, both = approval or Approval(), self._watching(check)
        events = self._pool.run(name, arguments, check=both, approved=approval.approved, detach=detach)
        return approved_events(events, approval, self._approved_run(detach, both))

    def _approved_run(self, detach: bool, check: watch.Check) -> Run:
        """How an approved process runs by name: detached too if the request was, watched as it was."""
        pool = self._pool
        assert pool is not None, "open() the session first"

        def run(name: str, arguments: dict[str, Any], approved: Approved) -> Iterator[Event]:
            return pool.run(name, arguments, check=check, approved=approved, detach=detach)

        return run

    def _watching(self, check: watch.Check) -> watch.Check:
        """The session's watch and the caller's ``check``, in one."""
        if check is watch.nothing:
            return self._watch

        def both() -> None:
            check()
            self._watch()

        return both

    @property
    def on_sqlite(self) -> bool:
        """Whether the Prefect API is known to keep its data in SQLite (a configured one is not known)."""
        if self._stack is not None:
            return self._stack.state.database == "sqlite"
        return self._api is not None and self._api.database.startswith("sqlite")

    @property
    def pool_size(self) -> int:
        """How many router actors serve this session."""
        assert self._pool is not None, "open() the session first"
        return self._pool.size

    def warm(self) -> None:
        """Wait until every router actor is ready to run a process at once (for long sessions)."""
        assert self._pool is not None, "open() the session first"
        self._pool.warm()

    def route_many(self, requests: list[tuple[str, str | None]], concurrency: int) -> list[RouteOutcome]:
        """Route each (request, model) on the pool, at most ``concurrency`` at a time; results in order."""
        assert self._pool is not None, "open() the session first"
        return self._pool.route_many(requests, concurrency)

    def close(self) -> None:
        """Stop what this session started, and nothing else."""
        if self._pool is not None and self._stack is None:  # its own actors go with it
            self._pool.flush()
        if self._ray_connected and (self._ray_started or not self._last):
            ray_cluster.shutdown()  # stops the cluster only when this session started it
            self._ray_started = self._ray_connected = False
        if self._api is not None:
            self._api.stop()
            self._api = None

    def notices(self) -> Iterator[Log]:
        """A warning event for what the session chose or found that the user should know: the stack not
        used, deployments that could not be listed."""
        listed = self.listing.problems if self.listing is not None and self._listed else []
        for message in [self.notice, *listed] if self.notice else listed:
            yield Log(time=time.time(), level="WARNING", run_name="agentctl", message=message)

    def _secrets(self) -> dict[str, str]:
        return secrets_of(self.settings)


def ask_once(
    settings: Settings,
    request: str,
    standalone: bool = False,
    approval: Approval | None = None,
    detach: bool = False,
    history: list[dict[str, Any]] | None = None,
) -> Iterator[Event]:
    """Check credentials, open a session (on the running stack, if any), yield one request's events;
    ``history``: a conversation's earlier messages, sent before the request."""
    settings.api_key()
    with Session(settings, standalone=standalone, last=True) as session:
        yield from session.notices()
        yield from session.ask(request, settings.llm.model, approval, detach, history=history)


def run_once(
    settings: Settings,
    name: str,
    arguments: dict[str, Any],
    standalone: bool = False,
    listing: Listing | None = None,
    approval: Approval | None = None,
    detach: bool = False,
) -> Iterator[Event]:
    """Open a session (on the running stack, if any), yield the events of one run of ``name``;
    ``listing``: the deployments the caller listed, reused."""
    with Session(settings, standalone=standalone, last=True, listing=listing) as session:
        yield from session.notices()
        yield from session.run(name, arguments, approval, detach)
