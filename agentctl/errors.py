"""The one error hierarchy of agentctl.

Every error a user can see is an ``AgentctlError``: a one-line message that names the fix, and the
exit code the CLI returns. Foreign errors (openai, httpx, Ray, Prefect) are translated into these
once, at the boundary where they are caught. Each class says whose fault it is: the user's
(``UsageError``), the model's (``RoutingError``), or the machinery's (the rest).

    AgentctlError                 exit 1  something failed while doing what was asked
    ├── UsageError                exit 2  the user can fix it: a flag, the config, a parameter
    │   ├── ConfigError                   a config value or file is wrong
    │   └── MissingCredential             an API key or token is not set
    ├── RoutingError              exit 2  the model misbehaved: its answer stayed invalid after the
    │                                     repairs, or it refused; nothing ran
    ├── LLMError                  exit 1  the LLM endpoint is unreachable or failing
    ├── BudgetExceeded            exit 1  the request reached its own bound (router.max_tokens or
    │                                     router.max_cost) before an LLM call; what ran stays done
    ├── StackError                exit 1  Ray or the Prefect API could not be started or reached
    │   └── ActorDied                     a router actor died while it handled the request
    ├── NotFound                  exit 1  no such run in the Prefect API
    └── ProcessFailed             exit 1  a process ran and ended in a failed Prefect state

    Subclasses that belong to one module live there: ``routing.agent``'s ``StepLimit`` (exit 1: the
    model was still calling processes at ``router.max_steps``; processes ran, the request did not
    finish) and ``RepeatedFailure`` (exit 1: the same call failed twice); ``pool.Died`` (a
    StackError), the GitHub client's ``GitHubError`` tree (``processes.github``), ``calls.approval``'s
    ``ApprovalRequired`` (a UsageError: no one to ask, no ``--yes``) and ``NotApproved`` (exit 1: the
    person said no; in a request of several steps, once the model has been told).
    Ctrl-C is not an error class: the CLI turns KeyboardInterrupt into exit 130.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class AgentctlError(Exception):
    """Base of every error agentctl reports; ``str(err)`` is the one-line message."""

    exit_code = EXIT_FAILED


class UsageError(AgentctlError):
    """The user can fix it by changing a flag, the config or a parameter."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """A configuration value or file is invalid."""


class MissingCredential(UsageError):
    """A required API key or token is not set."""


class RoutingError(AgentctlError):
    """The model misbehaved: its answer could not be turned into a valid run, even after the repairs.

    Not the user's mistake (not a ``UsageError``), but it exits 2 as one: nothing ran, and a
    different request, ``--model`` or ``router.repair_attempts`` is what changes the outcome.
    """

    exit_code = EXIT_USAGE


class LLMError(AgentctlError):
    """The LLM endpoint could not be reached or answered with an error."""


class BudgetExceeded(AgentctlError):
    """The request spent its bound (``router.max_tokens``, ``router.max_cost``) and stopped before the next LLM call.

    Not a ``UsageError``: the settings were valid and the request did run (calls were made, processes may
    have run), so it failed as a run fails (exit 1); raising the bound is what lets the next one finish.
    """


class StackError(AgentctlError):
    """Ray or the Prefect API could not be started or reached."""


class ActorDied(StackError):
    """A router actor's process died while it handled the request."""


class NotFound(AgentctlError):
    """What was asked for (a run) does not exist where agentctl looked."""


class ProcessFailed(AgentctlError):
    """A process ran and its Prefect run ended in a failed state."""


def redact(text: str, secrets: list[str]) -> str:
    """Replace every secret value in ``text`` by ``***``; short values are left alone."""
    for secret in secrets:
        if len(secret) >= 6:
            text = text.replace(secret, "***")
    return text


def redact_all(value: Any, redact: Callable[[str], str]) -> Any:
    """``value`` (JSON-like) with every string in it passed through ``redact``, keys too (a tool's
    arguments and a result's fields are keyed by name)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): redact_all(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_all(item, redact) for item in value]
    return value


def first_line(text: str) -> str:
    """The first non-empty line of ``text`` (a Ray error or a traceback), at most 200 characters."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (lines[0] if lines else "no detail")[:200]
