"""In-process checks of the stack's pure parts: whether a recorded stack can serve a call, the state
file, and the ``status`` view. No Ray, no Prefect, no subprocess."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from rich.console import Console

from agentctl.config import Settings
from agentctl.errors import StackError, UsageError
from agentctl.execution.pool import Died
from agentctl.output.stack import status_view
from agentctl.stack import watch
from agentctl.stack.health import processes_key
from agentctl.stack.lifecycle import Stack, up
from agentctl.stack.state import StackState, locked, read_state, state_path, write_state
from agentctl.views import ActorStatus, PrefectStatus, RayStatus, StackDown, StackUp, StatusView

VERSIONS = {"agentctl": "1", "ray": "2", "prefect": "3", "openai": "4"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "data").mkdir(mode=0o700)
    return Settings(data_dir=tmp_path / "data")


def _state(settings: Settings, **fields: object) -> StackState:
    """A ready stack whose pieces are all configured (no pids to check), for ``settings``."""
    base: dict[str, object] = {
        "ray_address": "127.0.0.1:6379",
        "prefect_url": "http://127.0.0.1:4200/api",
        "processes": processes_key(settings),
        "started_at": 1.0,
        "actors": ["agentctl-router-0"],
    }
    return StackState.model_validate(base | fields)


def _with(settings: Settings, **sections: dict[str, object]) -> Settings:
    return settings.model_copy(
        update={name: getattr(settings, name).model_copy(update=values) for name, values in sections.items()}
    )


def test_a_ready_stack_for_the_same_settings_is_usable(settings: Settings) -> None:
    assert Stack(settings, _state(settings)).unusable_for(settings) is None


def test_a_stack_for_another_ray_or_prefect_is_unusable_but_not_stale(settings: Settings) -> None:
    stack = Stack(settings, _state(settings))
    other_ray = stack.unusable_for(_with(settings, ray={"address": "10.0.0.9:6379"}))
    other_api = stack.unusable_for(_with(settings, prefect={"api_url": "http://127.0.0.1:9999/api"}))
    assert other_ray is not None and not other_ray.stale
    assert other_ray.reason == "ray.address is 10.0.0.9:6379 but the stack's Ray is at 127.0.0.1:6379"
    assert other_api is not None and "prefect.api_url is http://127.0.0.1:9999/api" in other_api.reason
    assert stack.unusable_for(_with(settings, prefect={"api_url": "http://127.0.0.1:4200/api/"})) is None


def test_a_stack_serves_calls_with_other_prices_and_bounds(settings: Settings) -> None:
    # They travel with each request (the caller's settings), so the running actors apply them.
    priced = _with(
        settings,
        llm={"prices": {"gpt-4o-mini": {"input": 0.15, "output": 0.6}}},
        router={"max_tokens": 100, "max_cost": 0.01},
    )
    assert Stack(settings, _state(settings)).unusable_for(priced) is None


def test_a_stack_whose_actors_load_other_processes_is_unusable(settings: Settings) -> None:
    why = Stack(settings, _state(settings, processes={"modules": ["elsewhere"]})).unusable_for(settings)
    assert why is not None and not why.stale and why.reason.startswith("its actors load other processes")


def test_a_stack_with_a_dead_piece_is_stale(settings: Settings) -> None:
    # This test's own pid is no Prefect server: what a pid reused after a crash looks like.
    why = Stack(settings, _state(settings, prefect_pid=os.getpid())).unusable_for(settings)
    assert why is not None and why.stale and why.reason == "its Prefect server died"


def test_every_request_waiting_on_a_stack_with_a_dead_piece_ends(settings: Settings) -> None:
    # A batch's items each wait on the same stack through one check, which reads /proc for them all.
    check = watch.stack(_state(settings, prefect_pid=os.getpid(), prefect_url="http://127.0.0.1:9/api"))
    messages = []
    for _ in range(8):
        with pytest.raises(Died) as died:
            check()
        messages.append(str(died.value))
    assert len(set(messages)) == 1 and "Prefect server died" in messages[0] and "agentctl up" in messages[0]


def test_a_stack_still_starting_or_never_finished_is_stale(settings: Settings) -> None:
    stack = Stack(settings, _state(settings, ready=False))
    with locked(settings):  # an up holds the lock while it starts the stack
        starting = stack.unusable_for(settings)
    finished = stack.unusable_for(settings)
    assert starting is not None and starting.stale and starting.reason == "agentctl up is still starting it"
    assert finished is not None and finished.stale and finished.reason == "its agentctl up did not finish"


def test_up_refuses_a_running_stack_for_other_settings_without_touching_it(settings: Settings) -> None:
    write_state(settings, _state(settings))
    with pytest.raises(UsageError, match="a stack is up for other settings: ray.address is 10.0.0.9:6379"):
        up(_with(settings, ray={"address": "10.0.0.9:6379"}), {})
    with pytest.raises(UsageError, match="uses SQLite: run agentctl down, then agentctl up --postgres"):
        up(settings, {}, postgres=True)
    assert read_state(settings) == _state(settings)


def test_history_uses_the_stacks_prefect_only_when_it_is_the_configured_one(settings: Settings) -> None:
    stack = Stack(settings, _state(settings))
    assert stack.keeps_history_for(settings)
    assert not stack.keeps_history_for(_with(settings, prefect={"api_url": "http://127.0.0.1:9999/api"}))
    assert not Stack(settings, _state(settings, prefect_pid=os.getpid())).keeps_history_for(settings)


def test_the_state_file_round_trips_and_is_private(settings: Settings) -> None:
    assert Stack.load(settings) is None
    write_state(settings, _state(settings, ui_url="http://127.0.0.1:4200"))
    loaded = Stack.load(settings)
    assert loaded is not None and loaded.state == _state(settings, ui_url="http://127.0.0.1:4200")
    assert stat.S_IMODE(state_path(settings).stat().st_mode) == 0o600


def test_an_unreadable_state_file_is_an_error_naming_it_and_the_fix(settings: Settings) -> None:
    state_path(settings).write_text('{"ray": "from another version"}')
    with pytest.raises(StackError) as caught:
        Stack.load(settings)
    assert str(caught.value) == (
        f"{state_path(settings)} is not a stack state this agentctl can read: stop that stack with the "
        "agentctl that started it, or remove the file"
    )


def _text(view: StatusView) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(status_view(view))
    return console.file.getvalue()  # type: ignore[attr-defined]


def _up(dead: list[str], actors: list[ActorStatus]) -> StackUp:
    return StackUp(
        up=not dead,
        dead=dead,
        state_file="/data/stack.json",
        started_at=1.5,
        ray=RayStatus(address="127.0.0.1:6379", started_by_up=True),
        prefect=PrefectStatus(
            api_url="http://127.0.0.1:4200/api", ui_url=None, healthy=True, started_by_up=False, database="sqlite"
        ),
        actors=actors,
        versions=VERSIONS,
    )


def test_status_of_no_stack_and_of_one_starting(settings: Settings) -> None:
    down = StackDown(state_file="/data/stack.json", unready=None, starting=False, versions=VERSIONS)
    starting = down.model_copy(update={"unready": "agentctl up is still starting it", "starting": True})
    assert "down" in _text(down) and "start one with agentctl up" in _text(down)
    assert "agentctl up is still starting it: wait for it" in _text(starting)
    assert "versions: agentctl 1, ray 2, prefect 3, openai 4" in _text(down)
    assert down.document() == {
        "up": False,
        "state_file": "/data/stack.json",
        "dead": [],
        "unready": None,
        "starting": False,
        "versions": VERSIONS,
    }


def test_status_of_a_stack_with_a_dead_actor(settings: Settings) -> None:
    actors = [ActorStatus(name="r-0", alive=True, busy=1, pid=42, node="9f3e"), ActorStatus(name="r-1", alive=False)]
    text = _text(_up(["r-1"], actors))
    assert "up (started by up)" in text and "none (configured API)" in text
    assert "alive, 1 busy" in text and "router actor, pid 42, node 9f3e" in text
    assert "dead: r-1. agentctl up restarts them" in text
    document = _up(["r-1"], actors).document()
    assert list(document) == [
        "up",
        "dead",
        "state_file",
        "started_at",
        "ray",
        "prefect",
        "actors",
        "gateway",
        "versions",
    ]
    assert document["actors"][0]["node"] == "9f3e"
    assert document["actors"][1] == {"name": "r-1", "alive": False, "busy": None, "pid": None, "node": None}
    assert document["prefect"] == {
        "api_url": "http://127.0.0.1:4200/api",
        "ui_url": None,
        "healthy": True,
        "started_by_up": False,
        "database": "sqlite",
    }
