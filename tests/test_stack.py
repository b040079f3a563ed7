"""agentctl up / status / ask, repl and processes run on the stack / runs / down, with a real Ray
head, a real Prefect server and the local LLM and GitHub servers; database.url; --standalone and
calls for other settings or while up starts, on a temporary stack; a configured Ray and Prefect used,
not started or stopped; faults: a failed up, a stale stack, a state file of a stack gone or
unreadable, an actor, the Prefect server (the stack's or a configured one) or the raylet killed
mid-request, Ctrl-C of a request and of up, two ups at once; and Prefect on PostgreSQL where the
machine has it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import psutil
import pytest

from agentctl.stack import proctree
from agentctl.stack.postgres import home_of
from tests.conftest import AGENTCTL, API_KEY, base_env, run_cli, start_ray_head, stop_ray_head
from tests.servers import FakeGitHub, FakeLLM, tool_call
from tests.test_cli_lifecycle import _alive_with, _gone, _loopback
from tests.test_private_files import open_to_others

REQUEST = "Give me the stars and contributors for acme/rocket"
ROUTE = tool_call("github_repo_info", {"repo": "acme/rocket"})
UP_TOKEN = "ghp_up_time_token_0123456789"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _state(env: dict[str, str]) -> dict[str, Any]:
    return json.loads((Path(env["AGENTCTL_DATA_DIR"]) / "stack.json").read_text())


def _status(env: dict[str, str]) -> dict[str, Any]:
    result = run_cli(env, "status", "--json")
    return {**result.json(), "exit_code": result.code}


def _stack_pids(state: dict[str, Any]) -> list[int]:
    pids = proctree.ray_pids(state["ray_temp_dir"]) if state.get("ray_temp_dir") else []
    return pids + [p for p in (state.get("prefect_pid"), state.get("postgres_pid")) if p]


def _down(env: dict[str, str]) -> None:
    """``down`` stops every process the stack started and removes its state."""
    state = _state(env)
    pids = _stack_pids(state)
    result = run_cli(env, "down")
    assert result.code == 0, result.stderr
    assert "stopped Ray head" in result.stdout and "stopped Prefect server" in result.stdout
    assert not [p for p in pids if proctree.alive(p)]
    assert not (Path(env["AGENTCTL_DATA_DIR"]) / "stack.json").exists()
    assert not Path(state["ray_temp_dir"]).parent.exists(), "down leaves the Ray head's temp dir in /tmp"


def _up(env: dict[str, str], *flags: str) -> None:
    result = run_cli(env, "up", *flags, timeout=240)
    assert result.code == 0, result.stderr
    assert "Prefect UI: http://127.0.0.1:" in result.stdout


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, llm_server: FakeLLM, github_server: FakeGitHub
) -> Iterator[dict[str, str]]:
    """A stack of two router actors, started with an LLM key that the LLM server refuses and a GitHub
    token: requests succeed only if each brings the caller's key, and the callers have no token. Its
    Prefect server keeps its runs where ``database.url`` says."""
    root = tmp_path_factory.mktemp("stack")
    env = {
        **base_env(root, llm_server, github_server),
        "AGENTCTL_POOL__SIZE": "2",
        "AGENTCTL_DATABASE__URL": f"sqlite+aiosqlite:///{root / 'configured.db'}",
    }
    assert not (Path(env["HOME"]) / ".ray").exists()  # a fresh machine: up makes Ray's token
    _up({**env, "OPENAI_API_KEY": "sk-up-time-key-not-the-callers", "GITHUB_TOKEN": UP_TOKEN})
    yield env
    _down(env)


def test_up_reports_a_healthy_loopback_stack_and_a_second_up_changes_nothing(stack: dict[str, str]) -> None:
    status = _status(stack)
    assert status["exit_code"] == 0 and status["up"] and status["dead"] == []
    assert status["prefect"]["healthy"] and status["prefect"]["ui_url"].startswith("http://127.0.0.1:")
    assert [(a["name"], a["alive"], a["busy"]) for a in status["actors"]] == [
        ("agentctl-router-0", True, 0),
        ("agentctl-router-1", True, 0),
    ]
    before = _state(stack)
    listening = {c.laddr.ip for p in _stack_pids(before) for c in _connections(p) if c.status == "LISTEN"}
    assert listening and all(_loopback(ip) for ip in listening)
    dashboards = [proctree.cmdline(p) for p in _stack_pids(before) if "dashboard/dashboard.py" in proctree.cmdline(p)]
    assert dashboards and all("--minimal" in line for line in dashboards)  # Ray's minimal mode: no web UI

    again = run_cli(stack, "up")
    assert again.code == 0 and again.stdout.startswith("already up")
    assert _state(stack) == before
    assert [a["pid"] for a in _status(stack)["actors"]] == [a["pid"] for a in status["actors"]]


def test_up_on_a_home_without_ray_made_a_token_for_its_user_alone(stack: dict[str, str]) -> None:
    token = Path(stack["HOME"]) / ".ray" / "auth_token"
    assert token.stat().st_mode & 0o777 == 0o600 and re.fullmatch("[0-9a-f]{64}", token.read_text())


def test_the_stacks_processes_hold_no_secrets_share_one_prefect_api_and_send_no_telemetry(
    stack: dict[str, str],
) -> None:
    state = _state(stack)
    server = _environ(state["prefect_pid"])
    assert server["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    routers = _routers(state["ray_temp_dir"])
    assert len(routers) == 2
    for pid in [state["prefect_pid"], *proctree.ray_pids(state["ray_temp_dir"])]:
        held = _environ(pid)
        assert "OPENAI_API_KEY" not in held and "GITHUB_TOKEN" not in held, proctree.cmdline(pid)
    for pid in routers:
        actor = _environ(pid)
        assert (actor["PREFECT_API_URL"], actor["DO_NOT_TRACK"]) == (state["prefect_url"], "1")


def _environ(pid: int) -> dict[str, str]:
    """The environment ``pid`` was started with."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def test_status_shows_a_healthy_stack_as_text(stack: dict[str, str]) -> None:
    state, actors = _state(stack), _status(stack)["actors"]
    result = run_cli(stack, "status")
    assert result.code == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.startswith("│")}
    assert "up (started by up)" in rows["Ray"] and state["ray_address"] in rows["Ray"]
    assert "healthy" in rows["Prefect API"] and state["prefect_url"] in rows["Prefect API"]
    assert state["ui_url"] in rows["Prefect UI"]
    for actor in actors:
        assert "alive, 0 busy" in rows[actor["name"]] and f"pid {actor['pid']}" in rows[actor["name"]]
    assert "dead" not in result.stdout and "restarts them" not in result.stdout


def _connections(pid: int) -> list[Any]:
    try:
        return psutil.Process(pid).net_connections(kind="inet")
    except psutil.Error:
        return []


def test_ask_runs_on_the_stack_with_the_callers_settings_and_links_the_run(
    stack: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=250)
    llm.script("route", ROUTE)
    result = run_cli(stack, "ask", "--json", "--model", "caller-model", REQUEST)
    assert result.code == 0, result.stderr
    doc, ui = result.json(), _state(stack)["ui_url"]
    assert doc["result"]["stars"] == 42 and doc["run"]["state"] == "Completed"
    assert doc["run"]["url"] == f"{ui}/runs/flow-run/{doc['run']['id']}"
    assert [c.body["model"] for c in llm.calls("route")] == ["caller-model"]
    assert API_KEY not in result.stdout + result.stderr
    # The caller set no GitHub token: the one of whoever ran up is not used for them.
    assert github.requests and not [r for r in github.requests if UP_TOKEN in str(r.headers)]


def test_runs_lists_history_and_shows_one_run(stack: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=250)
    llm.script("route", ROUTE)
    # One-shot requests: each one's process run is its run, listed at the top (tests/test_request_run.py
    # has requests of several steps, listed as requests).
    stack = {**stack, "AGENTCTL_ROUTER__MAX_STEPS": "1"}
    asked = run_cli(stack, "ask", "--json", REQUEST).json()
    run_id = asked["run"]["id"]

    listed = run_cli(stack, "runs", "--json", "--limit", "5")
    assert listed.code == 0, listed.stderr
    row = next(r for r in listed.json() if r["id"] == run_id)
    assert (row["process"], row["kind"], row["state"]) == ("github_repo_info", "flow", "Completed")
    assert row["url"] == asked["run"]["url"] and row["duration"] > 0
    assert [r["id"] for r in run_cli(stack, "runs", "--json", "--limit", "1").json()] == [run_id]
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/missing"}))
    failed_id = run_cli(stack, "ask", "--json", "stars of acme/missing").json()["run"]["id"]
    # Each filter keeps the runs that match and leaves out the others.
    failed = run_cli(stack, "runs", "--json", "--state", "failed")
    assert failed.code == 0, failed.stderr
    ids = [r["id"] for r in failed.json()]
    assert failed_id in ids and run_id not in ids and {r["state"] for r in failed.json()} == {"Failed"}
    of_process = run_cli(stack, "runs", "--json", "--process", "github_repo_info", "--limit", "100")
    assert of_process.code == 0, of_process.stderr
    assert {run_id, failed_id} <= {r["id"] for r in of_process.json()}
    assert {r["process"] for r in of_process.json()} == {"github_repo_info"}
    others = run_cli(stack, "runs", "--json", "--process", "text_processing", "--limit", "100").json()
    assert {r["process"] for r in others} <= {"text_processing"} and not {run_id, failed_id} & {r["id"] for r in others}

    shown = run_cli(stack, "runs", "show", run_id, "--json")
    assert shown.code == 0, shown.stderr
    detail = shown.json()
    assert detail["parameters"] == {"repo": "acme/rocket"}
    assert detail["result"]["contributors"] == 250
    assert [s["state"] for s in detail["states"]] == ["Pending", "Running", "Completed"]
    assert any("acme/rocket has 42 stars" in log["message"] for log in detail["logs"])
    rich = run_cli(stack, "runs", "show", run_id)
    assert "acme/rocket has 42 stars" in rich.stdout and asked["run"]["url"] in rich.stdout


def test_what_the_stack_keeps_is_the_users_alone(stack: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=250)
    llm.script("route", ROUTE)
    assert run_cli(stack, "ask", REQUEST).code == 0

    assert open_to_others(Path(stack["AGENTCTL_DATA_DIR"])) == []
    # Ray makes its own directories world-writable: the one they are in is private.
    ray_home = Path(_state(stack)["ray_temp_dir"]).parent
    assert ray_home.stat().st_mode & 0o777 == 0o700
    assert [f for f in ray_home.rglob("*.log") if f.stat().st_mode & 0o077] == []


def test_runs_errors_name_the_fix(stack: dict[str, str]) -> None:
    bad_state = run_cli(stack, "runs", "--state", "finished")
    assert bad_state.code == 2 and "use one of" in bad_state.stderr and "Traceback" not in bad_state.stderr
    missing = run_cli(stack, "runs", "show", "00000000-0000-0000-0000-000000000000")
    assert missing.code == 1 and "agentctl runs" in missing.stderr
    assert run_cli(stack, "runs", "show", "abc").code == 2


def test_the_configured_database_url_keeps_the_stacks_runs(
    stack: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=250)
    llm.script("route", ROUTE)
    run_id = run_cli(stack, "ask", "--json", REQUEST).json()["run"]["id"]
    url = stack["AGENTCTL_DATABASE__URL"]
    assert _status(stack)["prefect"]["database"] == url
    with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///"))) as database:
        stored = [row[0] for row in database.execute("SELECT id FROM flow_run")]
    assert run_id in stored


def test_repl_and_processes_run_use_the_stack_and_leaving_stops_nothing(
    stack: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=250)
    llm.script("route", ROUTE)
    before, actors = _state(stack), [a["pid"] for a in _status(stack)["actors"]]
    lines = f"/json on\n{REQUEST}\n/run github_repo_info repo=acme/rocket\n/exit\n"
    repl = subprocess.run([AGENTCTL, "repl"], env=stack, input=lines, text=True, capture_output=True, timeout=180)
    ran = run_cli(stack, "processes", "run", "github_repo_info", "--param", "repo=acme/rocket", "--json")

    assert repl.returncode == 0 and ran.code == 0, repl.stderr + ran.stderr
    runs = [doc["run"] for doc in _documents(repl.stdout)] + [ran.json()["run"]]
    assert len(runs) == 3 and {r["state"] for r in runs} == {"Completed"}
    # The stack's Prefect API has them (a temporary stack has a server of its own), with its UI's links.
    of_process = ("--process", "github_repo_info")  # runs of requests are listed under their requests
    listed = {r["id"] for r in run_cli(stack, "runs", "--json", "--limit", "100", *of_process).json()}
    assert {r["id"] for r in runs} <= listed
    assert all(r["url"].startswith(before["ui_url"]) for r in runs)
    assert "not using the stack" not in repl.stdout + repl.stderr + ran.stdout + ran.stderr
    assert _state(stack) == before and all(proctree.alive(p) for p in _stack_pids(before))
    assert [a["pid"] for a in _status(stack)["actors"]] == actors


def _documents(stdout: str) -> list[dict[str, Any]]:
    """The JSON documents a piped REPL printed one after another."""
    decoder, documents, at = json.JSONDecoder(), [], 0
    while (start := stdout.find("{", at)) != -1:
        document, at = decoder.raw_decode(stdout, start)
        documents.append(document)
    return documents


def test_standalone_calls_and_calls_for_other_settings_leave_the_stack_alone(
    stack: dict[str, str], llm: FakeLLM, github: FakeGitHub, prefect_api: str, ray_cluster: dict[str, str]
) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=250)
    llm.script("route", ROUTE, ROUTE, ROUTE)
    before, actors = _state(stack), [a["pid"] for a in _status(stack)["actors"]]
    asked = run_cli(stack, "ask", "--standalone", "--json", REQUEST)
    ran = run_cli(stack, "processes", "run", "--standalone", "github_repo_info", "--param", "repo=acme/rocket")
    lines = f"/json on\n{REQUEST}\n"
    repl = subprocess.run(
        [AGENTCTL, "repl", "--standalone"], env=stack, input=lines, text=True, capture_output=True, timeout=180
    )
    other = run_cli({**stack, "PREFECT_API_URL": prefect_api, **ray_cluster}, "ask", "--json", REQUEST)

    assert [asked.code, ran.code, repl.returncode, other.code] == [0, 0, 0, 0], asked.stderr + ran.stderr
    standalone = [asked.json()["run"], *[d["run"] for d in _documents(repl.stdout)]]
    assert len(standalone) == 2 and {r["state"] for r in standalone} == {"Completed"}
    assert "Completed" in ran.stdout and before["ui_url"] not in ran.stdout  # rich: no link to the stack's UI
    said = [asked.stdout + asked.stderr, ran.stdout + ran.stderr, repl.stdout + repl.stderr]
    assert not [text for text in said if "not using the stack" in text]  # asked for: no warning
    [warning] = [log["message"] for log in other.json()["logs"] if "not using the stack" in log["message"]]
    assert warning.startswith("not using the stack of agentctl up: ray.address is") and "temporary" in warning
    assert httpx.get(f"{prefect_api}/flow_runs/{other.json()['run']['id']}", trust_env=False).status_code == 200
    listed = {r["id"] for r in run_cli(stack, "runs", "--json", "--limit", "100").json()}
    assert not {r["id"] for r in [*standalone, other.json()["run"]]} & listed
    assert _state(stack) == before and [a["pid"] for a in _status(stack)["actors"]] == actors


def test_ctrl_c_of_an_ask_on_the_stack_cancels_its_run_in_the_actor(
    stack: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    with _asking_while_github_holds(stack, llm, github) as asking:
        os.killpg(asking.pid, signal.SIGINT)
        _, stderr = asking.communicate(timeout=60)
        # The actors outlive the CLI: the request must end there too, while GitHub still holds it.
        assert _newest_run_state(stack, "Cancelled") == "Cancelled"
        assert [a["busy"] for a in _status(stack)["actors"]] == [0, 0]
    assert asking.returncode == 130 and stderr.splitlines()[-1:] == ["interrupted"], stderr


@contextmanager
def _asking_while_github_holds(
    env: dict[str, str], llm: FakeLLM, github: FakeGitHub, *flags: str
) -> Iterator[subprocess.Popen[str]]:
    """An ``ask`` whose run has reached GitHub, which holds the request until the block ends."""
    github.add_repo("acme/rocket", stars=42, contributors=250)
    gate = github.hold()
    llm.script("route", ROUTE)
    asking = subprocess.Popen(
        [AGENTCTL, "ask", *flags, REQUEST],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert github.arrived.wait(timeout=120)
        yield asking
    finally:
        gate.set()
        if asking.poll() is None:
            asking.kill()


def _newest_run_state(env: dict[str, str], expected: str) -> str:
    """The state of the newest run: ``expected`` once it has it, else the last one seen in 30 s.

    The actor records the cancellation after the CLI has exited, so it is awaited.
    """
    deadline = time.monotonic() + 30
    while True:
        state = run_cli(env, "runs", "--json", "--limit", "1").json()[0]["state"]
        if state == expected or time.monotonic() > deadline:
            return str(state)


def test_an_actor_killed_mid_request_is_replaced_and_its_run_marked_crashed(
    stack: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    with _asking_while_github_holds(stack, llm, github, "--json") as asking:
        busy = [a for a in _status(stack)["actors"] if a["busy"]]
        assert len(busy) == 1
        os.kill(busy[0]["pid"], signal.SIGKILL)
        stdout, stderr = asking.communicate(timeout=120)
    assert asking.returncode == 1, stderr
    error = json.loads(stdout)["error"]["message"]
    assert "router actor died" in error and "marked Crashed" in error and "ask again" in error
    run_id = UUID.search(error)
    assert run_id is not None
    assert run_cli(stack, "runs", "show", run_id.group(), "--json").json()["state"] == "Crashed"

    after = _status(stack)
    assert after["up"] and len(after["actors"]) == 2 and all(a["alive"] for a in after["actors"]), after
    assert busy[0]["pid"] not in [a["pid"] for a in after["actors"]]
    gate_free = github.hold()
    gate_free.set()
    llm.script("route", ROUTE)
    assert run_cli(stack, "ask", REQUEST).code == 0


def test_an_actor_that_died_between_requests_is_replaced_by_the_next_and_up_restarts_dead_actors(
    stack: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=250)
    first, second = _status(stack)["actors"]
    os.kill(first["pid"], signal.SIGKILL)  # idle: requests one after another go to the first actor
    assert [a["alive"] for a in _status(stack)["actors"]] == [False, True]  # Ray knows it died
    llm.script("route", ROUTE)
    asked = run_cli(stack, "ask", REQUEST)
    assert asked.code == 0 and "not using the stack" not in asked.stdout + asked.stderr, asked.stderr
    replaced = _status(stack)["actors"]
    assert [a["alive"] for a in replaced] == [True, True] and first["pid"] not in [a["pid"] for a in replaced]

    os.kill(second["pid"], signal.SIGKILL)
    _gone([second["pid"]])
    assert run_cli(stack, "up").stdout.startswith("already up")
    after = _status(stack)["actors"]
    assert [a["alive"] for a in after] == [True, True] and second["pid"] not in [a["pid"] for a in after]

    other = run_cli({**stack, "AGENTCTL_PROCESSES__DISABLE": "text_processing"}, "up")
    assert other.code == 2 and "agentctl down, then up" in other.stderr and "Traceback" not in other.stderr
    assert [a["pid"] for a in _status(stack)["actors"]] == [a["pid"] for a in after]


def _stale_stack_is_reported_and_replaced(
    env: dict[str, str], old: dict[str, Any], llm: FakeLLM, github: FakeGitHub
) -> None:
    """A stack whose Prefect server died: ``status`` names it, a call goes around it, ``up`` replaces it."""
    old_ray = proctree.ray_pids(old["ray_temp_dir"])
    status = _status(env)
    assert status["exit_code"] == 1 and "Prefect server" in status["dead"]
    assert "agentctl up restarts them" in run_cli(env, "status").stdout

    github.add_repo("acme/rocket", stars=42, contributors=250)
    llm.script("route", ROUTE)
    asked = run_cli(env, "ask", REQUEST)
    assert asked.code == 0, asked.stderr
    assert "not using the stack of agentctl up: its Prefect server died" in asked.stdout + asked.stderr

    _up(env)
    new = _state(env)
    assert new["prefect_pid"] != old["prefect_pid"] and proctree.alive(new["prefect_pid"])
    assert old_ray and not [p for p in old_ray if proctree.alive(p)]  # the stale head was stopped
    assert _status(env)["up"]


def _postgres_missing() -> str | None:
    from agentctl.errors import StackError
    from agentctl.stack.postgres import binaries

    try:
        binaries()
    except StackError as exc:
        return str(exc)
    return None


POSTGRES_MISSING = _postgres_missing()
IN_CI = os.environ.get("CI") == "true"  # where .ci/run installs PostgreSQL: there its absence is a failure


@pytest.mark.skipif(
    POSTGRES_MISSING is not None and not IN_CI, reason=f"PostgreSQL is not installed: {POSTGRES_MISSING}"
)
def test_up_postgres_runs_prefect_on_a_local_postgresql(llm: FakeLLM, github: FakeGitHub) -> None:
    assert POSTGRES_MISSING is None, f"CI runs the PostgreSQL test: {POSTGRES_MISSING}"
    # As root PostgreSQL runs as the postgres user, which cannot enter a private (0700) HOME.
    home = Path(tempfile.mkdtemp(prefix="agentctl-pg-"))
    env = base_env(home, llm, github)
    _up(env, "--postgres")
    try:
        _postgres_stack_serves_and_stops(env, home, llm, github)
    finally:
        run_cli(env, "down")
        shutil.rmtree(home_of(Path(env["AGENTCTL_DATA_DIR"])), ignore_errors=True)  # as root: not under home
        shutil.rmtree(home, ignore_errors=True)


def _postgres_stack_serves_and_stops(env: dict[str, str], home: Path, llm: FakeLLM, github: FakeGitHub) -> None:
    status = _status(env)
    assert status["up"] and status["prefect"]["database"].startswith("postgresql+asyncpg://agentctl@127.0.0.1:")
    cluster = Path(_state(env)["postgres_data"]).parent
    password = (cluster / "password").read_text().strip()
    assert open_to_others(home) == [] and open_to_others(cluster) == []
    assert password not in json.dumps(status) + run_cli(env, "status").stdout
    assert password not in (home / "data" / "stack.json").read_text()

    github.add_repo("acme/rocket", stars=42, contributors=250)
    llm.script("route", ROUTE)
    asked = run_cli(env, "ask", "--json", REQUEST)
    assert asked.code == 0, asked.stderr
    assert run_cli(env, "runs", "--json").json()[0]["id"] == asked.json()["request_run"]["id"]
    result = run_cli(env, "down")
    assert "stopped PostgreSQL" in result.stdout
    assert not (cluster / "data" / "postmaster.pid").exists()


def test_up_postgres_without_postgresql_names_the_package(tmp_path: Path, llm: FakeLLM, github: FakeGitHub) -> None:
    env = {**base_env(tmp_path, llm, github), "AGENTCTL_DATABASE__POSTGRES_BIN": str(tmp_path / "no-postgresql")}
    result = run_cli(env, "up", "--postgres")
    assert result.code == 1
    assert "apt-get install postgresql" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "stack.json").exists()


def test_an_interrupted_up_leaves_nothing_running(tmp_path: Path, llm: FakeLLM, github: FakeGitHub) -> None:
    env = base_env(tmp_path, llm, github)
    state_file = tmp_path / "data" / "stack.json"
    starting = subprocess.Popen(
        [AGENTCTL, "up"], env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        recorded = _first_recorded_server(state_file, starting)
        os.killpg(starting.pid, signal.SIGINT)  # Ctrl-C while up waits for the server it started
        _, stderr = starting.communicate(timeout=120)
    finally:
        if starting.poll() is None:
            os.killpg(starting.pid, signal.SIGKILL)
    assert starting.returncode == 130 and stderr.splitlines()[-1:] == ["interrupted"], stderr
    assert not proctree.alive(recorded["prefect_pid"])
    _gone(_alive_with(str(tmp_path / "data")))  # Ray's daemons too, however far up got
    assert not state_file.exists()


def _first_recorded_server(state_file: Path, starting: subprocess.Popen[str]) -> dict[str, Any]:
    """The state up has written once it started the Prefect server (written before it waits for it)."""
    deadline = time.monotonic() + 60
    while starting.poll() is None and time.monotonic() < deadline:
        try:
            recorded: dict[str, Any] = json.loads(state_file.read_text())
        except (OSError, ValueError):  # not written yet
            recorded = {}
        if recorded.get("prefect_pid"):
            return recorded
        time.sleep(0.05)  # polling a file another process writes
    raise AssertionError("up recorded no Prefect server")


def test_calls_while_up_starts_take_a_temporary_stack_and_a_second_up_waits_for_it(
    tmp_path: Path, llm: FakeLLM, github: FakeGitHub
) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    env = {**base_env(tmp_path, llm, github), "AGENTCTL_PROCESSES__PATHS": str(HELD / "held.py")}
    first = subprocess.Popen(
        [AGENTCTL, "up"], env={**env, "HELD_BY": str(gate)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    second = None
    try:
        with _holding(gate):  # up warms its actors, held in their import of the processes
            status = _status(env)
            assert status["starting"] and not status["up"], status
            second = subprocess.Popen(
                [AGENTCTL, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            assert _line_of(second.stderr).startswith("waiting for another agentctl up or down to finish")
            github.add_repo("acme/rocket", stars=42, contributors=250)
            llm.script("route", ROUTE)
            asked = run_cli(env, "ask", "--json", REQUEST)
            assert asked.code == 0 and asked.json()["run"]["state"] == "Completed", asked.stderr
            warning = "not using the stack of agentctl up: agentctl up is still starting it"
            assert warning in asked.stdout
        ended = [first.communicate(timeout=240), second.communicate(timeout=240)]
        assert [first.returncode, second.returncode] == [0, 0], ended  # stdout and stderr of each
        assert [out.splitlines()[0] for out, _ in ended] == ["up", "already up"]
        servers = [p for p in psutil.process_iter(["cmdline", "environ"]) if _prefect_of(p, tmp_path)]
        assert [p.pid for p in servers] == [_state(env)["prefect_pid"]]
        assert _status(env)["up"]
    finally:
        for up in (first, second):
            if up is not None and up.poll() is None:
                up.kill()
        run_cli(env, "down")


HELD = Path(__file__).parent / "fixtures" / "held"


def _line_of(stream: IO[str] | None, timeout: float = 120) -> str:
    """The next line ``stream`` gives within ``timeout`` seconds, else ''."""
    assert stream is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return lines[0] if lines else ""


@contextmanager
def _holding(fifo: Path, then: bytes = b"") -> Iterator[None]:
    """Hold the reader of ``fifo``: open it to write (which waits for a reader); at the end write
    ``then`` and close it."""
    opened: list[int] = []
    opener = threading.Thread(target=lambda: opened.append(os.open(fifo, os.O_WRONLY)), daemon=True)
    opener.start()
    opener.join(timeout=180)
    if not opened:  # let the opener go: a reader of our own
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        raise AssertionError(f"nothing opened {fifo} to read")
    try:
        yield
    finally:
        os.write(opened[0], then)
        os.close(opened[0])


def test_an_up_that_fails_stops_what_it_had_started(tmp_path: Path, llm: FakeLLM, github: FakeGitHub) -> None:
    # Ray's socket paths may have 107 bytes: under this temp dir they have more, and `ray start` fails
    # after up has started its Prefect server.
    temp = tmp_path / ("t" * 80)
    temp.mkdir()
    env = {**base_env(tmp_path, llm, github), "TMPDIR": str(temp)}

    result = run_cli(env, "up")

    assert result.code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ray start failed: "), line
    assert (tmp_path / "data" / "prefect" / "server.log").exists()  # the server had started
    _gone(_alive_with(str(tmp_path / "data")))
    assert not (tmp_path / "data" / "stack.json").exists()


def _prefect_of(process: psutil.Process, home: Path) -> bool:
    try:
        uvicorn = "uvicorn" in " ".join(process.info["cmdline"] or [])
        return uvicorn and str(home) in (process.info["environ"] or {}).get("PREFECT_HOME", "")
    except (psutil.Error, TypeError):
        return False


def test_a_state_file_of_a_stack_gone_since_is_reported_and_cleaned_up(
    tmp_path: Path, llm: FakeLLM, github: FakeGitHub
) -> None:
    env = base_env(tmp_path, llm, github)
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs, as after a reboot
    state_file = tmp_path / "data" / "stack.json"
    state_file.parent.mkdir(parents=True)
    state_file.write_text(
        json.dumps(
            {
                "ray_address": "127.0.0.1:1",
                "ray_temp_dir": str(tmp_path / "ray"),
                "prefect_url": "http://127.0.0.1:1/api",
                "prefect_pid": gone.pid,
                "actors": ["agentctl-router-0"],
                "started_at": 0,
                "ready": True,
            }
        )
    )

    status = _status(env)
    assert status["exit_code"] == 1 and {"Ray head", "Prefect server"} <= set(status["dead"])
    down = run_cli(env, "down")
    assert down.code == 0 and down.stdout.strip() == "nothing was up"
    assert not state_file.exists()


def test_an_unreadable_state_file_is_named_not_ignored(tmp_path: Path, llm: FakeLLM, github: FakeGitHub) -> None:
    env = base_env(tmp_path, llm, github)
    state_file = tmp_path / "data" / "stack.json"
    state_file.parent.mkdir(parents=True)
    state_file.write_text("{not json")
    for command in (["status"], ["up"], ["down"]):
        result = run_cli(env, *command)
        assert result.code == 1, command
        assert f"{state_file} is not a stack state" in result.stderr and "remove the file" in result.stderr
        assert "Traceback" not in result.stderr
    assert state_file.read_text() == "{not json"  # nothing was started over it, nothing deleted


def test_up_uses_a_configured_ray_and_prefect_and_down_leaves_them_running(
    tmp_path: Path, llm: FakeLLM, github: FakeGitHub, prefect_api: str
) -> None:
    env = base_env(tmp_path, llm, github)
    address, head = start_ray_head(env)
    env = {**env, "RAY_ADDRESS": address, "PREFECT_API_URL": prefect_api}
    try:
        started = run_cli(env, "up", timeout=240)
        assert started.code == 0, started.stderr
        state = _state(env)
        assert (state["ray_address"], state["ray_temp_dir"]) == (address, None)
        assert (state["prefect_url"], state["prefect_pid"]) == (prefect_api, None)
        routers = _routers(head)
        assert routers, "the actors run on the configured Ray"
        github.add_repo("acme/rocket", stars=42, contributors=250)
        llm.script("route", ROUTE)
        asked = run_cli(env, "ask", REQUEST)
        assert asked.code == 0 and "not using the stack" not in asked.stdout + asked.stderr
        stopped = run_cli(env, "down")
        assert stopped.stdout.strip().splitlines()[-1] == "stopped router actors agentctl-router-0"
        assert stopped.stdout.startswith("stopped gateway (pid ")  # the stack's own, before the actors
        _gone(routers)  # the actors went (ray.kill returns before they exit), the head stays
        assert proctree.ray_pids(head)
        assert httpx.get(f"{prefect_api}/health", trust_env=False).status_code == 200
    finally:
        run_cli(env, "down")
        stop_ray_head(head)


def _routers(temp_dir: str) -> list[int]:
    return [p for p in proctree.ray_pids(temp_dir) if "RouterActor" in proctree.cmdline(p)]


@pytest.fixture
def own_stack(tmp_path: Path, llm: FakeLLM, github: FakeGitHub) -> Iterator[dict[str, str]]:
    """A stack of this test's own, for killing its pieces."""
    env = base_env(tmp_path, llm, github)
    _up(env)
    yield env
    run_cli(env, "down")


# A bound, not a measurement: the broken behaviour (waiting out Prefect's client retries) takes
# ~160 s, and an ask that notices the dead server ends in seconds.
DEAD_BOUND = 60


def test_the_stacks_server_then_its_raylet_killed_mid_ask_end_the_ask_with_one_line_and_up_recovers(
    own_stack: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    _prefect_killed_mid_ask(own_stack, llm, github)
    _raylet_killed_mid_ask(own_stack, llm, github)
    _down(own_stack)


def _prefect_killed_mid_ask(own_stack: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    old = _state(own_stack)
    with _asking_while_github_holds(own_stack, llm, github) as asking:
        os.kill(old["prefect_pid"], signal.SIGKILL)
        stdout, stderr = asking.communicate(timeout=DEAD_BOUND)
    assert asking.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    assert "Prefect server" in errors[0] and "died" in errors[0] and "agentctl up" in errors[0]
    assert "cannot be marked" in errors[0]
    _stale_stack_is_reported_and_replaced(own_stack, old, llm, github)


def test_a_configured_prefect_api_killed_mid_ask_ends_the_ask_with_one_line(
    tmp_path: Path, llm: FakeLLM, github: FakeGitHub, ray_cluster: dict[str, str]
) -> None:
    from agentctl.stack.prefect_server import LocalPrefectAPI

    api = LocalPrefectAPI(tmp_path / "prefect-own", telemetry=False)
    api.start()
    try:
        api.wait_ready(120)
        env = {**base_env(tmp_path, llm, github), "PREFECT_API_URL": api.url, **ray_cluster}
        with _asking_while_github_holds(env, llm, github) as asking:
            assert api.pid is not None
            os.killpg(api.pid, signal.SIGKILL)
            _, stderr = asking.communicate(timeout=DEAD_BOUND)
    finally:
        api.stop()
    assert asking.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    assert api.url in errors[0] and "PREFECT_API_URL" in errors[0]


def _raylet_killed_mid_ask(own_stack: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    """A raylet killed mid-ask: one JSON document; ``status`` names the dead head; ``up`` recovers."""
    temp_dir = _state(own_stack)["ray_temp_dir"]
    with _asking_while_github_holds(own_stack, llm, github, "--json") as asking:
        raylets = proctree.ray_stop_order(proctree.ray_pids(temp_dir))[0]
        assert raylets
        for pid in raylets:
            os.kill(pid, signal.SIGKILL)
        stdout, stderr = asking.communicate(timeout=DEAD_BOUND)
    assert asking.returncode == 1, stderr
    error = json.loads(stdout)["error"]["message"]  # Ray's own dump would make this no JSON
    assert "Ray head" in error and "agentctl up" in error and "took its place" not in error
    assert [line for line in stderr.splitlines() if line.strip()] == [f"error: {error}"], stderr

    # A bound, not a measurement: this took 61 s with a dead head. (A call going around a dead piece is
    # tested above: the same check as status's.)
    status = run_cli(own_stack, "status", "--json", timeout=DEAD_BOUND)
    assert status.code == 1 and "Ray head" in status.json()["dead"]
    _up(own_stack)
    assert _status(own_stack)["up"]
