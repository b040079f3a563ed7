"""The persistent local stack of ``agentctl up``: a Ray head, a Prefect server with its UI (on
SQLite, or PostgreSQL with ``--postgres``), and a pool of named, detached router actors, recorded in
``<data_dir>/stack.json`` so later calls find them. ``down`` stops what ``up`` started and nothing
else; a configured ``RAY_ADDRESS`` or ``PREFECT_API_URL`` is used, never started or stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel

from agentctl import interrupts, proctree, ray_auth
from agentctl.config import Settings
from agentctl.discovery import anchored, import_path
from agentctl.errors import StackError, UsageError
from agentctl.prefect_api import LocalPrefectAPI, free_port
from agentctl.private import private_dir
from agentctl.worker_env import without_secrets

ACTOR_PREFIX = "agentctl-router-"


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


def dead_pieces(state: StackState) -> list[str]:
    """The pieces ``up`` started that no longer run (a cheap check: no network, no Ray import)."""
    dead = []
    if state.ray_temp_dir is not None and not proctree.ray_head_runs(state.ray_temp_dir):
        dead.append("Ray head")
    if state.prefect_pid is not None and not _ours(state.prefect_pid, state.prefect_url):
        dead.append("Prefect server")
    if state.postgres_pid is not None and not _postgres_runs(state.postgres_pid, state.postgres_data):
        dead.append("PostgreSQL")
    return dead


def _postgres_runs(pid: int, data: str | None) -> bool:
    # The server names its data directory on its command line; state files of older versions lack it.
    return (data or "postgres") in proctree.cmdline(pid)


def unusable(settings: Settings, state: StackState) -> str | None:
    """Why the recorded stack cannot serve calls (starting, half started, a piece dead), or None."""
    if not state.ready:
        return "agentctl up is still starting it" if busy(settings) else "its agentctl up did not finish"
    dead = dead_pieces(state)
    return f"its {', '.join(dead)} died" if dead else None


def prefect_of(settings: Settings) -> StackState | None:
    """The recorded stack if its Prefect API is alive and is the one ``settings`` use (for history)."""
    state = read_state(settings)
    if state is None or not state.prefect_url:
        return None
    if state.prefect_pid is not None and not _ours(state.prefect_pid, state.prefect_url):
        return None
    configured = settings.prefect.api_url
    return state if not configured or configured.rstrip("/") == state.prefect_url.rstrip("/") else None


def processes_key(settings: Settings) -> dict[str, Any]:
    """What decides which processes the actors load: the processes settings, and where modules come from."""
    key: dict[str, Any] = anchored(settings).processes.model_dump()
    if settings.processes.modules:
        key["import_path"] = import_path(settings)
    return key


def mismatch(state: StackState, settings: Settings) -> str | None:
    """Why the running stack cannot serve a call with ``settings``, or None when it can."""
    if settings.ray.address and settings.ray.address != state.ray_address:
        return f"ray.address is {settings.ray.address} but the stack's Ray is at {state.ray_address}"
    if settings.prefect.api_url and settings.prefect.api_url.rstrip("/") != state.prefect_url.rstrip("/"):
        return f"prefect.api_url is {settings.prefect.api_url} but the stack's is {state.prefect_url}"
    if processes_key(settings) != state.processes:
        return "its actors load other processes (processes.* or the directory they are imported from differ)"
    return None


def up(
    settings: Settings, secrets: dict[str, str], postgres: bool = False, waiting: Callable[[], None] = lambda: None
) -> tuple[StackState, bool]:
    """Start what is missing; return the state and whether it was already up."""
    with locked(settings, waiting):
        state = read_state(settings)
        if state is not None and unusable(settings, state) is None:
            _complete(settings, state, secrets, postgres)
            return state, True
        if state is not None:
            _stop(settings, state)  # a stack that crashed or whose up failed: clean up what is left
        return _start(settings, secrets, postgres), False


def _complete(settings: Settings, state: StackState, secrets: dict[str, str], postgres: bool) -> None:
    """A running stack: check it suits ``settings``, restart dead actors."""
    if (reason := mismatch(state, settings)) is not None:
        raise UsageError(f"a stack is up for other settings: {reason}; agentctl down, then up")
    _check_database(state, settings, postgres)
    ensure_actors(settings, state, secrets)


def _start(settings: Settings, secrets: dict[str, str], postgres: bool) -> StackState:
    state = StackState(
        ray_address="", prefect_url="", processes=processes_key(settings), started_at=time.time(), ready=False
    )
    try:
        _start_pieces(settings, state, postgres)
        ensure_actors(settings, state, secrets)
        interrupts.check()
    except BaseException:  # Ctrl-C too: stop what this up started so far, from what it knows
        _stop(settings, state)
        raise
    state.ready = True
    _write(settings, state)
    return state


def _check_database(state: StackState, settings: Settings, postgres: bool) -> None:
    if postgres and state.database == "sqlite":
        raise UsageError("the running stack uses SQLite: run agentctl down, then agentctl up --postgres")


def _start_pieces(settings: Settings, state: StackState, postgres: bool) -> None:
    """Start PostgreSQL, Prefect and Ray as needed; each is recorded before it is waited for, so that
    the stop after a failed or interrupted up finds it."""
    database = _database(settings, state, postgres)
    _recorded(settings, state)
    _prefect(settings, state, database)
    _recorded(settings, state)
    _ray(settings, state)
    _recorded(settings, state)


def _recorded(settings: Settings, state: StackState) -> None:
    """Write the state after a step; a Ctrl-C swallowed during it stops up here (``_start`` cleans up)."""
    _write(settings, state)
    interrupts.check()


def _write(settings: Settings, state: StackState) -> None:
    # Written aside and renamed: a reader sees the old state or the new one, never half of one.
    path = state_path(settings)
    temp = path.with_suffix(".tmp")
    with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(state.model_dump_json(indent=2))
    os.replace(temp, path)


def _database(settings: Settings, state: StackState, postgres: bool) -> str | None:
    if postgres and settings.prefect.api_url:
        raise UsageError(
            "--postgres sets up the database of the Prefect server up starts, but PREFECT_API_URL "
            "names a server already: unset it, or drop --postgres"
        )
    if settings.database.url:
        state.database = _without_password(settings.database.url)
        return settings.database.url
    if not postgres:
        return None
    from agentctl.postgres import LocalPostgres

    server = LocalPostgres(settings.data_dir, settings.database.postgres_bin, without_secrets(settings))
    url = server.start()
    state.database, state.postgres_pid, state.postgres_data = server.url(), server.pid, str(server.pgdata)
    return url


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def _prefect(settings: Settings, state: StackState, database: str | None) -> None:
    if settings.prefect.api_url:
        state.prefect_url = settings.prefect.api_url
        return
    api = LocalPrefectAPI(
        settings.data_dir, settings.prefect.telemetry, settings.secret_names(), ui=True, database=database
    )
    api.start()
    state.prefect_pid, state.prefect_url = api.pid, api.url
    _write(settings, state)  # before the wait: a failed or interrupted up must find it to stop it
    api.wait_ready(settings.prefect.startup_timeout)
    state.ui_url = api.url.removesuffix("/api")


def _ray(settings: Settings, state: StackState) -> None:
    if settings.ray.address:
        state.ray_address = settings.ray.address
        return
    state.ray_temp_dir = temp_dir = _ray_temp_dir(settings)
    _write(settings, state)  # ray start can stop half way: its daemons are found by this directory
    port = free_port()
    command = _ray_start(settings, temp_dir, port)
    # Cluster mode off: the head binds to loopback only, as the one-call cluster does.
    # Ray's workers inherit the head's environment: no secrets there, requests bring their own.
    # Token auth on, its token made first: `ray start` alone would start the head without auth.
    env = {**without_secrets(settings), **ray_auth.prepare(starting=True), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise StackError(f"cannot run {command[0]} ({exc.strerror}): reinstall agentctl's environment") from None
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise StackError(f"ray start failed: {last[0]}")
    state.ray_address = f"127.0.0.1:{port}"


def _ray_start(settings: Settings, temp_dir: str, port: int) -> list[str]:
    command = [
        str(Path(sys.executable).with_name("ray")),
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        f"--include-dashboard={str(settings.ray.dashboard).lower()}",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]
    return command + ([f"--num-cpus={settings.ray.num_cpus}"] if settings.ray.num_cpus else [])


def _ray_temp_dir(settings: Settings) -> str:
    from agentctl.cluster import private_ray_dir

    # Ray's socket paths must stay under 108 bytes, so a short directory named after the data dir.
    digest = hashlib.sha256(str(settings.data_dir.resolve()).encode()).hexdigest()[:10]
    return private_ray_dir(Path(tempfile.gettempdir()) / f"agentctl-ray-{digest}")


def connected(settings: Settings, state: StackState) -> Settings:
    """``settings`` pointed at the stack's Ray."""
    return settings.model_copy(update={"ray": settings.ray.model_copy(update={"address": state.ray_address})})


def ensure_actors(settings: Settings, state: StackState, secrets: dict[str, str]) -> None:
    """Start the named router actors that are not alive (all of them, the first time) and warm them."""
    from agentctl import cluster
    from agentctl.pool import Pool
    from agentctl.worker_env import actor_env

    state.actors = state.actors or [f"{ACTOR_PREFIX}{i}" for i in range(settings.pool.size)]
    _write(settings, state)  # before they start: a failed up stops them on a Ray it did not start too
    cluster.connect(connected(settings, state), actor_env(settings, state.prefect_url, state.ui_url))
    try:
        Pool.create(settings, secrets, time.time() + settings.prefect.startup_timeout, names=state.actors).warm()
    finally:
        cluster.shutdown()


def down(settings: Settings, waiting: Callable[[], None] = lambda: None) -> list[str]:
    """Stop what ``up`` started (named actors, the Ray head, Prefect, PostgreSQL); say what stopped."""
    with locked(settings, waiting):
        state = read_state(settings)
        return [] if state is None else _stop(settings, state)


def _stop(settings: Settings, state: StackState) -> list[str]:
    """Stop what ``state`` records as started by up, then forget it."""
    stopped = _stop_ray(state.ray_temp_dir) if state.ray_temp_dir else _kill_actors(settings, state)
    if state.prefect_pid is not None and _ours(state.prefect_pid, state.prefect_url):
        proctree.stop_group(state.prefect_pid)
        stopped.append(f"Prefect server (pid {state.prefect_pid})")
    if state.postgres_pid is not None and _stop_postgres(settings):
        stopped.append(f"PostgreSQL (pid {state.postgres_pid})")
    state_path(settings).unlink(missing_ok=True)
    return stopped


def _ours(pid: int, url: str) -> bool:
    """Whether ``pid`` is still the Prefect server up started (a pid can be reused after a crash)."""
    port = url.rsplit(":", 1)[-1].split("/")[0]
    command = proctree.cmdline(pid)
    return "uvicorn" in command and f"--port {port}" in command


def _stop_postgres(settings: Settings) -> bool:
    from agentctl.postgres import stop

    return stop(settings.data_dir, settings.database.postgres_bin, without_secrets(settings))


def _stop_ray(temp_dir: str) -> list[str]:
    pids = proctree.ray_pids(temp_dir)
    # `ray stop`'s order: the raylet first, the GCS last. Terminated all at once, the GCS and the
    # autoscaler's monitor hang in their shutdown until killed; in this order all exit within ~1 s.
    for bucket in proctree.ray_stop_order(pids):
        for pid in bucket:
            proctree.send(pid, signal.SIGTERM)
        proctree.wait_gone(bucket, timeout=5)
    for pid in proctree.ray_pids(temp_dir):  # what is left after the grace periods
        proctree.send(pid, signal.SIGKILL)
    return [f"Ray head and its {len(pids)} processes ({temp_dir})"] if pids else []


def _kill_actors(settings: Settings, state: StackState) -> list[str]:
    from agentctl.cluster import NAMESPACE

    if not state.actors:
        return []
    with on_ray(settings, state) as ray:
        if ray is None:
            return []
        for name in state.actors:
            with contextlib.suppress(ValueError):  # already gone
                ray.kill(ray.get_actor(name, namespace=NAMESPACE))
        return [f"router actors {', '.join(state.actors)}"]


@contextlib.contextmanager
def on_ray(settings: Settings, state: StackState) -> Iterator[Any]:
    """The ``ray`` module connected to the stack's Ray for the block, or None when it cannot be reached."""
    from agentctl import cluster

    try:
        cluster.connect(connected(settings, state), {})  # before importing ray: it sets what ray reads at import
    except StackError:
        yield None
        return
    import ray

    try:
        yield ray
    finally:
        cluster.shutdown()


def describe(state: StackState) -> str:
    """One line per piece, for ``up``."""
    lines = [f"Ray: {state.ray_address}", f"Prefect API: {state.prefect_url}", f"database: {state.database}"]
    if state.ui_url:
        lines.append(f"Prefect UI: {state.ui_url}")
    lines.append(f"router actors: {', '.join(state.actors)}")
    return "\n".join(lines)


def dumps(value: Any) -> str:
    """JSON for ``--json``."""
    return json.dumps(value, indent=2)
