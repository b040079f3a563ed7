"""``agentctl batch`` and ``processes run --batch`` end to end, on the shared Ray cluster and Prefect API:
records per item as they finish, failures and malformed lines, --resume, Ctrl-C, argument sets."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import AGENTCTL, run_cli
from tests.servers import FakeGitHub, FakeLLM, Reply, say, tool_call
from tests.test_declare import FIXTURES


def _route_by_repo(body: dict[str, Any]) -> Reply:
    """Requests naming ``acme/...`` go to github_repo_info with that repository; others are chat."""
    words = body["messages"][-1]["content"].split()
    repo = next((word for word in words if word.startswith("acme/")), None)
    return tool_call("github_repo_info", {"repo": repo}) if repo else say("Paris.")


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_batch_records_every_item_once_and_resume_redoes_only_the_failed(
    env: dict[str, str], llm: FakeLLM, github: FakeGitHub, tmp_path: Path
) -> None:
    github.add_repo("acme/rocket", stars=7, contributors=3)
    github.add_repo("acme/engine", stars=9, contributors=1)
    llm.responder = _route_by_repo
    requests, out = tmp_path / "requests.jsonl", tmp_path / "results.jsonl"
    requests.write_text(
        '{"id": "rocket", "request": "stars for acme/rocket"}\n'
        '{"id": "ghost", "request": "stars for acme/ghost"}\n'
        "this line is no JSON\n"
        '{"id": "engine", "request": "stars for acme/engine"}\n'
    )

    first = run_cli(env, "batch", str(requests), "--out", str(out), "--concurrency", "3")

    assert first.code == 1, first.stderr
    assert first.stdout == ""  # records go to --out only
    lines = first.stderr.splitlines()
    assert f"error: {requests} line 3: not JSON (Expecting value); skipped" in lines
    assert lines[-1].startswith("batch: 3 records (2 succeeded, 1 failed, 0 refused), 1 malformed line skipped")
    records = {r["id"]: r for r in _records(out)}
    assert sorted(records) == ["engine", "ghost", "rocket"] and len(_records(out)) == 3
    assert records["rocket"]["result"]["stars"] == 7 and records["rocket"]["run"]["state"] == "Completed"
    assert records["rocket"]["request"] == "stars for acme/rocket" and records["rocket"]["error"] is None
    assert records["ghost"]["error"]["exit_code"] == 1 and "acme/ghost" in records["ghost"]["error"]["message"]
    assert os.stat(out).st_mode & 0o777 == 0o600

    github.add_repo("acme/ghost", stars=1, contributors=1)
    llm.requests.clear()
    again = run_cli(env, "batch", str(requests), "--out", str(out), "--resume")

    # Only the failed item ran again; the malformed line is still bad input, and nothing failed: exit 2.
    assert again.code == 2, again.stderr
    assert [call.body["messages"][-1]["content"] for call in llm.calls("route")] == ["stars for acme/ghost"]
    assert "2 done before (--resume)" in again.stderr.splitlines()[-1]
    records = {r["id"]: r for r in _records(out)}
    assert len(_records(out)) == 3 and all(r["error"] is None for r in records.values())
    assert records["ghost"]["result"]["stars"] == 1


def _flow_runs_of(api: str, repos: set[str]) -> list[dict[str, Any]]:
    with httpx.Client(trust_env=False) as client:
        runs = client.post(f"{api}/flow_runs/filter", json={"sort": "EXPECTED_START_TIME_DESC", "limit": 200}).json()
    return [run for run in runs if run["parameters"].get("repo") in repos]


def _asked_for(github: FakeGitHub) -> set[str]:
    """The repositories GitHub was asked for so far."""
    return {"/".join(r.path.split("?")[0].split("/")[2:4]) for r in list(github.requests)}


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll for a condition of a process or server we started, up to two minutes."""
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_ctrl_c_keeps_the_finished_records_and_cancels_the_runs_in_flight(
    env: dict[str, str], llm: FakeLLM, github: FakeGitHub, tmp_path: Path
) -> None:
    held = {f"acme/held-{uuid.uuid4().hex[:8]}", f"acme/held-{uuid.uuid4().hex[:8]}"}
    for repo in held:
        github.add_repo(repo, stars=1, contributors=1)
    gate = github.hold()
    llm.responder = _route_by_repo
    requests, out = tmp_path / "requests.txt", tmp_path / "results.jsonl"
    requests.write_text("capital of France?\ncapital of Spain?\n" + "".join(f"stars for {r}\n" for r in held))
    batch = subprocess.Popen(
        [AGENTCTL, "batch", str(requests), "--out", str(out), "--concurrency", "2"],
        env=env,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    api = env["PREFECT_API_URL"]
    try:
        # The two chat items finished; the two runs after them wait on GitHub.
        _wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 2, "two records were never written")
        _wait_for(lambda: _asked_for(github) >= held, "the two runs never reached GitHub")
        os.killpg(batch.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        _, stderr = batch.communicate(timeout=90)
    finally:
        gate.set()
        if batch.poll() is None:
            os.killpg(batch.pid, signal.SIGKILL)
    assert batch.returncode == 130, stderr
    assert stderr.splitlines()[-1:] == ["interrupted"]
    assert sorted(r["chat"] for r in _records(out)) == ["Paris.", "Paris."]
    assert sorted(r["id"] for r in _records(out)) == [1, 2]
    _wait_for(
        lambda: sorted(r["state"]["type"] for r in _flow_runs_of(api, held)) == ["CANCELLED", "CANCELLED"],
        f"the runs in flight did not end Cancelled: {[r['state'] for r in _flow_runs_of(api, held)]}",
    )


def test_processes_run_batch_runs_each_argument_set(env: dict[str, str], tmp_path: Path) -> None:
    params = tmp_path / "params.jsonl"
    params.write_text('{"id": "a", "text": "hi"}\n{"text": "yo"}\n{"nope": 1}\n')

    result = run_cli(
        {**env, "AGENTCTL_PROCESSES__MODULES": "userflows"},
        "processes",
        "run",
        "shout",
        "--batch",
        str(params),
        cwd=FIXTURES,
    )

    assert result.code == 2, result.stderr  # the third set is no valid arguments for shout
    records = {r["id"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert records["a"]["result"] == "HI!" and records[2]["result"] == "YO!"
    assert records["a"]["request"] == "processes run shout" and records["a"]["route"] == "shout"
    assert records["a"]["run"]["state"] == "Completed" and records["a"]["error"] is None
    assert records[3]["error"]["exit_code"] == 2
    assert records[3]["error"]["message"] == "parameter text is required (see: agentctl processes show shout)"
    [summary] = result.stderr.splitlines()  # off a terminal: the summary line alone
    assert re.fullmatch(r"batch: 3 records \(2 succeeded, 0 failed, 1 refused\), [\d.]+ s, [\d.]+/s", summary)
