"""Declaring processes with @agentctl.process and discovering them from config and entry points."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentctl import process
from agentctl.config import Settings
from agentctl.errors import ConfigError, UsageError
from agentctl.processes.discovery import discover, to_process
from agentctl.processes.params import parse

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLE = Path(__file__).parent.parent / "examples" / "agentctl-example-plugin"


def settings(**processes: object) -> Settings:
    return Settings.model_validate({"processes": processes})


@pytest.fixture
def fixtures_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))


def test_decorator_returns_the_function_unchanged() -> None:
    @process(name="double", description="Double it")
    def double(x: int) -> int:
        return 2 * x

    assert double(4) == 8
    declared = to_process(double)
    assert (declared.name, declared.description, declared.kind) == ("double", "Double it", "flow")


def test_every_parameter_type_and_docstring(fixtures_on_path: None) -> None:
    registry = discover(settings(modules=["userflows"])).registry
    count = registry.get("count_issues")
    assert count is not None
    props = count.schema()["properties"]
    assert count.description == "Count open issues with a label"
    assert props["repo"] == {
        "description": "Repository as owner/name.",
        "title": "Repo",
        "type": "string",
        "maxLength": 10_000,
    }
    assert props["limit"]["type"] == "integer" and props["limit"]["default"] == 100
    assert props["ratio"]["type"] == "number"
    assert props["closed"]["type"] == "boolean"
    assert props["state"]["enum"] == ["open", "closed"]
    assert props["priority"]["$ref"].endswith("Priority")
    assert {"type": "array", "items": {"type": "string", "maxLength": 10_000}} in props["assignees"]["anyOf"]
    assert props["window"]["description"] == "Only issues from this time window."
    assert count.schema()["$defs"]["Window"]["required"] == ["days"]
    assert count.source.options == {"retries": 2, "retry_delay_seconds": 0} and count.source.tags == ("issues",)


def test_flows_and_tasks_keep_their_kind(fixtures_on_path: None) -> None:
    registry = discover(settings(modules=["userflows"])).registry
    assert registry.get("shout").kind == "flow"  # type: ignore[union-attr]
    assert registry.get("add_numbers").kind == "task"  # type: ignore[union-attr]
    assert registry.get("add_numbers").description == "Add two numbers."  # type: ignore[union-attr]


def test_builtins_come_through_the_entry_point() -> None:
    names = [p.name for p in discover(settings()).registry]
    assert names[:2] == ["github_repo_info", "text_processing"]


def test_disable_hides_builtins() -> None:
    names = [p.name for p in discover(settings(disable=["text_processing"])).registry]
    assert "text_processing" not in names and "github_repo_info" in names


def test_file_path_discovery() -> None:
    found = discover(settings(paths=[str(FIXTURES / "userflows.py")]))
    assert found.problems == []
    assert found.registry.get("count_issues") is not None


def test_import_failure_is_named_and_the_rest_still_load(fixtures_on_path: None) -> None:
    found = discover(settings(modules=["broken_module", "userflows"]))
    assert found.registry.get("count_issues") is not None
    assert len(found.problems) == 1
    assert "module broken_module" in found.problems[0] and "a_package_that_does_not_exist" in found.problems[0]


def test_duplicate_names_are_named_and_the_rest_still_load(fixtures_on_path: None) -> None:
    found = discover(settings(modules=["clashing"]))
    assert found.registry.get("survivor") is not None
    assert found.registry.get("github_repo_info").entrypoint.startswith("agentctl.")  # type: ignore[union-attr]
    assert len(found.problems) == 1
    assert "'github_repo_info'" in found.problems[0] and "clashing:impostor" in found.problems[0]


def test_star_args_are_refused() -> None:
    @process
    def loose(*values: int) -> int:
        return sum(values)

    with pytest.raises(ConfigError, match=r"\*values"):
        to_process(loose)


def install_example(tmp_path: Path) -> Path:
    """pip-install the example plugin package into a directory of its own; return that directory."""
    source, target = tmp_path / "example-src", tmp_path / "site"
    shutil.copytree(EXAMPLE, source)  # builds write into the source tree: keep the repository clean
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return target


def test_entry_point_of_an_installed_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(install_example(tmp_path)))
    found = discover(settings())
    assert found.problems == []
    names = [p.name for p in found.registry]
    assert {"word_count", "fibonacci"} <= set(names)
    assert found.registry.get("fibonacci").source.options == {"retries": 1, "retry_delay_seconds": 0}  # type: ignore[union-attr]


class TestParams:
    @pytest.fixture(autouse=True)
    def _path(self, fixtures_on_path: None) -> None:
        count = discover(settings(modules=["userflows"])).registry.get("count_issues")
        assert count is not None, "the fixture module declares count_issues"
        self.count = count

    def test_values_are_parsed_against_the_schema(self) -> None:
        args = parse(
            self.count,
            [
                "repo=acme/rocket",
                "limit=3",
                "ratio=0.5",
                "closed=true",
                "priority=high",
                'assignees=["ann","bob"]',
                "label=123",
            ],
            None,
        )
        assert args["limit"] == 3 and args["ratio"] == 0.5 and args["closed"] is True
        assert args["priority"] == "high" and args["assignees"] == ["ann", "bob"]
        assert args["label"] == "123"

    def test_params_json_for_complex_values(self) -> None:
        args = parse(self.count, ["repo=a/b"], '{"window": {"days": 7}}')
        assert args["window"] == {"days": 7, "include_closed": False}

    @pytest.mark.parametrize(
        ("pairs", "message"),
        [
            (["repo=a/b", "limit=many"], "parameter limit: expected a valid integer"),
            (["limit=3"], "parameter repo is required"),
            (["repo=a/b", "colour=red"], "count_issues has no parameter 'colour'"),
            (["repo"], "--param takes NAME=VALUE"),
            (["repo=a/b", "state=pending"], "parameter state: expected 'open' or 'closed'"),
        ],
    )
    def test_bad_values_name_the_parameter(self, pairs: list[str], message: str) -> None:
        with pytest.raises(UsageError, match=message):
            parse(self.count, pairs, None)

    def test_bad_json(self) -> None:
        with pytest.raises(UsageError, match="--params-json is not valid JSON"):
            parse(self.count, [], "{nope")
