"""A request's approvals: what its caller approved, asking a person about the rest, refusing without one.

The actor stops calls that need approval before anything is created (``ApprovalNeeded``). Here the
stream is finished first (the actor is free while a person thinks), then the caller's ``ask`` is
put each question. A request goes on from its ``Paused`` state (``resume``) with the calls said yes
to, exactly as validated; a refused call is reported to the model, and once the request is over
``NotApproved`` says what did not run. A run by name (no LLM) runs on yes, by name again.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from agentctl.errors import AgentctlError, UsageError
from agentctl.events import ApprovalNeeded, Event, Paused, Routed
from agentctl.processes.approval import NOTHING, Approved


class Answer(enum.Enum):
    """A person's answer: run it, do not, or run this process without asking for the rest of the session."""

    YES = "y"
    NO = "n"
    ALWAYS = "always"


Ask = Callable[[ApprovalNeeded], Answer]
Run = Callable[[str, dict[str, Any], Approved], Iterator[Event]]  # (process, arguments, approved): its events
Resume = Callable[[Paused, Approved], Iterator[Event]]  # (the pause with its answers, approved): the rest


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


def approved_events(
    events: Iterable[Event], approval: Approval, run: Run, resume: Resume | None = None
) -> Iterator[Event]:
    """``events``, and when they end asking for approval: the request resumed with the answers (or the
    answer's run by name, for a run without a pause), or the refusal."""
    needed: list[ApprovalNeeded] = []
    paused = None
    for event in events:
        if isinstance(event, ApprovalNeeded):
            needed.append(event)
        elif isinstance(event, Paused):
            paused = event
        else:
            yield event
    if needed and paused is not None and resume is not None:
        yield from _resumed(needed, paused, approval, run, resume)
    elif needed:
        yield from _after_asking(needed[0], approval, run)


def _resumed(
    needed: list[ApprovalNeeded], paused: Paused, approval: Approval, run: Run, resume: Resume
) -> Iterator[Event]:
    """The request gone on with the person's answers; ``NotApproved`` at its end if a call was refused."""
    approved, refused = _answers(needed, approval)
    answered = paused.model_copy(update={"approved": approved})
    yield from approved_events(resume(answered, approval.approved), approval, run, resume)
    if refused:
        raise NotApproved(f"not approved: {', '.join(refused)} did not run")


def _answers(needed: list[ApprovalNeeded], approval: Approval) -> tuple[list[str], list[str]]:
    """The ids of the calls said yes to, and the processes of those refused (``always`` is remembered)."""
    approved, refused = [], []
    for call in needed:
        answer = approval.decide(call)
        if answer is Answer.ALWAYS:
            approval.approved = approval.approved.adding(call.process)
        if answer is Answer.NO:
            refused.append(call.process)
        else:
            approved.append(call.call_id or "")
    return approved, refused


def _after_asking(needed: ApprovalNeeded, approval: Approval, run: Run) -> Iterator[Event]:
    answer = approval.decide(needed)
    if answer is Answer.NO:
        raise NotApproved(f"not approved: {needed.process} did not run")
    if answer is Answer.ALWAYS:
        approval.approved = approval.approved.adding(needed.process)
    for event in run(needed.process, needed.arguments, Approved(names=frozenset({needed.process}))):
        if not isinstance(event, Routed):  # the route was shown before the question
            yield event
