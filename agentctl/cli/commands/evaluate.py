"""``agentctl eval``: routing accuracy of one or more models on a file of cases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentctl.cli.commands.common import consoles, settings
from agentctl.errors import EXIT_FAILED, EXIT_OK
from agentctl.output.emit import emit

MODELS_HELP = "Comma-separated models to compare (default: llm.model)."
MIN_HELP = "Exit 1 when a model's routing accuracy is below this (0 to 1)."


def evaluate(
    ctx: typer.Context,
    cases: Annotated[Path, typer.Argument(help="A TOML file of [[case]] tables (see evals/builtins.toml).")],
    models: Annotated[str | None, typer.Option("--models", help=MODELS_HELP)] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=256, help="Cases in flight at once.")] = 8,
    min_accuracy: Annotated[float | None, typer.Option("--min-accuracy", min=0, max=1, help=MIN_HELP)] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document, nothing else.")] = False,
) -> int:
    """Measure routing accuracy, latency and tokens of one or more models on a case file.

    Every case goes through the router only (nothing executes), for each model, in parallel across
    the actor pool; the failing cases are listed.

    Example:

    `agentctl eval evals/builtins.toml --models gpt-4o-mini,gpt-4o`
    """
    from agentctl.calls.evaluation import load_cases, run_cases, summarize
    from agentctl.views import EvalOutput

    config = settings(ctx)
    chosen = [m.strip() for m in (models or config.llm.model).split(",") if m.strip()]
    report = summarize(run_cases(config, load_cases(cases), chosen, concurrency))
    emit(EvalOutput(cases=str(cases), models=report), json=json_output, out=consoles(ctx)[0])
    below = min_accuracy is not None and any(r.accuracy < min_accuracy for r in report.values())
    return EXIT_FAILED if below else EXIT_OK
