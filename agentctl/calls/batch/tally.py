"""A batch's count of outcomes, and the exit code they make.

Exit codes: 0 when every item succeeded; 1 when any item failed as a run fails (the LLM, the
process, the stack); else 2 when any line was malformed or any item was refused as bad input
(its arguments, a route the model could not make valid, a run that needs approval without
``--yes``). A failed run outranks bad input: it is the first thing to look at. Ctrl-C is 130.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from agentctl.calls.approval import ApprovalRequired
from agentctl.calls.batch.reader import Malformed
from agentctl.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from agentctl.views import BatchRecord


@dataclass
class Tally:
    """What happened to a batch's items so far."""

    succeeded: int = 0
    failed: int = 0  # runs that failed (exit 1)
    refused: int = 0  # items that were bad input (exit 2)
    malformed: int = 0
    skipped: int = 0  # done in an earlier run (--resume)
    needs_yes: int = 0  # refused because they need approval
    started: float = field(default_factory=time.monotonic)

    def count(self, outcome: BatchRecord | Malformed) -> None:
        """Count one record or one malformed line."""
        if isinstance(outcome, Malformed):
            self.malformed += 1
        elif outcome.error is None:
            self.succeeded += 1
        elif outcome.error.exit_code == EXIT_USAGE:
            self.refused += 1
            self.needs_yes += outcome.error.type == ApprovalRequired.__name__
        else:
            self.failed += 1

    def skip(self) -> None:
        """Count an item done by an earlier run (--resume)."""
        self.skipped += 1

    @property
    def done(self) -> int:
        """Items with a record."""
        return self.succeeded + self.failed + self.refused

    def rate(self) -> float:
        """Records per second so far."""
        return self.done / max(time.monotonic() - self.started, 1e-9)

    def exit_code(self) -> int:
        """The batch's exit code (see the module)."""
        if self.failed:
            return EXIT_FAILED
        return EXIT_USAGE if self.refused or self.malformed else EXIT_OK

    def summary(self) -> str:
        """``batch: 10 records (8 succeeded, 1 failed, 1 refused), 1 malformed line skipped, 3.2/s``"""
        parts = [f"{self.done} records ({self.succeeded} succeeded, {self.failed} failed, {self.refused} refused)"]
        if self.malformed:
            parts.append(f"{self.malformed} malformed line{'s' if self.malformed != 1 else ''} skipped")
        if self.skipped:
            parts.append(f"{self.skipped} done before (--resume)")
        parts.append(f"{time.monotonic() - self.started:.1f} s, {self.rate():.1f}/s")
        return "batch: " + ", ".join(parts)
