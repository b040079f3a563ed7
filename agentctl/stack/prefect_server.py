"""A local Prefect API server for one session, with its database under agentctl's data directory."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from agentctl.errors import StackError
from agentctl.private import private_dir
from agentctl.stack import prefect_db


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPrefectAPI:
    """``uvicorn`` serving Prefect's API app on 127.0.0.1, started in its own process group."""

    def __init__(
        self,
        data_dir: Path,
        telemetry: bool,
        secret_names: frozenset[str] = frozenset(),
        ui: bool = False,
        database: str | None = None,
    ) -> None:
        self.data_dir, self.home = data_dir, data_dir / "prefect"
        self._own_database = None if database else self.home / "prefect.db"
        self.database = database or f"sqlite+aiosqlite:///{self._own_database}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.log_path = self.home / "server.log"
        self._telemetry = telemetry
        self._ui = ui
        self._secret_names = secret_names
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server; readiness is awaited by whoever first needs it."""
        private_dir(self.data_dir)
        private_dir(self.home)
        if self._own_database is not None:
            prefect_db.seed(self._own_database)
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                self._command(),
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def _command(self) -> list[str]:
        spec = importlib.util.find_spec("prefect")  # locating it is cheap; importing it costs ~1 s
        if spec is None or spec.origin is None:
            raise StackError("prefect is not installed: reinstall agentctl")
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(Path(spec.origin).parent.parent),
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ]

    def _env(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if k not in self._secret_names}
        env = {
            **inherited,
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_DATABASE_CONNECTION_URL": self.database,
            "PREFECT_UI_ENABLED": "true" if self._ui else "false",
        }
        if not self._ui:
            env["PREFECT__SERVER_EPHEMERAL"] = "1"  # one call's server: skip the long-running services
        if not self._telemetry:
            env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
        return env

    @property
    def pid(self) -> int | None:
        """The server's process id (also its process group's)."""
        return None if self._process is None else self._process.pid

    def wait_ready(self, timeout: float) -> None:
        """Block until the API answers, or raise StackError naming the log."""

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exit_code() is not None:
                raise self.failure()
            if healthy_api(self.url):
                return
            time.sleep(0.1)
        raise StackError(f"the Prefect server did not answer within {timeout:g} s: see {self.log_path}")

    def exit_code(self) -> int | None:
        """The server's exit code if it has exited, else None."""
        return None if self._process is None else self._process.poll()

    def failure(self) -> StackError:
        """An error that says the server exited and where its log is."""
        return StackError(f"the local Prefect server exited with code {self.exit_code()}: see {self.log_path}")

    def stop(self) -> None:
        """Stop the server and everything it started."""
        if self._process is None or self._process.poll() is not None:
            return
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()


def healthy_api(api_url: str) -> bool:
    """Whether the Prefect API at ``api_url`` answers its health check (within 2 s)."""
    import httpx

    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def mark_crashed(api_url: str, run_id: str, kind: str, message: str) -> bool:
    """Set a flow or task run Crashed (forced: it is Running), so it is not left Running for ever;
    whether the API took it."""
    import httpx

    state = {"type": "CRASHED", "name": "Crashed", "message": message}
    url = f"{api_url.rstrip('/')}/{kind}_runs/{run_id}/set_state"
    try:
        httpx.post(url, json={"state": state, "force": True}, timeout=10, trust_env=False).raise_for_status()
    except httpx.HTTPError:
        return False
    return True
