"""In-process checks of where the pool's actors go and what of the user's code travels to them:
the placement plan over a cluster's nodes, ``pool.per_node``, and the runtime_env's ``py_modules``.
No Ray, no Prefect, no subprocess."""

from __future__ import annotations

import stat
import sys
from collections import Counter
from pathlib import Path

import pytest

from agentctl.config import PoolSettings, Settings, load
from agentctl.errors import ConfigError
from agentctl.execution.placement import plan
from agentctl.processes.discovery import file_module, shipped, to_ship
from agentctl.stack.shipping import staged

NODES = ["n-b", "n-0", "n-a"]


def test_per_node_puts_that_many_on_each_node_others_first_in_turn() -> None:
    slots = plan(NODES, "n-0", PoolSettings(size=5, per_node=2))
    assert slots == ["n-a", "n-b", "n-0", "n-a", "n-b", "n-0"]
    assert Counter(slots) == {"n-a": 2, "n-b": 2, "n-0": 2}


def test_size_deals_the_actors_over_the_nodes() -> None:
    assert plan(NODES, "n-0", PoolSettings(size=2)) == ["n-a", "n-b"]
    assert plan(NODES, "n-0", PoolSettings(size=4)) == ["n-a", "n-b", "n-0", "n-a"]
    assert plan(["n-0"], "n-0", PoolSettings(size=3)) == ["n-0"] * 3


def test_per_node_from_the_environment_and_a_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTCTL_POOL__PER_NODE", "3")
    assert load().pool.per_node == 3
    monkeypatch.setenv("AGENTCTL_POOL__PER_NODE", "-1")
    with pytest.raises(ConfigError) as caught:
        load()
    assert str(caught.value) == "bad config value for pool.per_node: '-1'; expected greater than or equal to 0"


@pytest.fixture
def user_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A package and a module in a directory of processes.paths, and a file named there."""
    (tmp_path / "mine" / "toolkit").mkdir(parents=True)
    (tmp_path / "mine" / "toolkit" / "__init__.py").write_text("")
    (tmp_path / "mine" / "loose.py").write_text("")
    (tmp_path / "mine" / "spaced").mkdir()  # a namespace package: no __init__.py
    (tmp_path / "json.py").write_text("VALUE = 1\n")  # a file named like the standard library's module
    monkeypatch.chdir(tmp_path / "mine")
    monkeypatch.setattr(sys, "path", list(sys.path))  # discovery extends it
    paths = [str(tmp_path / "mine"), str(tmp_path / "json.py")]
    modules = ["toolkit.sub", "loose", "spaced", "pydantic"]
    return Settings.model_validate({"processes": {"modules": modules, "paths": paths}})


def test_user_modules_and_files_ship_installed_packages_do_not(user_code: Settings, tmp_path: Path) -> None:
    modules, files = to_ship(user_code)
    mine = tmp_path / "mine"
    assert modules == [mine / "toolkit", mine / "loose.py", mine / "spaced"]  # not pydantic
    assert files == {file_module(tmp_path / "json.py"): tmp_path / "json.py"}
    assert file_module(tmp_path / "json.py").startswith("agentctl_file_") and file_module(Path("json.py")) != "json"


def test_the_actors_import_the_shipped_files_as_modules_and_read_no_path(user_code: Settings, tmp_path: Path) -> None:
    actors = shipped(user_code).processes
    assert actors.paths == []
    assert actors.modules == ["toolkit.sub", "loose", "spaced", "pydantic", file_module(tmp_path / "json.py")]


def test_staged_files_are_private_copies_named_as_their_module(user_code: Settings, tmp_path: Path) -> None:
    with staged(user_code) as py_modules:
        copy = Path(py_modules[-1])
        assert py_modules[:2] == [str(tmp_path / "mine" / "toolkit"), str(tmp_path / "mine" / "loose.py")]
        assert copy.name == f"{file_module(tmp_path / 'json.py')}.py" and copy.read_text() == "VALUE = 1\n"
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600 and stat.S_IMODE(copy.parent.stat().st_mode) == 0o700
    assert not copy.parent.exists()
