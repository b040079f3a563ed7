"""Secret values never leave the process that holds them: redacted where text is made, not shown.

Two channels carry text out of a router actor into Prefect (its API, the UI) and Ray (worker log
files), and each is redacted once, at its source, with the request's secrets
(``runtime.secret_values()``):

- log records: ``install()`` wraps the process's log record factory, so every record, whoever logs
  it and whichever handler ships it (Prefect's API handler, the console that Ray writes to a file,
  python_run's capture), has its message and traceback redacted as it is created;
- exceptions: ``masked(fn)`` re-raises what escapes a process (or a task inside a built-in flow)
  with its message redacted, before Prefect turns it into the run's state message.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from agentctl import runtime
from agentctl.errors import redact

F = TypeVar("F", bound=Callable[..., Any])
_MARK = "_agentctl_redacting"


def install() -> None:
    """Redact every log record this process creates from now on (idempotent)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, _MARK, False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redact_record(record, runtime.secret_values())
        return record

    setattr(factory, _MARK, True)
    logging.setLogRecordFactory(factory)


def redact_record(record: logging.LogRecord, secrets: list[str]) -> None:
    """Replace ``record``'s message, traceback and stack by their redacted text."""
    if not secrets:
        return
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: logging reports it when the record is emitted
        return
    record.msg, record.args = redact(message, secrets), None
    if record.exc_info and record.exc_info[1] is not None:
        # Formatters use a traceback text already present instead of formatting exc_info again.
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info), secrets)
    if record.stack_info:
        record.stack_info = redact(record.stack_info, secrets)


def masked(fn: F) -> F:
    """``fn``, whose exceptions carry no secret value of the request (generators are left as they are)."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:
                raise scrubbed(exc, runtime.secret_values())  # noqa: B904 - the same exception, or its stand-in

        return _resolved(run_async, fn)
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        return fn

    @functools.wraps(fn)
    def run_sync(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise scrubbed(exc, runtime.secret_values())  # noqa: B904 - the same exception, or its stand-in

    return _resolved(run_sync, fn)


def _resolved(wrapper: Callable[..., Any], fn: F) -> F:
    # Prefect resolves string annotations (``from __future__ import annotations``) in the globals of
    # the function it is given, which are this module's for a wrapper: give it them resolved.
    # An annotation that cannot be evaluated now is left as it is, and Prefect reports it at the call.
    with contextlib.suppress(Exception):
        wrapper.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def scrubbed(exc: BaseException, secrets: list[str]) -> BaseException:
    """``exc`` with its arguments (and those of the exceptions it chains) redacted, its type kept.

    An exception whose text comes from elsewhere than its arguments, and still shows a secret, is
    replaced by a RuntimeError naming its type.
    """
    seen: set[int] = set()
    _scrub_chain(exc, secrets, seen)
    text = str(exc)
    if redact(text, secrets) == text:
        return exc
    stand_in = RuntimeError(f"{type(exc).__name__}: {redact(text, secrets)}")
    stand_in.__suppress_context__ = True
    return stand_in


def _scrub_chain(exc: BaseException | None, secrets: list[str], seen: set[int]) -> None:
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in exc.args)
        if exc.__cause__ is not None:
            _scrub_chain(exc.__cause__, secrets, seen)
        exc = exc.__context__
