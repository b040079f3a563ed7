"""Asking a person on the terminal whether a run that needs approval goes ahead (y/N; the REPL: always)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from rich.console import Console
from rich.text import Text

from agentctl.calls.approval import Answer, Approval
from agentctl.events import ApprovalNeeded
from agentctl.output.emit import Redact
from agentctl.output.untrusted import literal
from agentctl.processes.approval import EVERYTHING

Pause = Callable[[], AbstractContextManager[None]]  # the spinner out of the way while asking


def approval(yes: bool, json_output: bool, err: Console, pause: Pause, redact: Redact) -> Approval:
    """A call's approval: ``--yes`` approves every run; with a terminal (and no ``--json``) a person is
    asked; else nobody can be, and a run that needs approval is refused."""
    if yes:
        return Approval(EVERYTHING)
    return Approval(ask=TerminalAsk(err, pause, redact) if can_ask(json_output) else None)


def can_ask(json_output: bool) -> bool:
    """Whether a person can answer here: stdin is a terminal and stdout is not a JSON document."""
    return not json_output and sys.stdin.isatty()


@dataclass(frozen=True)
class TerminalAsk:
    """Shows the route and its validated arguments (foreign text, printed literally) and reads y/N."""

    err: Console
    pause: Pause
    redact: Redact
    always: bool = False  # the REPL offers "always": this process, without asking, for the session

    def __call__(self, needed: ApprovalNeeded) -> Answer:
        """The person's answer; anything but yes (or always) is no, end of input too."""
        choices = "y/N/always" if self.always else "y/N"
        with self.pause():
            self.err.print(literal(self._question(needed)), highlight=False)
            try:
                reply = self.err.input(Text(f"Run it? [{choices}] ")).strip().lower()
            except EOFError:
                reply = ""
        return _answer(reply, self.always)

    def _question(self, needed: ApprovalNeeded) -> str:
        arguments = [f"  {name} = {json.dumps(value)}" for name, value in needed.arguments.items()]
        lines = [f"approval needed: {needed.process} runs with", *arguments] if arguments else []
        return self.redact("\n".join(lines or [f"approval needed: {needed.process} runs with no arguments"]))


def _answer(reply: str, always: bool) -> Answer:
    if reply in ("y", "yes"):
        return Answer.YES
    if always and reply in ("a", "always"):
        return Answer.ALWAYS
    return Answer.NO
