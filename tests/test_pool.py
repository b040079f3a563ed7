"""Which router actor of the pool a request goes to: the least busy one, the first on a tie."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agentctl.execution import pool as pool_module
from agentctl.execution.pool import Pool


class FakeActor:
    """Answers a request with its own name, as the one event of the request's stream."""

    def __init__(self, index: int) -> None:
        self.name = f"actor-{index}"
        self.handle = self

    def options(self, **_: Any) -> FakeActor:
        return self

    def remote(self, *_: Any, **__: Any) -> Iterator[str]:
        return iter([self.name])


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Pool:
    monkeypatch.setattr(pool_module, "_stream", lambda stream, check: stream)  # no Ray: the fake's events as they are
    return Pool(FakeActor, 3)


def test_requests_one_after_another_stay_on_the_first_actor(pool: Pool) -> None:
    assert [list(pool.ask(f"request {n}")) for n in range(3)] == [["actor-0"]] * 3


def test_overlapping_requests_go_to_the_least_busy_actor(pool: Pool) -> None:
    first, second = pool.ask("one"), pool.ask("two")
    assert (next(first), next(second)) == ("actor-0", "actor-1")  # both still open: actor-0 is busy
    assert next(pool.ask("three")) == "actor-2"
    list(first)  # the first request ends: its actor is the least busy again
    assert next(pool.ask("four")) == "actor-0"


def test_the_run_a_dead_actor_leaves_is_the_one_in_progress_not_an_earlier_steps() -> None:
    from agentctl.events import Log, Result, RunInfo
    from agentctl.execution.pool import _in_progress

    def log(run_id: str) -> Log:
        return Log(time=0, level="INFO", run_name=run_id, message="m", run_id=run_id, run_kind="flow")

    first_done = _in_progress(_in_progress(None, log("a")), Result(process="p", value=1, run=RunInfo(id="a")))
    assert first_done is None  # step 1's run completed: nothing to mark Crashed
    assert _in_progress(first_done, log("b")) == ("b", "flow")  # step 2's run is the one in progress
