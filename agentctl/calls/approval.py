"""A request's approvals: what its caller approved, asking a person about the rest, refusing without one.

The actor stops a run that needs approval before anything is created (``ApprovalNeeded``). Here the
stream is finished first (the actor is free while a person thinks), then the caller's ``ask`` is
put the question; on yes, exactly the validated arguments run by name, with no second LLM call.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from agentctl.errors import AgentctlError, UsageError
from agentctl.events import ApprovalNeeded, Event, Routed
from agentctl.processes.approval import NOTHING, Approved


class Answer(enum.Enum):
    """A person's answer: run it, do not, or run this process without asking for the rest of the session."""

    YES = "y"
    NO = "n"
    ALWAYS = "always"


Ask = Callable[[ApprovalNeeded], Answer]
Run = Callable[[str, dict[str, Any], Approved], Iterator[Event]]  # (process, arguments, approved): its events


class ApprovalRequired(UsageError):
    """A run needs approval and there is no one to ask (no terminal, ``--json``, a batch): nothing ran."""


class NotApproved(AgentctlError):
    """The person asked said no: nothing ran."""


@dataclass
class Approval:
    """What the caller approved so far, and how to ask a person about the rest (None: nobody to ask)."""

    approved: Approved = NOTHING
    ask: Ask | None = None
    nobody: str = "there is no terminal to ask (stdin is not one, or --json)"  # why, when ``ask`` is None

    def decide(self, needed: ApprovalNeeded) -> Answer:
        """The person's answer; refused at once when nobody can be asked."""
        if self.ask is None:
            raise ApprovalRequired(
                f"{needed.process} needs approval before it runs and {self.nobody}: "
                "pass --yes, or list it in processes.auto_approve"
            )
        return self.ask(needed)


def approved_events(events: Iterable[Event], approval: Approval, run: Run) -> Iterator[Event]:
    """``events``, and when they end asking for approval: the answer's run, or the refusal."""
    needed = None
    for event in events:
        if isinstance(event, ApprovalNeeded):
            needed = event
        else:
            yield event
    if needed is not None:
        yield from _after_asking(needed, approval, run)


def _after_asking(needed: ApprovalNeeded, approval: Approval, run: Run) -> Iterator[Event]:
    answer = approval.decide(needed)
    if answer is Answer.NO:
        raise NotApproved(f"not approved: {needed.process} did not run")
    if answer is Answer.ALWAYS:
        approval.approved = approval.approved.adding(needed.process)
    for event in run(needed.process, needed.arguments, Approved(names=frozenset({needed.process}))):
        if not isinstance(event, Routed):  # the route was shown before the question
            yield event
