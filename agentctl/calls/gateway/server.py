"""The gateway process: connect to the stack's Ray once, hold the pool, serve the API until SIGTERM.

``up`` starts it with the settings it ran with on stdin and no secrets in its environment; it listens
on 127.0.0.1 only. On SIGTERM (``down``) it cancels the requests in flight in their actors, then exits.
"""

from __future__ import annotations

import argparse
import os
import sys
from types import FrameType

import uvicorn

from agentctl.calls.gateway.app import Gateway, make_app
from agentctl.calls.gateway.callers import Callers
from agentctl.config import Settings
from agentctl.errors import AgentctlError
from agentctl.execution.pool import CANCEL_WAIT
from agentctl.stack import gateway as record
from agentctl.stack.lifecycle import Stack


def main(argv: list[str]) -> int:
    """Read the settings, attach to the stack, serve; exit code 0, or 1 with one line on stderr."""
    parser = argparse.ArgumentParser(prog="python -m agentctl.calls.gateway")
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args(argv).port
    os.umask(0o077)  # what it writes (Ray's driver logs too) is its user's alone
    try:
        settings = Settings.model_validate_json(sys.stdin.read())
        serve(settings, port)
    except AgentctlError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    return 0


def serve(settings: Settings, port: int) -> None:
    """Attach to the stack ``settings.data_dir`` records and serve it on 127.0.0.1:``port``."""
    from agentctl.stack import ray_cluster

    stack = Stack.load(settings)
    if stack is None:
        raise AgentctlError("no stack is recorded in the data dir: agentctl up starts the gateway")
    pool = stack.attach(settings, {})
    gateway = Gateway()
    app = make_app(Callers(stack, pool), record.token(settings), gateway)
    config = uvicorn.Config(
        app, host=record.HOST, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=5
    )
    try:
        _Server(config, gateway).serve_until_stopped()
    finally:
        _drain(gateway)
        ray_cluster.shutdown()


class _Server(uvicorn.Server):
    """uvicorn's server, which cancels the requests in flight as soon as it is told to stop."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        super().__init__(config)
        self._gateway = gateway

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._gateway.stop()  # their streams end with one line, so the connections close in time
        super().handle_exit(sig, frame)

    def serve_until_stopped(self) -> None:
        """Serve; an error when the port could not be bound."""
        self.run()
        if not self.started:
            raise AgentctlError(f"cannot listen on {record.HOST}:{self.config.port}: set gateway.port to a free one")


def _drain(gateway: Gateway) -> None:
    """Give each cancelled request the pool's time for its cancel to reach its actor."""
    gateway.stop()
    for job in list(gateway.jobs):
        job.join(CANCEL_WAIT)
