"""Batches: many requests (``agentctl batch``) or argument sets (``processes run --batch``) in one process.

    reader   the input, line by line: items and malformed lines
    engine   at most N items in flight, records as they finish, a stop that cancels
    records  stdout, or --out: appended and flushed per record, compacted to one per id at the end
    tally    the count, the summary line and the exit code
    wire     a batch over the stack's gateway (``POST /v1/batch``), and ``warm`` the CLI's side of it

A batch goes through the stack's gateway when it serves the call (``warm``: this process then
imports no Ray, Prefect or openai, and the gateway drives the items with ``ask_items``/``run_items``
on its pool); else it runs on one session (the stack of ``agentctl up``, else a temporary one), whose
pool spreads the items over its actors. A dry run routes in this process and starts nothing. What a
batch yields: warnings (``Log``), malformed lines and records, in the order they happen.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agentctl.calls.approval import Approval
from agentctl.calls.batch.engine import Check, drive
from agentctl.calls.batch.reader import Item, Malformed, Read
from agentctl.calls.batch.records import key
from agentctl.config import Settings
from agentctl.errors import AgentctlError
from agentctl.events import ApprovalNeeded, Event, Log, Routed
from agentctl.processes.approval import Approved
from agentctl.views import BatchRecord, ErrorInfo

if TYPE_CHECKING:
    from agentctl.calls.session import Session

PER_ACTOR = 4  # default items in flight per router actor: enough to hide the LLM's latency
SQLITE_CONCURRENCY = 4  # above this, Prefect on SQLite answers concurrent runs with 503s and retries
Outcome = Log | Malformed | BatchRecord


@dataclass(frozen=True)
class Options:
    """How a batch runs: items in flight (None: from the pool size), route only, approve all, own stack."""

    concurrency: int | None = None
    dry_run: bool = False
    yes: bool = False
    standalone: bool = False
    approve: frozenset[str] = frozenset()  # processes approved by name (a gateway caller may send them)

    def approval(self) -> Approval:
        """The batch's approval: nobody is asked, so a run that needs one not given here is refused."""
        return approval_of(Approved(everything=self.yes, names=self.approve))


class Served(Protocol):
    """Where a batch's items run: a session (through Ray), or the pool of the stack's gateway for one caller."""

    @property
    def pool_size(self) -> int:
        """How many router actors serve the batch."""

    @property
    def on_sqlite(self) -> bool:
        """Whether the Prefect API keeps its data in SQLite (slow for runs at once)."""

    def notices(self) -> Iterator[Log]:
        """What the batch should warn about before it starts."""

    def ask(self, request: str, model: str | None, approval: Approval, check: Check) -> Iterator[Event]:
        """One request's events."""

    def run(self, name: str, arguments: dict[str, Any], approval: Approval, check: Check) -> Iterator[Event]:
        """One run's events, without the LLM."""


def ask_batch(settings: Settings, reads: Iterable[Read], options: Options) -> Iterator[Outcome]:
    """Route and run every request of ``reads`` (route only, with ``dry_run``): through the stack's
    gateway when it serves the call, else on a session of this process."""
    if options.dry_run:
        yield from _dry_batch(settings, reads, options, options.approval())
        return
    settings.api_key()
    from agentctl.calls.batch.warm import through_gateway

    yield from through_gateway(settings, reads, options, None, [], lambda: _ask_on_session(settings, reads, options))


def _ask_on_session(settings: Settings, reads: Iterable[Read], options: Options) -> Iterator[Outcome]:
    from agentctl.calls.session import Session

    with Session(settings, standalone=options.standalone, last=True) as session:
        yield from ask_items(_SessionServed(session), settings, reads, options)


def ask_items(served: Served, settings: Settings, reads: Iterable[Read], options: Options) -> Iterator[Outcome]:
    """The requests of ``reads`` on ``served``, ``options.concurrency`` at a time (default: per actor)."""

    def record(item: Item, approval: Approval, check: Check) -> BatchRecord:
        events = served.ask(item.request, item.model or settings.llm.model, approval, check)
        return _recorded(BatchRecord(id=item.id, request=item.request), events, check)

    yield from _driven(served, reads, options, record)


def run_batch(
    settings: Settings, name: str, reads: Iterable[Read], options: Options, listing: Any
) -> Iterator[Outcome]:
    """Run process ``name`` once per argument set of ``reads``, no LLM (through the stack's gateway
    when it serves the call); ``listing``: the deployments, whose problems the caller warned about."""
    from agentctl.calls.batch.warm import through_gateway

    warned = listing.problems if listing is not None else []
    yield from through_gateway(
        settings, reads, options, name, warned, lambda: _run_on_session(settings, name, reads, options, listing)
    )


def _run_on_session(
    settings: Settings, name: str, reads: Iterable[Read], options: Options, listing: Any
) -> Iterator[Outcome]:
    from agentctl.calls.session import Session

    with Session(settings, standalone=options.standalone, last=True, listing=listing) as session:
        yield from run_items(_SessionServed(session), name, reads, options)


def run_items(served: Served, name: str, reads: Iterable[Read], options: Options) -> Iterator[Outcome]:
    """A run of process ``name`` per argument set of ``reads`` on ``served``."""

    def record(item: Item, approval: Approval, check: Check) -> BatchRecord:
        events = served.run(name, item.arguments, approval, check)
        return _recorded(BatchRecord(id=item.id, request=f"processes run {name}"), events, check)

    yield from _driven(served, reads, options, record)


def _driven(
    served: Served, reads: Iterable[Read], options: Options, record: Callable[[Item, Approval, Check], BatchRecord]
) -> Iterator[Outcome]:
    """``record`` of every item of ``reads``, ``options.concurrency`` at a time (default: per actor),
    after the warnings of ``served``."""
    approval = options.approval()
    concurrency = options.concurrency or PER_ACTOR * served.pool_size
    yield from _warnings(served.notices(), served.on_sqlite, concurrency)
    yield from drive(reads, lambda item, check: record(item, approval, check), concurrency)


class _SessionServed:
    """A session of this process, as a batch runs on it."""

    def __init__(self, session: Session) -> None:
        self._session = session

    @property
    def pool_size(self) -> int:
        return self._session.pool_size

    @property
    def on_sqlite(self) -> bool:
        return self._session.on_sqlite

    def notices(self) -> Iterator[Log]:
        return self._session.notices()

    def ask(self, request: str, model: str | None, approval: Approval, check: Check) -> Iterator[Event]:
        return self._session.ask(request, model, approval, check=check)

    def run(self, name: str, arguments: dict[str, Any], approval: Approval, check: Check) -> Iterator[Event]:
        return self._session.run(name, arguments, approval, check=check)


def _dry_batch(settings: Settings, reads: Iterable[Read], options: Options, approval: Approval) -> Iterator[Outcome]:
    from agentctl.calls.dry_run import DryRouter

    router = DryRouter(settings)
    try:
        for problem in router.found.problems:
            yield _warning(problem)

        def work(item: Item, check: Check) -> BatchRecord:
            events = _approval_applied(router.route(item.request, item.model, check), approval)
            return _recorded(BatchRecord(id=item.id, request=item.request), events, check)

        yield from drive(reads, work, options.concurrency or PER_ACTOR * settings.pool.size)
    finally:
        router.close()


def skipping(reads: Iterable[Read], done: set[str], skipped: Callable[[], None]) -> Iterator[Read]:
    """``reads`` without the items whose id is in ``done`` (as ``records.key``); ``skipped`` for each."""
    for read in reads:
        if isinstance(read, Item) and key(read.id) in done:
            skipped()
        else:
            yield read


def sqlite_warning(on_sqlite: bool, concurrency: int) -> str | None:
    """The warning for a batch that runs more than a few at a time against Prefect on SQLite."""
    if not on_sqlite or concurrency <= SQLITE_CONCURRENCY:
        return None
    return (
        f"this batch runs {concurrency} items at a time on a Prefect server that keeps its data in SQLite, "
        "which answers concurrent runs slowly (503s and retries): run agentctl up --postgres first"
    )


def _warnings(notices: Iterable[Log], on_sqlite: bool, concurrency: int) -> Iterator[Log]:
    yield from notices
    if (warning := sqlite_warning(on_sqlite, concurrency)) is not None:
        yield _warning(warning)


def _warning(message: str) -> Log:
    return Log(time=time.time(), level="WARNING", run_name="agentctl", message=message)


def approval_of(approved: Approved) -> Approval:
    """A batch's approval: nobody is asked, so a run that needs one ``approved`` does not cover is refused."""
    return Approval(approved, nobody="a batch asks no one")


def _approval_applied(events: Iterator[Event], approval: Approval) -> Iterator[Event]:
    """A dry run's events, refused after the route when the process needs an approval not given."""
    for event in events:
        yield event
        if isinstance(event, Routed) and event.needs_approval and not approval.approved.covers(event.process):
            approval.decide(ApprovalNeeded(process=event.process, arguments=event.arguments))


def _recorded(record: BatchRecord, events: Iterator[Event], check: Check) -> BatchRecord:
    """``record`` with every event of ``events`` folded in, or the error that ended them.

    ``check`` between events too: a request that streams without pause still stops with the batch,
    and closing its stream cancels it where it runs.
    """
    try:
        with contextlib.closing(events):  # type: ignore[type-var]
            for event in events:
                check()
                record.add(event)
    except AgentctlError as exc:
        record.error = ErrorInfo(message=str(exc), type=type(exc).__name__, exit_code=exc.exit_code)
    return record
