"""What one more step of a request costs beyond the LLM, on a warm session with an instant local LLM.

One Session (as the REPL keeps) serves each kind of request ``--runs`` times; a request's overhead is
its wall time minus the time the local LLM server spent answering it. The process is trivial
(``bench_echo``, an async flow), so what is measured is agentctl, Ray and Prefect. Rows, medians:

- one-shot (``router.max_steps = 1``, its own session): route, run;
- route, run, answer: the default loop, the model answering from the result;
- route, run, call again, run, answer: one more step with a run.

The differences are the cost of the answer step and of a step with a run.

    .venv/bin/python benchmarks/bench_steps.py --runs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from local import local_servers

from tests.servers import FakeLLM, Reply, say, tool_call

HERE = Path(__file__).resolve().parent


def overheads(llm: FakeLLM, runs: int, steps: list[Reply]) -> list[float]:
    """Per request: wall time minus the LLM server's time, with ``steps`` scripted after the route."""
    from agentctl.calls.session import Session
    from agentctl.config import load
    from agentctl.events import Failed

    found = []
    with Session(load()) as session:
        session.warm()
        for n in range(runs + 1):  # the first request warms the flow itself: not counted
            llm.script("route", tool_call("bench_echo", {"n": n}))
            llm.script("step", *steps)
            before, start = llm.busy_seconds, time.perf_counter()
            events = list(session.ask(f"echo {n}"))
            if any(isinstance(e, Failed) for e in events):
                raise SystemExit(f"request failed: {[e for e in events if isinstance(e, Failed)]}")
            if n:
                found.append(time.perf_counter() - start - (llm.busy_seconds - before))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    llm, _, _, _ = local_servers()
    os.environ["AGENTCTL_PROCESSES__PATHS"] = str(HERE / "batch_processes.py")
    os.environ["AGENTCTL_POOL__SIZE"] = "1"
    os.environ["AGENTCTL_ROUTER__MAX_STEPS"] = "1"
    one_shot = statistics.median(overheads(llm, runs, []))
    del os.environ["AGENTCTL_ROUTER__MAX_STEPS"]
    answered = statistics.median(overheads(llm, runs, [say("done")]))
    again = statistics.median(overheads(llm, runs, [tool_call("bench_echo", {"n": -1}), say("done")]))
    print(f"median of {runs} requests, seconds beyond the LLM")
    print(f"{'one-shot: route, run':<45} {one_shot:.3f}")
    print(f"{'route, run, answer':<45} {answered:.3f}  (+{answered - one_shot:.3f}: the answer step)")
    print(f"{'route, run, call, run, answer':<45} {again:.3f}  (+{again - answered:.3f}: a step with a run)")


if __name__ == "__main__":
    main()
