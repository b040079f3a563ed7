"""Starting each piece of the stack for ``up``: the database, the Prefect server, the Ray head. Each
is recorded in the state before it is waited for, so that the stop after a failed or interrupted
``up`` finds it; a configured piece (``database.url``, ``PREFECT_API_URL``, ``RAY_ADDRESS``) is used,
never started."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

from agentctl.config import Settings
from agentctl.errors import StackError, UsageError
from agentctl.stack import ray_auth
from agentctl.stack.prefect_server import LocalPrefectAPI, free_port
from agentctl.stack.state import StackState, write_state
from agentctl.stack.worker_env import without_secrets


def database(settings: Settings, state: StackState, postgres: bool) -> str | None:
    """The database URL for the Prefect server (None: its SQLite), starting PostgreSQL for ``--postgres``."""
    if postgres and settings.prefect.api_url:
        raise UsageError(
            "--postgres sets up the database of the Prefect server up starts, but PREFECT_API_URL "
            "names a server already: unset it, or drop --postgres"
        )
    if settings.database.url:
        state.database = without_password(settings.database.url)
        return settings.database.url
    return _postgres(settings, state) if postgres else None


def _postgres(settings: Settings, state: StackState) -> str:
    from agentctl.stack.postgres import LocalPostgres

    server = LocalPostgres(settings.data_dir, settings.database.postgres_bin, without_secrets(settings))
    url = server.start()
    state.database, state.postgres_pid, state.postgres_data = server.url(), server.pid, str(server.pgdata)
    return url


def without_password(url: str) -> str:
    """``url`` with its password, if any, shown as ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def prefect(settings: Settings, state: StackState, database: str | None) -> LocalPrefectAPI | None:
    """Launch the Prefect server with its UI on ``database``; ``prefect_ready`` waits for it.

    The wait is apart so that the server's start (~6 s) overlaps ``ray start`` (~4 s).
    """
    if settings.prefect.api_url:
        state.prefect_url = settings.prefect.api_url
        return None
    api = LocalPrefectAPI(
        settings.data_dir, settings.prefect.telemetry, settings.secret_names(), ui=True, database=database
    )
    api.start()
    state.prefect_pid, state.prefect_url = api.pid, api.url
    return api


def prefect_ready(settings: Settings, state: StackState, api: LocalPrefectAPI | None) -> None:
    """Wait until the server ``prefect`` launched answers (nothing to wait for on a configured API)."""
    if api is None:
        return
    api.wait_ready(settings.prefect.startup_timeout)
    state.ui_url = api.url.removesuffix("/api")


def ray(settings: Settings, state: StackState) -> None:
    """Start a Ray head by ``ray start``, on loopback, with token auth."""
    if settings.ray.address:
        state.ray_address = settings.ray.address
        return
    state.ray_temp_dir = temp_dir = _ray_temp_dir(settings)
    write_state(settings, state)  # ray start can stop half way: its daemons are found by this directory
    port = free_port()
    _run_ray_start(settings, _ray_start(settings, temp_dir, port))
    state.ray_address = f"127.0.0.1:{port}"


def _run_ray_start(settings: Settings, command: list[str]) -> None:
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
    from agentctl.stack.ray_cluster import private_ray_dir

    # Ray's socket paths must stay under 108 bytes, so a short directory named after the data dir.
    digest = hashlib.sha256(str(settings.data_dir.resolve()).encode()).hexdigest()[:10]
    return private_ray_dir(Path(tempfile.gettempdir()) / f"agentctl-ray-{digest}")
