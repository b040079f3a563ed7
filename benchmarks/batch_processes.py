"""The batch benchmark's own processes, loaded through ``processes.paths``: trivial, so what is
measured is routing, Prefect and agentctl, not the work."""

from __future__ import annotations

from agentctl import process


@process
async def bench_echo(n: int) -> int:
    """Return the number it is given (an async flow, as a batch runs them)."""
    return n


@process
def bench_echo_sync(n: int) -> int:
    """Return the number it is given (a sync flow, as the seed ran them)."""
    return n
