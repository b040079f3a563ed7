"""A session: the Prefect API and Ray cluster a request needs, the actor pool, and ``ask()``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from agentctl import cluster
from agentctl.config import Settings
from agentctl.discovery import anchored, pythonpath
from agentctl.events import Event
from agentctl.pool import Pool
from agentctl.prefect_api import LocalPrefectAPI


class Session:
    """Starts what is missing (a local Prefect API, a local Ray cluster) and stops what it started."""

    def __init__(self, settings: Settings, prefect: bool = True) -> None:
        self.settings = anchored(settings)
        self._needs_prefect = prefect
        self._api: LocalPrefectAPI | None = None
        self._ray_started = False
        self._pool: Pool | None = None

    def __enter__(self) -> Session:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def open(self) -> None:
        """Start the Prefect API (unless one is configured), Ray and the router pool."""
        api_url = self.settings.prefect.api_url or ""
        if not api_url and self._needs_prefect:
            settings = self.settings
            self._api = LocalPrefectAPI(settings.data_dir, settings.prefect.telemetry, settings.secret_names())
            self._api.start()
            api_url = self._api.url
        self._ray_started = cluster.connect(self.settings, self._actor_env(api_url))
        deadline = time.time() + self.settings.prefect.startup_timeout
        self._pool = Pool.create(self.settings, self._secrets(), deadline)

    @property
    def prefect_url(self) -> str:
        """The Prefect API every run of this session reports to."""
        return self._api.url if self._api is not None else (self.settings.prefect.api_url or "")

    def ask(self, request: str, model: str | None = None) -> Iterator[Event]:
        """Route (with ``model``, if given) and run ``request``; yield its events as they happen."""
        assert self._pool is not None, "open() the session first"
        return self._pool.ask(request, model, check=self._check_api)

    def run(self, name: str, arguments: dict[str, Any]) -> Iterator[Event]:
        """Run process ``name`` with ``arguments``, without the LLM; yield its events."""
        assert self._pool is not None, "open() the session first"
        return self._pool.run(name, arguments, check=self._check_api)

    def warm(self) -> None:
        """Wait until every router actor is ready to run a process at once (for long sessions)."""
        assert self._pool is not None, "open() the session first"
        self._pool.warm()

    def route_many(self, requests: list[tuple[str, str | None]], concurrency: int) -> list[dict[str, Any]]:
        """Route each (request, model) on the pool, at most ``concurrency`` at a time; results in order."""
        assert self._pool is not None, "open() the session first"
        return self._pool.route_many(requests, concurrency)

    def close(self) -> None:
        """Stop what this session started, and nothing else."""
        if self._ray_started:
            cluster.shutdown()
            self._ray_started = False
        if self._api is not None:
            self._api.stop()
            self._api = None

    def _check_api(self) -> None:
        if self._api is not None and self._api.exit_code() is not None:
            raise self._api.failure()

    def _actor_env(self, api_url: str) -> dict[str, str]:
        env = {
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(self.settings.data_dir / "prefect"),
            "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
            "PYTHONPATH": pythonpath(self.settings),
        }
        if not self.settings.prefect.telemetry:
            env["DO_NOT_TRACK"] = "1"
        if self._api is not None:
            # The session's own server serves no UI and stops with the session: no "View at" links.
            env["PREFECT_UI_URL"] = ""
        return env

    def _secrets(self) -> dict[str, str]:
        names = {self.settings.llm.key_env(), self.settings.github.token_env}
        return {n: os.environ[n] for n in names if os.environ.get(n)}


def ask_once(settings: Settings, request: str) -> Iterator[Event]:
    """Check credentials, open a session, yield the events of one request, close the session."""
    settings.api_key()
    with Session(settings) as session:
        yield from session.ask(request)


def run_once(settings: Settings, name: str, arguments: dict[str, Any]) -> Iterator[Event]:
    """Open a session, yield the events of one run of process ``name``, close the session."""
    with Session(settings) as session:
        yield from session.run(name, arguments)
