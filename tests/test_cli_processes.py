"""``agentctl processes list/show/run`` and user processes routed by ``ask``, end to end."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import run_cli
from tests.servers import FakeLLM, tool_call
from tests.test_declare import FIXTURES, install_example


@pytest.fixture
def user_env(env: dict[str, str]) -> dict[str, str]:
    """A user whose config names the module userflows, found in the directory agentctl runs from."""
    return {**env, "AGENTCTL_PROCESSES__MODULES": "userflows"}


def test_list_shows_user_processes_beside_builtins(user_env: dict[str, str]) -> None:
    result = run_cli(user_env, "processes", "list", "--json", cwd=FIXTURES)

    assert result.code == 0, result.stderr
    names = [p["name"] for p in result.json()]
    assert names[:2] == ["github_repo_info", "text_processing"]
    assert {"count_issues", "shout", "add_numbers", "fails"} <= set(names)


def test_show_describes_parameters_schema_and_source(user_env: dict[str, str]) -> None:
    result = run_cli(user_env, "processes", "show", "count_issues", "--json", cwd=FIXTURES)

    assert result.code == 0, result.stderr
    shown = result.json()
    assert shown["description"] == "Count open issues with a label"
    assert shown["source"].endswith("userflows.py:" + str(_line_of('@process(description="Count open issues')))
    limit = next(p for p in shown["parameters"] if p["name"] == "limit")
    assert limit == {
        "name": "limit",
        "type": "integer",
        "required": False,
        "default": 100,
        "description": "Stop counting here.",
    }
    assert shown["schema"]["required"] == ["repo"]
    assert shown["options"] == {"retries": 2, "retry_delay_seconds": 0} and shown["tags"] == ["issues"]

    rich = run_cli(user_env, "processes", "show", "count_issues", cwd=FIXTURES)
    assert rich.code == 0 and "Repository as owner/name." in rich.stdout


def test_run_parses_values_and_needs_no_api_key(user_env: dict[str, str]) -> None:
    env = {k: v for k, v in user_env.items() if k != "OPENAI_API_KEY"}

    result = run_cli(
        env,
        "processes",
        "run",
        "count_issues",
        "--param",
        "repo=acme/rocket",
        "--param",
        "limit=3",
        "--params-json",
        '{"window": {"days": 7}}',
        "--json",
        cwd=FIXTURES,
    )

    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["route"] == "count_issues"
    assert doc["result"]["limit"] == 3 and doc["result"]["window"] == {"days": 7, "include_closed": False}
    assert any("counting bug issues in acme/rocket" in line["message"] for line in doc["logs"])
    with httpx.Client(trust_env=False) as client:
        run = client.get(f"{env['PREFECT_API_URL']}/flow_runs/{doc['run']['id']}").json()
    assert run["parameters"]["limit"] == 3
    assert "issues" in run["tags"]


def test_run_an_async_flow(user_env: dict[str, str]) -> None:
    result = run_cli(user_env, "processes", "run", "shout", "--param", "text=hey", "--json", cwd=FIXTURES)

    assert result.code == 0, result.stderr
    assert result.json()["result"] == "HEY!"


def test_run_a_sync_task_shows_its_result_panel(user_env: dict[str, str]) -> None:
    result = run_cli(user_env, "processes", "run", "add_numbers", "--param", "a=2", "--param", "b=40", cwd=FIXTURES)

    assert result.code == 0, result.stderr
    assert re.search(r"╭─ add_numbers · task run \S+ · Completed ─+╮", result.stdout), result.stdout
    assert re.search(r"│ 42 +│", result.stdout), result.stdout
    # Top-level task runs are listed beside flow runs.
    run_id = re.search(r"/runs/task-run/([0-9a-f-]{36})", result.stdout)  # the panel links to the run
    assert run_id is not None, result.stdout
    listed = run_cli(user_env, "runs", "--json", "--process", "add_numbers", "--limit", "100", cwd=FIXTURES)
    rows = [r for r in listed.json() if r["id"] == run_id.group(1)]
    assert listed.code == 0 and [(r["kind"], r["state"]) for r in rows] == [("task", "Completed")], listed.stdout


def test_run_rejects_bad_parameters_before_starting_anything(user_env: dict[str, str]) -> None:
    result = run_cli(
        user_env, "processes", "run", "count_issues", "--param", "repo=a/b", "--param", "limit=lots", cwd=FIXTURES
    )

    assert result.code == 2
    assert (
        result.stderr.strip() == "error: parameter limit: expected a valid integer, unable to parse string as an "
        "integer, got 'lots'"
    )


def test_run_unknown_process(user_env: dict[str, str]) -> None:
    result = run_cli(user_env, "processes", "run", "nope", cwd=FIXTURES)

    assert result.code == 2
    assert "no process named 'nope'" in result.stderr and "count_issues" in result.stderr


def test_run_failing_process_reports_state_and_message(user_env: dict[str, str]) -> None:
    result = run_cli(user_env, "processes", "run", "fails", "--param", "reason=disk on fire", cwd=FIXTURES)

    assert result.code == 1
    assert "fails ended Failed: RuntimeError: disk on fire" in result.stderr
    assert "Traceback" not in result.stderr


def test_broken_module_is_reported_and_the_rest_load(user_env: dict[str, str]) -> None:
    env = {**user_env, "AGENTCTL_PROCESSES__MODULES": "broken_module,userflows"}

    result = run_cli(env, "processes", "list", "--json", cwd=FIXTURES)

    assert result.code == 0
    assert "could not load processes from module broken_module" in result.stderr
    assert "count_issues" in {p["name"] for p in result.json()}


def test_ask_routes_to_a_plugin_process_in_an_actor(env: dict[str, str], llm: FakeLLM, tmp_path: Path) -> None:
    site = install_example(tmp_path)
    env = {**env, "PYTHONPATH": str(site)}
    llm.script("route", tool_call("fibonacci", {"count": 7, "order": "descending"}))

    result = run_cli(env, "ask", "--json", "the first 7 Fibonacci numbers, largest first")

    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["result"] == [8, 5, 3, 2, 1, 1, 0]
    assert doc["run"]["kind"] == "flow"
    offered = {t["function"]["name"] for t in llm.calls("route")[0].body["tools"]}
    assert {"fibonacci", "word_count", "github_repo_info"} <= offered


def test_two_hundred_processes(env: dict[str, str], tmp_path: Path) -> None:
    module = tmp_path / "many.py"
    module.write_text(generated_module(200))

    result = run_cli({**env, "AGENTCTL_PROCESSES__PATHS": str(module)}, "processes", "list", "--json")

    assert result.code == 0, result.stderr
    assert len(result.json()) == 202


def generated_module(count: int) -> str:
    """A module declaring ``count`` processes on distinct topics."""
    lines = ["from agentctl import process", ""]
    for i in range(count):
        lines += [
            "@process",
            f"def report_{i}(account: str, quarter: int = 1) -> str:",
            f'    """Quarterly report number {i} about topic{i} for an account."""',
            f"    return 'report {i}'",
            "",
        ]
    return "\n".join(lines)


def _line_of(text: str) -> int:
    lines = (FIXTURES / "userflows.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(text))


WAITS = '''
import asyncio

from agentctl import process


@process(timeout_seconds=0.5)
async def wait_long(seconds: float) -> str:
    """Wait the seconds given, then say so."""
    await asyncio.sleep(seconds)
    return "waited"
'''


def test_a_directory_in_paths_and_a_timeout(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "waits.py").write_text(WAITS)
    (tmp_path / "elsewhere").mkdir()  # the modules are found through processes.paths, not the cwd
    env = {**env, "AGENTCTL_PROCESSES__PATHS": str(tmp_path / "mine"), "AGENTCTL_PROCESSES__MODULES": "waits"}

    listed = run_cli(env, "processes", "list", cwd=tmp_path / "elsewhere")
    ran = run_cli(env, "processes", "run", "wait_long", "--param", "seconds=20", cwd=tmp_path / "elsewhere")
    runs = run_cli(env, "runs", "--process", "wait_long")

    assert listed.code == 0, listed.stderr
    assert re.search(r"│ wait_long +│ flow +│ Wait the seconds given, then say so\. +│", listed.stdout)
    assert re.search(r"│ github_repo_info +│ flow +│", listed.stdout)
    assert ran.code == 1
    [error] = [line for line in ran.stderr.splitlines() if line.startswith("error:")]
    assert "wait_long ended TimedOut" in error and "timed out after 0.5 second" in error, ran.stderr
    assert runs.code == 0, runs.stderr
    [row] = [line for line in runs.stdout.splitlines() if "wait_long" in line]
    assert "TimedOut" in row
