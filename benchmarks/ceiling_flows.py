"""The ceiling of ``bench_batch.py``: trivial async Prefect flows against a Prefect server, no LLM and
no agentctl, ``--items`` of them at each concurrency, bounded by a semaphore.

Run by ``bench_batch.py`` in a process of its own with ``PREFECT_API_URL`` set; prints one JSON
object: ``{"<concurrency>": [seconds of each run, ...], ...}``.

    PREFECT_API_URL=http://127.0.0.1:4200/api .venv/bin/python benchmarks/ceiling_flows.py --items 40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from prefect import flow


@flow
async def ceiling_noop(n: int) -> int:
    """A flow that does nothing: each run costs only what Prefect's client and server cost."""
    return n


async def timed(items: int, concurrency: int) -> float:
    """Seconds for ``items`` flow runs, at most ``concurrency`` in flight."""
    slots = asyncio.Semaphore(concurrency)

    async def one(n: int) -> int:
        async with slots:
            return await ceiling_noop(n)

    start = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(items)))
    return time.perf_counter() - start


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 8, 16])
    args = parser.parse_args()
    await timed(2, 2)  # the first flow run of a process pays Prefect's set-up: not the steady rate
    seconds = {c: [await timed(args.items, c) for _ in range(args.runs)] for c in args.concurrency}
    print(json.dumps(seconds))


if __name__ == "__main__":
    asyncio.run(main())
