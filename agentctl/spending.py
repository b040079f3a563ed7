"""What one request spends on the LLM, and the bounds it stops at.

Every LLM call of a request, the router's and those of the processes it runs, goes through the
request's ``llm.ChatModel``, which counts it in one ``TokenCount``: requests, tokens, and their cost,
each call priced with ``llm.prices`` for the model that call named. Before each call the count is held
against the request's ``Bounds`` (``router.max_tokens``, ``router.max_cost``).

A cost is known only when every call counted was priced: a model missing from ``llm.prices`` makes the
request's cost unknown (``None``), never a guess that leaves that call out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from agentctl.config import ModelPrice, RouterSettings
from agentctl.errors import BudgetExceeded, ConfigError

PER = 1_000_000  # llm.prices are per million tokens
COUNTS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens")
Spent = Mapping[str, int | float | None]  # a TokenCount.as_dict()


@dataclass(frozen=True)
class Bounds:
    """What one request may spend on the LLM; ``None``: no bound."""

    max_tokens: int | None = None
    max_cost: float | None = None

    @classmethod
    def of(cls, router: RouterSettings) -> Bounds:
        """The bounds ``router.max_tokens`` and ``router.max_cost`` set."""
        return cls(max_tokens=router.max_tokens, max_cost=router.max_cost)


@dataclass
class TokenCount:
    """Tokens, requests and cost spent on the LLM for one request, nested calls included."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    bounds: Bounds = field(default_factory=Bounds)
    priced: float = 0.0  # the cost of the priced calls
    unpriced: set[str] = field(default_factory=set)  # models of calls llm.prices has no price for

    @property
    def total_tokens(self) -> int:
        """Prompt and completion tokens together."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost(self) -> float | None:
        """What the calls cost, when there were some and every one of them was priced."""
        return self.priced if self.requests and not self.unpriced else None

    def check(self, model: str, price: ModelPrice | None) -> None:
        """Refuse the next call (to ``model``, priced ``price``) when the request may not make it."""
        if self.bounds.max_cost is not None and price is None:
            raise ConfigError(
                f"router.max_cost needs the price of model {model!r}: add it to [llm.prices] or unset router.max_cost"
            )
        if (reached := self._reached()) is not None:
            raise BudgetExceeded(reached)

    def _reached(self) -> str | None:
        """Which bound the request is at or over, as the message that names it."""
        limits, cost = self.bounds, self.cost
        if limits.max_tokens is not None and self.total_tokens >= limits.max_tokens:
            return _stopped("token", f"{self.total_tokens} tokens used", "router.max_tokens", limits.max_tokens)
        if limits.max_cost is not None and cost is not None and cost >= limits.max_cost:
            return _stopped("cost", f"{plain(cost)} spent", "router.max_cost", plain(limits.max_cost))
        return None

    def add(self, completion: Any, model: str, price: ModelPrice | None) -> None:
        """Count one completion of ``model``, priced ``price`` (``None``: not in llm.prices)."""
        self.requests += 1
        usage = getattr(completion, "usage", None)
        prompt = (usage.prompt_tokens or 0) if usage is not None else 0
        answer = (usage.completion_tokens or 0) if usage is not None else 0
        self.prompt_tokens += prompt
        self.completion_tokens += answer
        if price is None:
            self.unpriced.add(model)
        else:
            self.priced += (prompt * price.input + answer * price.output) / PER

    def since(self, start: Spent) -> dict[str, int | float | None]:
        """What was spent after ``start`` (an earlier ``as_dict()``): one step's usage, cost included."""
        now = self.as_dict()
        step: dict[str, int | float | None] = {k: int(now[k] or 0) - int(start.get(k) or 0) for k in COUNTS}
        before = start.get("cost") if start.get("requests") else 0.0  # nothing spent yet costs nothing
        after = now["cost"]
        step["cost"] = None if after is None or before is None else after - before
        return step

    def restore(self, spent: Spent) -> None:
        """Count again what the request spent before it paused (its ``as_dict()``), to go on from there."""
        self.requests += int(spent.get("requests") or 0)
        self.prompt_tokens += int(spent.get("prompt_tokens") or 0)
        self.completion_tokens += int(spent.get("completion_tokens") or 0)
        cost = spent.get("cost")
        if cost is None and spent.get("requests"):
            self.unpriced.add("calls before the pause")  # their cost was unknown: it stays unknown
        else:
            self.priced += float(cost or 0.0)

    def as_dict(self) -> dict[str, int | float | None]:
        """JSON-able counts, with the total and the cost (``None``: not known), as ``events.Usage`` has them."""
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost": self.cost,
        }


def plain(cost: float) -> str:
    """``cost`` to six significant digits, never in exponent notation (``0.000045``, not ``4.5e-05``)."""
    return format(Decimal(f"{cost:.6g}"), "f")


def _stopped(what: str, spent: str, setting: str, limit: object) -> str:
    return f"the request stopped at its {what} limit: {spent}, {setting} = {limit}; raise {setting} to go further"
