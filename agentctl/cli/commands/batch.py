"""``agentctl batch``: many requests in one process, records out as they finish."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agentctl.cli.commands.common import redactor, settings, state

if TYPE_CHECKING:
    from agentctl.calls.batch import Outcome
    from agentctl.calls.batch.reader import Read
    from agentctl.config import Settings

INPUT_HELP = 'JSON Lines ({"id": ..., "request": ..., "model": ...}) or text, one request a line; - for stdin.'
OUT_HELP = "Write the records to this file (0600) instead of stdout."
CONCURRENCY_HELP = "Items in flight at once (default: 4 per router actor)."
RESUME_HELP = "Skip the ids that already have a successful record in --out; redo the failed ones."
DRY_RUN_HELP = "Route every item, run nothing: records carry the route, arguments and approval."
YES_HELP = "Approve every run of a process that asks first (confirm); without it such items are refused."
STANDALONE_HELP = "Start a temporary cluster and Prefect API for this batch even when agentctl up is running."

Concurrency = Annotated[int | None, typer.Option("--concurrency", "-c", min=1, max=1000, help=CONCURRENCY_HELP)]
Out = Annotated[Path | None, typer.Option("--out", "-o", help=OUT_HELP, dir_okay=False)]
Resume = Annotated[bool, typer.Option("--resume", help=RESUME_HELP)]
Yes = Annotated[bool, typer.Option("--yes", "-y", help=YES_HELP)]
Standalone = Annotated[bool, typer.Option("--standalone", help=STANDALONE_HELP)]


def batch(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help=INPUT_HELP, metavar="FILE")],
    out: Out = None,
    concurrency: Concurrency = None,
    resume: Resume = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_RUN_HELP)] = False,
    yes: Yes = False,
    model: Annotated[str | None, typer.Option("--model", help="LLM model for items that name none.")] = None,
    pool_size: Annotated[int | None, typer.Option("--pool-size", help="Router actors to start (pool.size).")] = None,
    standalone: Standalone = False,
) -> int:
    """Route and run many requests, each as ask would, and write one JSON record per item as it finishes.

    Records have the fields of ask --json plus the item's id, in the order items finish. Progress
    goes to stderr (a summary line off a terminal). A failing item is a record with its error;
    a malformed line is reported and skipped. Exit 0 when all succeeded, 1 when any run failed,
    2 when there was bad input and nothing failed otherwise, 130 on Ctrl-C (what finished is kept).

    Example:

    `agentctl batch requests.jsonl --out results.jsonl`
    """
    from agentctl.calls.batch import Options, ask_batch
    from agentctl.calls.batch.reader import requests

    config = settings(ctx, {"llm.model": model, "pool.size": pool_size})
    options = Options(concurrency, dry_run, yes, standalone)
    return run_batch_command(ctx, config, file, out, resume, requests, lambda reads: ask_batch(config, reads, options))


def run_batch_command(
    ctx: typer.Context,
    config: Settings,
    file: str,
    out: Path | None,
    resume: bool,
    parse: Callable[[Iterable[str]], Iterator[Read]],
    outcomes: Callable[[Iterable[Read]], Iterator[Outcome]],
) -> int:
    """Read ``file`` with ``parse``, skip what ``--resume`` finds done, follow the batch's ``outcomes``."""
    from agentctl.calls.batch import skipping
    from agentctl.calls.batch.reader import count, opened
    from agentctl.calls.batch.records import Records
    from agentctl.calls.batch.tally import Tally
    from agentctl.output.batch import follow

    with opened(file) as lines:  # before --out is truncated: a wrong input name costs no records
        records, tally = Records(out, redactor(config), resume), Tally()
        reads = skipping(parse(lines), records.done, tally.skip)
        source = "stdin" if file == "-" else file
        return follow(outcomes(reads), records, tally, state(ctx).err, source, count(file))
