"""The registry: schemas from signatures, the built-ins, and a listing that stays light."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
from pydantic import ValidationError

from agentctl.errors import ConfigError
from agentctl.processes.builtin import builtin_registry
from agentctl.processes.python_run import prefect_callable
from agentctl.processes.python_source import PythonSource
from agentctl.processes.registry import Registry, from_signature
from tests.conftest import isolated_env

SOURCE = PythonSource("flow", "x:y")


def sample(
    repo: str,
    limit: int = 10,
    labels: list[str] | None = None,
    state: Literal["open", "closed"] = "open",
    verbose: bool = False,
) -> None:
    """Count issues.

    Args:
        repo: Repository as owner/name.
        limit: How many to count at most.
    """


def test_an_argument_description_may_go_on_over_more_lines() -> None:
    def grep(pattern: str, path: str = ".") -> None:
        """Search files.

        More about it, for developers.

        Args:
            pattern: A regular expression,
                matched against each line.
            path: Where to search.

        Returns:
            Nothing.
        """

    process = from_signature(grep, name="grep", source=SOURCE)
    properties = process.schema()["properties"]
    assert process.description == "Search files."
    assert properties["pattern"]["description"] == "A regular expression, matched against each line."
    assert properties["path"]["description"] == "Where to search."


def test_a_prefect_style_description_that_is_the_docstring_is_cut_to_its_first_paragraph() -> None:
    doc = inspect.getdoc(sample) or ""
    assert from_signature(sample, name="count", source=SOURCE, description=doc).description == ("Count issues.")
    given = "Count issues.\n\nOnly open ones."
    assert from_signature(sample, name="count", source=SOURCE, description=given).description == given


def test_schema_from_signature_and_docstring() -> None:
    process = from_signature(sample, name="count", source=SOURCE)
    schema = process.schema()
    assert process.description == "Count issues."
    assert schema["required"] == ["repo"]
    assert schema["properties"]["repo"]["description"] == "Repository as owner/name."
    assert schema["properties"]["limit"]["type"] == "integer"
    assert schema["properties"]["state"]["enum"] == ["open", "closed"]
    assert process.validate({"repo": "a/b", "limit": "3"})["limit"] == 3
    with pytest.raises(ValidationError):
        process.validate({"repo": "a/b", "unknown": 1})


def test_duplicate_and_bad_names() -> None:
    process = from_signature(sample, name="count", source=SOURCE)
    with pytest.raises(ConfigError, match="two processes are named 'count'"):
        Registry([process, process])
    with pytest.raises(ConfigError, match="must match"):
        from_signature(sample, name="has space", source=SOURCE)


def test_builtins_declare_the_signatures_of_their_prefect_callables() -> None:
    for process in builtin_registry():
        target = prefect_callable(process, process.source)  # type: ignore[arg-type]
        declared = inspect.signature(target.fn)
        schema_params = list(process.schema()["properties"])
        assert list(declared.parameters) == schema_params, process.name
        assert process.kind == ("flow" if type(target).__name__ == "Flow" else "task")


def test_builtins_schemas_are_those_prefect_runs_them_with() -> None:
    names = {"github_repo_info": ("Flow", "github-repo-info"), "text_processing": ("Task", "text-processing")}
    for process in builtin_registry():
        target = prefect_callable(process, process.source)  # type: ignore[arg-type]
        assert (type(target).__name__, target.name) == names[process.name]
        prefect_schema = target.parameters if process.kind == "flow" else target.fn.__signature__
        params = prefect_schema.properties if process.kind == "flow" else prefect_schema.parameters
        assert list(params) == list(process.schema()["properties"]), process.name


def test_repo_argument_must_be_owner_slash_name() -> None:
    github = builtin_registry().get("github_repo_info")
    assert github is not None
    with pytest.raises(ValidationError):
        github.validate({"repo": "https://evil.example/x"})
    assert github.validate({"repo": "PrefectHQ/prefect"}) == {"repo": "PrefectHQ/prefect"}


def test_processes_list_imports_no_ray_prefect_or_openai(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "agentctl", "processes", "list", "--json"],
        env=isolated_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert {"ray", "prefect", "openai"} & imported == set()
    assert "github_repo_info" in proc.stdout


def test_help_imports_no_ray_prefect_or_openai(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "agentctl", "--help"],
        env=isolated_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert {"ray", "prefect", "openai"} & imported == set()
