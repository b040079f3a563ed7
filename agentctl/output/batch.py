"""A batch on the terminal: each record written as it finishes, progress on stderr, one summary line.

Stdout (or ``--out``) carries records only. On a terminal, stderr shows a live line (done, failed,
rate, and the time left when the input's length is known); off one, only the final summary. A
malformed line and a warning are one line each, as they happen.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeRemainingColumn
from rich.text import Text

from agentctl.calls.batch import Outcome
from agentctl.calls.batch.reader import Malformed
from agentctl.calls.batch.records import Records
from agentctl.calls.batch.tally import Tally
from agentctl.events import Log
from agentctl.output.emit import print_error
from agentctl.output.untrusted import literal

LINE = "{task.fields[done]} done · {task.fields[failed]} failed · {task.fields[rate]:.1f}/s"


def follow(
    outcomes: Iterable[Outcome], records: Records, tally: Tally, err: Console, source: str, total: int | None = None
) -> int:
    """Write every record, show progress (``total``: the input's items, for the time left), end with
    the summary; the batch's exit code."""
    try:
        with _live(err, tally, total) as advance:
            for outcome in outcomes:
                _one(outcome, records, tally, err, source)
                advance()
    finally:
        records.close()
        err.print(literal(tally.summary()), highlight=False)
        if tally.needs_yes:
            print_error(
                f"{tally.needs_yes} item(s) need approval and a batch asks no one: "
                "pass --yes, or list them in processes.auto_approve",
                err,
            )
    return tally.exit_code()


def _one(outcome: Outcome, records: Records, tally: Tally, err: Console, source: str) -> None:
    if isinstance(outcome, Log):
        err.print(Text.assemble(("warning: ", "yellow"), literal(outcome.message)), highlight=False)
    elif isinstance(outcome, Malformed):
        tally.count(outcome)
        print_error(outcome.message(source), err)
    else:
        records.write(outcome)
        tally.count(outcome)


@contextlib.contextmanager
def _live(err: Console, tally: Tally, total: int | None = None) -> Iterator[Callable[[], None]]:
    """A function that redraws the progress line (a no-op off a terminal)."""
    if not err.is_terminal:
        yield lambda: None
        return
    columns = [SpinnerColumn(), TextColumn(LINE), TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("batch", total=total, done=0, failed=0, rate=0.0)
        yield lambda: _advance(progress, task, tally)


def _advance(progress: Progress, task: TaskID, tally: Tally) -> None:
    seen = tally.done + tally.malformed + tally.skipped
    progress.update(task, completed=seen, done=tally.done, failed=tally.failed + tally.refused, rate=tally.rate())
