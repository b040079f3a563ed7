"""The stack's gateway process: started by ``up`` once the actors are warm, recorded with its address
and pid, judged by its pid and command line (no network), stopped by ``down``.

It is ``python -m agentctl.calls.gateway``: one long-lived Ray driver serving the stack's HTTP API on
127.0.0.1. It gets the settings ``up`` ran with on its stdin (never in a file or its command line)
and no secrets: each request brings its caller's. Its bearer token is kept in
``<data_dir>/gateway_token`` (0600), made by the first ``up`` and never printed; its output goes to
``<data_dir>/gateway.log``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from agentctl.config import Settings
from agentctl.errors import StackError
from agentctl.private import kept_token, private_dir
from agentctl.stack import proctree
from agentctl.stack.prefect_server import free_port
from agentctl.stack.state import StackState
from agentctl.stack.worker_env import without_secrets

MODULE = "agentctl.calls.gateway"
TOKEN_FILE = "gateway_token"
LOG_FILE = "gateway.log"
HOST = "127.0.0.1"
MCP_PATH = "/mcp"  # where it serves MCP (streamable HTTP), beside its /v1 API


def mcp_url(state: StackState) -> str | None:
    """The URL of the gateway's MCP endpoint, once it has an address."""
    return f"{state.gateway_url}{MCP_PATH}" if state.gateway_url else None


def token_path(settings: Settings) -> Path:
    """Where the gateway's bearer token is kept."""
    return settings.data_dir / TOKEN_FILE


def token(settings: Settings) -> str:
    """The gateway's bearer token, made now if there is none yet."""
    return kept_token(token_path(settings))[0]


def launch(settings: Settings, state: StackState) -> subprocess.Popen[bytes]:
    """Start the gateway process and record it; ``wait_ready`` waits for it to answer."""
    token(settings)  # made before the process starts: it reads it at once
    port = settings.gateway.port or free_port()
    command = [sys.executable, "-m", MODULE, "--port", str(port)]
    with _log(settings) as log:
        process = _popen(command, log, settings)
    assert process.stdin is not None
    with process.stdin:  # the settings travel on stdin: no file, no command line shows them
        process.stdin.write(settings.model_dump_json(exclude={"database"}).encode())
    state.gateway_pid, state.gateway_url = process.pid, f"http://{HOST}:{port}"
    return process


def _popen(command: list[str], log: int, settings: Settings) -> subprocess.Popen[bytes]:
    # Its own session: a Ctrl-C of the terminal that ran up does not reach it.
    try:
        return subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=without_secrets(settings),
            start_new_session=True,
        )
    except OSError as exc:
        raise StackError(f"cannot start the gateway ({exc.strerror}): reinstall agentctl's environment") from None


class _log:
    """``<data_dir>/gateway.log`` opened to append (0600), as a descriptor for the child."""

    def __init__(self, settings: Settings) -> None:
        self.path = private_dir(settings.data_dir) / LOG_FILE

    def __enter__(self) -> int:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return self._fd

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)


def wait_ready(settings: Settings, state: StackState, process: subprocess.Popen[bytes]) -> None:
    """Wait until the gateway answers its health check (polled with a deadline: it starts in ~2 s)."""
    import httpx

    assert state.gateway_url is not None and state.gateway_pid is not None
    headers = {"Authorization": f"Bearer {token(settings)}"}
    deadline = time.monotonic() + settings.gateway.startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:  # not its command line: until it has exec'd, that is up's
            raise StackError(f"the gateway exited at start: {_last_line(settings)}; see {settings.data_dir / LOG_FILE}")
        try:
            if httpx.get(f"{state.gateway_url}/v1/health", headers=headers, timeout=2, trust_env=False).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise StackError(f"the gateway did not answer within {settings.gateway.startup_timeout:g} s: see {LOG_FILE}")


def _last_line(settings: Settings) -> str:
    try:
        lines = (settings.data_dir / LOG_FILE).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no output"
    return lines[-1] if lines else "no output"


def runs(state: StackState) -> bool:
    """Whether the gateway up recorded still runs (a pid can be reused: its command line must match)."""
    if state.gateway_pid is None or state.gateway_url is None:
        return False
    port = state.gateway_url.rsplit(":", 1)[-1]
    command = proctree.cmdline(state.gateway_pid)
    return MODULE in command and f"--port {port}" in command


def answers(settings: Settings, state: StackState) -> bool:
    """Whether the gateway runs and answers its health check now."""
    import httpx

    if not runs(state):
        return False
    headers = {"Authorization": f"Bearer {token(settings)}"}
    try:
        return httpx.get(f"{state.gateway_url}/v1/health", headers=headers, timeout=5, trust_env=False).is_success
    except httpx.HTTPError:
        return False


def stop(state: StackState) -> list[str]:
    """Stop the gateway up started, if it still runs; its requests in flight are cancelled first."""
    if not runs(state):
        return []
    assert state.gateway_pid is not None
    proctree.stop_group(state.gateway_pid)
    return [f"gateway (pid {state.gateway_pid})"]
