"""Approval before side effects through the CLI, on the real Ray and Prefect: refused without a
terminal, approved with --yes, asked on a terminal (y, n; the REPL's always)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pytest

from tests.conftest import AGENTCTL, run_cli
from tests.servers import FakeLLM, tool_call

FIXTURE = Path(__file__).parent / "fixtures" / "approvals.py"
QUESTION = r"Run it\? \[y/N\] "


@pytest.fixture
def approval_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "AGENTCTL_PROCESSES__PATHS": str(FIXTURE), "TERM": "xterm"}


def flow_runs_writing(api: str, path: Path) -> list[dict[str, Any]]:
    """The flow runs in the Prefect API whose ``path`` parameter is ``path``."""
    with httpx.Client(trust_env=False) as client:
        runs = client.post(f"{api}/flow_runs/filter", json={"sort": "EXPECTED_START_TIME_DESC", "limit": 200}).json()
    return [run for run in runs if run["parameters"].get("path") == str(path)]


def test_without_a_terminal_a_run_that_needs_approval_is_refused_and_yes_runs_it(
    tmp_path: Path, approval_env: dict[str, str], llm: FakeLLM, prefect_api: str
) -> None:
    mark = tmp_path / "mark.txt"
    refused = run_cli(approval_env, "processes", "run", "write_mark", "-p", f"path={mark}", "-p", "text=refused")
    assert refused.code == 2
    assert refused.stderr.strip().splitlines() == [
        "error: write_mark needs approval before it runs and there is no terminal to ask "
        "(stdin is not one, or --json): pass --yes, or list it in processes.auto_approve"
    ]
    assert not mark.exists() and flow_runs_writing(prefect_api, mark) == []

    llm.script("route", tool_call("write_mark", {"path": str(mark), "text": "approved"}))
    approved = run_cli(approval_env, "ask", "--yes", "--json", "mark the file")
    assert approved.code == 0, approved.stderr
    document = approved.json()
    assert (document["route"], document["result"]) == ("write_mark", f"wrote {mark}")
    assert "needs_approval" not in document  # a dry run's key only
    assert mark.read_text() == "approved" and len(flow_runs_writing(prefect_api, mark)) == 1


def test_dry_run_and_listing_say_which_need_approval(
    tmp_path: Path, approval_env: dict[str, str], llm: FakeLLM
) -> None:
    llm.script("route", tool_call("write_mark", {"path": str(tmp_path / "x"), "text": "t"}))
    dry = run_cli(approval_env, "ask", "--dry-run", "--json", "mark the file")
    assert dry.code == 0 and dry.json()["needs_approval"] is True and dry.json()["dry_run"] is True

    configured = {
        **approval_env,
        "AGENTCTL_PROCESSES__CONFIRM": "text_*",
        "AGENTCTL_PROCESSES__AUTO_APPROVE": "write_*",
    }
    listed = run_cli(configured, "processes", "list", "--json")
    asks = {p["name"]: p["needs_approval"] for p in listed.json()}
    assert asks == {"github_repo_info": False, "text_processing": True, "write_mark": False}


def spawn(env: dict[str, str], *args: str) -> pexpect.spawn:
    return pexpect.spawn(AGENTCTL, list(args), env=env, encoding="utf-8", timeout=90, dimensions=(50, 200))


@pytest.mark.parametrize(("answer", "code", "written"), [("y", 0, True), ("n", 1, False)])
def test_an_interactive_ask_runs_on_yes_and_nothing_on_no(
    tmp_path: Path, approval_env: dict[str, str], llm: FakeLLM, answer: str, code: int, written: bool
) -> None:
    mark = tmp_path / "mark.txt"
    llm.script("route", tool_call("write_mark", {"path": str(mark), "text": "[bold]asked[/bold]"}))
    child = spawn(approval_env, "ask", "mark the file")
    child.expect_exact("approval needed: write_mark runs with")
    child.expect_exact('text = "[bold]asked[/bold]"')  # foreign text, shown as it is
    child.expect(QUESTION)
    child.sendline(answer)
    child.expect("wrote" if written else "error: not approved: write_mark did not run")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == code
    assert mark.exists() is written
    assert len(llm.calls("route")) == 1  # the approved run is the validated call, not a second routing
    [told] = llm.calls("step")  # the request went on: the model was told the call's outcome
    told_content = told.body["messages"][-1]["content"]
    assert told_content == (json.dumps(f"wrote {mark}") if written else "Refused by the user: write_mark did not run.")


def test_the_repl_asks_once_for_a_process_answered_always(
    tmp_path: Path, approval_env: dict[str, str], llm: FakeLLM
) -> None:
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    llm.script(
        "route",
        tool_call("write_mark", {"path": str(first), "text": "1"}),
        tool_call("write_mark", {"path": str(second), "text": "2"}),
    )
    child = spawn({**approval_env, "PROMPT_TOOLKIT_NO_CPR": "1"}, "repl")
    child.expect_exact("agentctl>")
    child.sendline("mark the first file")
    child.expect(r"Run it\? \[y/N/always\] ")
    child.sendline("always")
    child.expect(f"wrote {first}")
    child.expect_exact("agentctl>")
    child.sendline("mark the second file")
    index = child.expect([f"wrote {second}", r"Run it\?"])
    assert index == 0, "asked a second time"
    child.expect_exact("agentctl>")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and first.read_text() == "1" and second.read_text() == "2"
