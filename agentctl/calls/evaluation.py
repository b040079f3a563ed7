"""``agentctl eval``: routing accuracy of one or more models on a file of cases.

Each case is a prompt, the process the router should choose (``none`` for a chat reply) and,
optionally, arguments that must appear among the chosen ones. Cases run through the router only
(nothing is executed), in parallel across the actor pool.
"""

from __future__ import annotations

import statistics
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentctl.config import Settings
from agentctl.errors import UsageError
from agentctl.views import Choice, EvalFailure, Latency, ModelSummary, Tokens

NO_PROCESS = "none"
TOKEN_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


class Case(BaseModel):
    """One evaluation case."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(min_length=1)
    process: str = Field(min_length=1)
    arguments: dict[str, Any] | None = None


class Outcome(BaseModel):
    """What the router did with one case for one model."""

    case: Case
    model: str
    process: str | None = None
    arguments: dict[str, Any] | None = None
    error: str | None = None
    latency: float = 0.0
    usage: dict[str, int | float | None] = {}  # spending.TokenCount.as_dict(): counts and cost

    @property
    def routed_right(self) -> bool:
        """The expected process was chosen (or, for ``none``, a chat reply with no error)."""
        return self.error is None and (self.process or NO_PROCESS) == self.case.process

    @property
    def arguments_right(self) -> bool:
        """The right process, and every expected argument among the chosen ones."""
        expected = self.case.arguments or {}
        return self.routed_right and all((self.arguments or {}).get(k) == v for k, v in expected.items())


def load_cases(path: Path) -> list[Case]:
    """The cases of a TOML file (``[[case]]`` tables), or a UsageError naming what is wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no case file at {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    raw = data.get("case")
    if not isinstance(raw, list) or not raw:
        raise UsageError(f"{path} has no [[case]] tables: see evals/builtins.toml for the format")
    return [_case(path, number, item) for number, item in enumerate(raw, 1)]


def _case(path: Path, number: int, item: Any) -> Case:
    try:
        return Case.model_validate(item)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise UsageError(f"{path}: case {number}: {key}: {err['msg']}") from None


def summarize(outcomes: Iterable[Outcome]) -> dict[str, ModelSummary]:
    """Per model: accuracy, argument accuracy, latency percentiles, tokens and the failing cases."""
    by_model: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_model.setdefault(outcome.model, []).append(outcome)
    return {model: _summary(items) for model, items in by_model.items()}


def _summary(items: list[Outcome]) -> ModelSummary:
    with_args = [o for o in items if o.case.arguments]
    latencies = sorted(o.latency for o in items)
    return ModelSummary(
        cases=len(items),
        accuracy=sum(o.routed_right for o in items) / len(items),
        argument_accuracy=sum(o.arguments_right for o in with_args) / len(with_args) if with_args else None,
        errors=sum(o.error is not None for o in items),
        latency=Latency(**{f"p{q}": _percentile(latencies, q) for q in (50, 90, 99)}),
        tokens=Tokens(**{k: sum(int(o.usage.get(k) or 0) for o in items) for k in TOKEN_KEYS}),
        failures=[_failure(o) for o in items if not o.arguments_right],
    )


def _percentile(ordered: list[float], q: int) -> float:
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[q - 1]


def _failure(outcome: Outcome) -> EvalFailure:
    return EvalFailure(
        prompt=outcome.case.prompt,
        expected=Choice(process=outcome.case.process, arguments=outcome.case.arguments),
        got=Choice(process=outcome.process or (None if outcome.error else NO_PROCESS), arguments=outcome.arguments),
        error=outcome.error,
    )


def run_cases(settings: Settings, cases: list[Case], models: list[str], concurrency: int) -> list[Outcome]:
    """Route every case with every model on the actor pool; nothing runs, no Prefect API is needed."""
    from agentctl.calls.session import Session

    settings.api_key()
    jobs = [(case, model) for model in models for case in cases]
    with Session(settings, prefect=False) as session:
        results = session.route_many([(case.prompt, model) for case, model in jobs], concurrency)
    return [
        Outcome(case=case, model=model, **result.model_dump())
        for (case, model), result in zip(jobs, results, strict=True)
    ]
