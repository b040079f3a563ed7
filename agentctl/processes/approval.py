"""Approval before side effects: which runs a person approves first, and what a request has approved.

A process's own ``confirm`` flag (``@process(confirm=True)``, deployments by default) is the
starting point; ``processes.auto_approve`` turns it off by name and ``processes.confirm`` turns it
on. A name in both is asked for: the safe side wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from agentctl.config import Settings
from agentctl.processes.registry import Process


def needs_approval(process: Process, settings: Settings) -> bool:
    """Whether a run of ``process`` waits for a person's yes under ``settings``."""
    rules = settings.processes
    if _matches(process.name, rules.confirm):
        return True
    return process.confirm and not _matches(process.name, rules.auto_approve)


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


@dataclass(frozen=True)
class Approved:
    """What a request's caller approved beforehand: every process (``--yes``) or these by name."""

    everything: bool = False
    names: frozenset[str] = frozenset()

    def covers(self, name: str) -> bool:
        """Whether a run of process ``name`` is approved already."""
        return self.everything or name in self.names

    def adding(self, name: str) -> Approved:
        """These approvals and process ``name`` (the REPL's "always")."""
        return Approved(self.everything, self.names | {name})


NOTHING = Approved()
EVERYTHING = Approved(everything=True)
