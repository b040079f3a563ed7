"""The stack's record and its lock: ``<data_dir>/stack.json`` (what ``up`` started or reused, and
where it listens) and ``<data_dir>/stack.lock`` (one ``up`` or ``down`` at a time)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel

from agentctl.config import Settings
from agentctl.errors import StackError
from agentctl.private import private_dir


class StackState(BaseModel):
    """What ``up`` started or reused, and where it listens."""

    ray_address: str
    ray_temp_dir: str | None = None  # set when up started the Ray head
    prefect_url: str
    prefect_pid: int | None = None  # set when up started the Prefect server
    ui_url: str | None = None
    database: str = "sqlite"  # shown to users: never holds a password
    postgres_pid: int | None = None  # set when up started PostgreSQL
    postgres_data: str | None = None  # its data directory, which its command line names
    actors: list[str] = []
    gateway_url: str | None = None  # the gateway's HTTP API, set when up started it
    gateway_pid: int | None = None
    processes: dict[str, Any] = {}  # the process sources the actors were started with
    started_at: float
    ready: bool = True  # False while up starts it (and left so if that up died); older files lack it


def state_path(settings: Settings) -> Path:
    """Where the stack's state lives."""
    return settings.data_dir / "stack.json"


def read_state(settings: Settings) -> StackState | None:
    """The recorded stack, if there is one (it may have died since, or still be starting)."""
    path = state_path(settings)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StackError(f"cannot read {path} ({exc.strerror}): fix its permissions") from None
    try:
        return StackState.model_validate_json(text)
    except ValueError:
        raise StackError(
            f"{path} is not a stack state this agentctl can read: stop that stack with the "
            "agentctl that started it, or remove the file"
        ) from None


def write_state(settings: Settings, state: StackState) -> None:
    """Record ``state``, readable by its user alone."""
    # Written aside and renamed: a reader sees the old state or the new one, never half of one.
    path = state_path(settings)
    temp = path.with_suffix(".tmp")
    with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(state.model_dump_json(indent=2))
    os.replace(temp, path)


def forget_state(settings: Settings) -> None:
    """Remove the record of a stack that was stopped."""
    state_path(settings).unlink(missing_ok=True)


@contextlib.contextmanager
def locked(settings: Settings, waiting: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Hold the stack's lock: one ``up`` or ``down`` at a time; a second one calls ``waiting``, then
    waits for the first."""
    with _lock_file(settings) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting()
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _lock_file(settings: Settings) -> IO[str]:
    path = settings.data_dir / "stack.lock"
    try:
        private_dir(settings.data_dir)
        return path.open("a")
    except OSError as exc:
        raise StackError(f"cannot open {path} ({exc.strerror}): run as the user who ran agentctl up") from None


def busy(settings: Settings) -> bool:
    """Whether an ``up`` or ``down`` holds the stack's lock right now."""
    try:
        with open(settings.data_dir / "stack.lock") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no lock file: no up ever ran here
        return False
    return False
