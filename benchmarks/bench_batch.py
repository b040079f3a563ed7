"""Throughput of ``agentctl batch`` against the most flow runs per second the same Prefect server takes.

One run on this machine, everything local: ``agentctl up`` (``--postgres`` when PostgreSQL is
installed), the test suite's local OpenAI-compatible server, and this benchmark's own trivial
processes (``batch_processes.py``, through ``processes.paths``). Rows, medians over ``--runs``:

- ceiling: trivial async Prefect flows, no LLM, no agentctl (``ceiling_flows.py``, its own process),
  at a few concurrencies; the best is the ceiling;
- agentctl batch: the real CLI, one process, ``--out`` a temporary file, routing every item to an
  async process, with the LLM answering at once and after ``--latency`` seconds, one-shot
  (``router.max_steps = 1``: route, run); then the same with the answer step of a request of
  several steps (route, run, the result back to the model, its answer: one more LLM call);
- the seed's design, approximated: the same CLI, one-shot, with ``--concurrency 1`` (one item at a
  time, so one actor busy) routing to a sync process. The seed also paid ~1 s of Prefect heartbeat per sync run,
  which agentctl switches off: this row is faster than the seed was, so the ratio to it is a floor.

"seconds" is the batch's own time from its summary line (session attach to last record, 0.1 s
resolution); "CLI" the whole process's wall time (interpreter, imports, exit included).

With the stack's gateway up, ``agentctl batch`` goes through it. ``--gateway`` measures only the two
paths side by side instead: the same one-shot batch through the gateway and through Ray
(``AGENTCTL_GATEWAY__ENABLED=false``: the CLI becomes a Ray driver on the stack), with the instant
and the slow LLM.

    .venv/bin/python benchmarks/bench_batch.py --runs 3 --items 40
    .venv/bin/python benchmarks/bench_batch.py --runs 5 --items 40 --gateway
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from local import local_servers

from tests.servers import Reply, say, tool_call

HERE = Path(__file__).resolve().parent
AGENTCTL = str(Path(sys.executable).with_name("agentctl"))
SUMMARY = re.compile(r"^batch: (\d+) records \((\d+) succeeded.*, ([\d.]+) s, [\d.]+/s$", re.MULTILINE)


@dataclasses.dataclass
class Route:
    """What the local LLM answers, after this delay: a call of this process, then, once its result
    came back, a short answer (a request of two steps, as ``router.max_steps`` > 1 runs it)."""

    process: str = "bench_echo"
    latency: float = 0.0

    def __call__(self, body: dict[str, Any]) -> Reply:
        if any(message["role"] == "tool" for message in body.get("messages", [])):
            return dataclasses.replace(say("done"), delay=self.latency)  # the result came back: the answer
        return dataclasses.replace(tool_call(self.process, {"n": 1}), delay=self.latency)


@dataclasses.dataclass
class Row:
    """One line of the table: seconds per run (and the CLI's wall time, for agentctl rows)."""

    name: str
    items: int
    seconds: list[float]
    wall: list[float] = dataclasses.field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.items / statistics.median(self.seconds)


def main() -> None:
    args = arguments()
    llm, _, data, env = local_servers()
    route = Route()
    llm.responder = route
    env = {**env, "HOME": tempfile.mkdtemp(prefix="agentctl-bench-home-"), "DO_NOT_TRACK": "1"}
    env["AGENTCTL_PROCESSES__PATHS"] = str(HERE / "batch_processes.py")
    postgres = bool(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    cli(env, "up", *(["--postgres"] if postgres else []))
    try:
        state = json.loads((data / "stack.json").read_text())
        print(f"Prefect on {state['database']} ({'up --postgres' if postgres else 'up, no PostgreSQL here'})")
        if args.gateway:
            paths_table(both_paths(args, env, route, data))
        else:
            table(measure(args, env, route, state["prefect_url"], data), args.latency)
    finally:
        cli(env, "down")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--items", type=int, default=40, help="items of each batch and of the ceiling")
    parser.add_argument("--seed-items", type=int, default=12, help="items of each seed-design batch")
    parser.add_argument("--latency", type=float, default=0.5, help="seconds the slow LLM takes to answer")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 8, 16], help="tried for the ceiling")
    parser.add_argument("--batch-concurrency", type=int, help="agentctl batch --concurrency (default: the CLI's)")
    parser.add_argument("--gateway", action="store_true", help="compare the gateway's path with Ray's, only")
    return parser.parse_args()


def measure(args: argparse.Namespace, env: dict[str, str], route: Route, prefect_url: str, data: Path) -> list[Row]:
    """Every row of the table, the ceiling first."""
    rows = ceiling(args, env, prefect_url)
    one_shot = {**env, "AGENTCTL_ROUTER__MAX_STEPS": "1"}  # route, run: no answer call (the seed's shape)
    for process, concurrency, items, label, own in (
        ("bench_echo", concurrency_option(args.batch_concurrency), args.items, "agentctl batch", one_shot),
        ("bench_echo", concurrency_option(args.batch_concurrency), args.items, "batch + answer step", env),
        ("bench_echo_sync", ["--concurrency", "1"], args.seed_items, "seed design", one_shot),
    ):
        route.process, route.latency = process, 0.0
        batch(own, data, route, 8, [])  # a process's first run in each actor pays set-up: not counted
        for latency in (0.0, args.latency):
            route.latency = latency
            runs = [batch(own, data, route, items, concurrency) for _ in range(args.runs)]
            rows.append(Row(f"{label}, LLM {latency:.1f} s", items, [s for s, _ in runs], [w for _, w in runs]))
    return rows


def both_paths(args: argparse.Namespace, env: dict[str, str], route: Route, data: Path) -> list[Row]:
    """One-shot batches through the gateway and through Ray, alternated run by run (the machine's
    noise falls on both), with the instant and the slow LLM."""
    one_shot = {**env, "AGENTCTL_ROUTER__MAX_STEPS": "1"}
    paths = {"through the gateway": one_shot, "through Ray": {**one_shot, "AGENTCTL_GATEWAY__ENABLED": "false"}}
    options = concurrency_option(args.batch_concurrency)
    route.process = "bench_echo"
    for own in paths.values():
        route.latency = 0.0
        batch(own, data, route, 8, [])  # a process's first run in each actor pays set-up: not counted
    rows = []
    for latency in (0.0, args.latency):
        route.latency = latency
        found: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
        for _ in range(args.runs):
            for name, own in paths.items():
                found[name].append(batch(own, data, route, args.items, options))
        for name, runs in found.items():
            seconds, wall = [s for s, _ in runs], [w for _, w in runs]
            rows.append(Row(f"batch {name}, LLM {latency:.1f} s", args.items, seconds, wall))
    return rows


def paths_table(rows: list[Row]) -> None:
    """The two paths' table: items/s from the batch's own time, and the CLI's wall time."""
    print(f"{'':<40} {'items':>5} {'seconds':>8} {'items/s':>8} {'CLI wall':>9} {'items/s (wall)':>15}")
    for row in rows:
        wall = statistics.median(row.wall)
        print(
            f"{row.name:<40} {row.items:5d} {statistics.median(row.seconds):8.2f} {row.rate:8.2f} "
            f"{wall:9.2f} {row.items / wall:15.2f}"
        )


def concurrency_option(concurrency: int | None) -> list[str]:
    return [] if concurrency is None else ["--concurrency", str(concurrency)]


def ceiling(args: argparse.Namespace, env: dict[str, str], prefect_url: str) -> list[Row]:
    """The ceiling's rows, one per concurrency tried, in a process of its own on the stack's Prefect API."""
    own = {**env, "PREFECT_API_URL": prefect_url, "PREFECT_HOME": tempfile.mkdtemp(prefix="bench-prefect-")}
    command = [sys.executable, str(HERE / "ceiling_flows.py"), "--items", str(args.items), "--runs", str(args.runs)]
    proc = subprocess.run(
        [*command, "--concurrency", *map(str, args.concurrency)], env=own, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"the ceiling's flows failed: {proc.stderr[-2000:]}")
    seconds = json.loads(proc.stdout.strip().splitlines()[-1])
    return [Row(f"ceiling: plain async flows, {c} at once", args.items, s) for c, s in seconds.items()]


def batch(env: dict[str, str], data: Path, route: Route, items: int, options: list[str]) -> tuple[float, float]:
    """One ``agentctl batch`` of ``items`` requests: (the batch's own seconds, the CLI's wall time)."""
    source, out = data / "requests.txt", data / "results.jsonl"
    source.write_text("".join(f"item {n}\n" for n in range(items)))
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.run(
        [AGENTCTL, "batch", str(source), "--out", str(out), *options], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    summary = SUMMARY.search(proc.stderr)
    if proc.returncode != 0 or summary is None or int(summary[2]) != items:
        raise SystemExit(f"agentctl batch ({route}) failed, exit {proc.returncode}: {proc.stderr[-2000:]}")
    return float(summary[3]), wall


def table(rows: list[Row], latency: float) -> None:
    """The table, then the issue's two targets."""
    best = max((r for r in rows if r.name.startswith("ceiling")), key=lambda r: r.rate)
    print(f"{'':<44} {'items':>5} {'seconds':>8} {'runs/s':>7} {'/ceiling':>8} {'CLI wall':>9}")
    for row in rows:
        wall = f"{statistics.median(row.wall):9.2f}" if row.wall else ""
        print(
            f"{row.name:<44} {row.items:5d} {statistics.median(row.seconds):8.2f} {row.rate:7.2f} "
            f"{row.rate / best.rate:7.0%} {wall}"
        )
    rate = {r.name: r.rate for r in rows}
    print(f"target batch >= 90% of the ceiling (instant LLM): {rate['agentctl batch, LLM 0.0 s'] / best.rate:.0%}")
    slow = f"LLM {latency:.1f} s"
    ratio = rate[f"agentctl batch, {slow}"] / rate[f"seed design, {slow}"]
    print(f"target batch >= 4x the seed design ({slow}): {ratio:.1f}x")


def cli(env: dict[str, str], *args: str) -> None:
    proc = subprocess.run([AGENTCTL, *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"agentctl {' '.join(args)} failed, exit {proc.returncode}: {proc.stderr[-2000:]}")


if __name__ == "__main__":
    main()
