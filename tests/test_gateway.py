"""The stack's gateway over plain HTTP (httpx), against a real ``agentctl up`` stack with its own HOME:
the token (0600, never printed) refused and accepted; a streamed ask; a run by name; a client that
goes away cancels its request; concurrent clients stay apart; the OpenAPI page; status, down and a
second up that heals a dead gateway."""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import TypeAdapter

from agentctl.events import ChatReply, Event, Result, Routed
from agentctl.stack import proctree
from tests.conftest import API_KEY, base_env, run_cli
from tests.servers import FakeGitHub, FakeLLM, Reply, say, tool_call
from tests.test_stack import _down, _up

EVENTS: TypeAdapter[Event] = TypeAdapter(Event)
UP_KEY = "sk-up-time-key-not-the-callers"
SECRETS = {"OPENAI_API_KEY": API_KEY}

T = TypeVar("T")


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, llm_server: FakeLLM, github_server: FakeGitHub
) -> Iterator[dict[str, str]]:
    """A stack of two router actors, started with an LLM key the LLM server refuses: a request
    succeeds only when it brings its caller's key."""
    root = tmp_path_factory.mktemp("gateway")
    env = {**base_env(root, llm_server, github_server), "AGENTCTL_POOL__SIZE": "2"}
    _up({**env, "OPENAI_API_KEY": UP_KEY})
    yield env
    _down(env)


def _state(env: dict[str, str]) -> dict[str, Any]:
    return json.loads((Path(env["AGENTCTL_DATA_DIR"]) / "stack.json").read_text())


def _url(env: dict[str, str]) -> str:
    return str(_state(env)["gateway_url"])


def _token(env: dict[str, str]) -> str:
    return (Path(env["AGENTCTL_DATA_DIR"]) / "gateway_token").read_text().strip()


def _auth(env: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {_token(env)}"}


def _events(response: httpx.Response) -> list[Any]:
    return [EVENTS.validate_json(line) for line in response.iter_lines() if line]


def _ask(env: dict[str, str], request: str, **body: Any) -> list[Any]:
    payload = {"request": request, "secrets": SECRETS, **body}
    with httpx.stream("POST", f"{_url(env)}/v1/ask", json=payload, headers=_auth(env), timeout=120) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("application/x-ndjson")
        return _events(response)


def test_up_starts_the_gateway_on_loopback_with_a_private_token_it_does_not_print(stack: dict[str, str]) -> None:
    state = _state(stack)
    assert state["gateway_url"].startswith("http://127.0.0.1:") and proctree.alive(state["gateway_pid"])
    token = Path(stack["AGENTCTL_DATA_DIR"]) / "gateway_token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    status = run_cli(stack, "status", "--json")
    assert status.code == 0 and status.json()["gateway"] == {
        "url": state["gateway_url"],
        "pid": state["gateway_pid"],
        "alive": True,
        "mcp_url": f"{state['gateway_url']}/mcp",
    }
    shown = run_cli(stack, "status")
    assert "gateway" in shown.stdout and _token(stack) not in shown.stdout + shown.stderr


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-the-token"}, {"Authorization": "Basic eDp5"}])
def test_a_request_without_the_token_gets_401_and_nothing_runs(
    stack: dict[str, str], llm: FakeLLM, headers: dict[str, str]
) -> None:
    llm.script("route", say("should never be asked"))
    for method, path in [("GET", "/v1/health"), ("POST", "/v1/ask"), ("GET", "/v1/runs"), ("GET", "/v1/processes")]:
        body = {"request": "hello", "secrets": SECRETS} if method == "POST" else None
        response = httpx.request(method, f"{_url(stack)}{path}", json=body, headers=headers, timeout=30)
        assert response.status_code == 401, (path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
    assert llm.calls() == []


def test_the_api_is_documented_by_its_openapi_page(stack: dict[str, str]) -> None:
    schema = httpx.get(f"{_url(stack)}/openapi.json", timeout=30).json()
    assert {
        "/v1/ask",
        "/v1/processes/{name}/runs",
        "/v1/processes",
        "/v1/runs",
        "/v1/runs/{run_id}",
        "/v1/runs/{run_id}/cancel",
        "/v1/health",
    } <= set(schema["paths"])
    assert "application/x-ndjson" in schema["paths"]["/v1/ask"]["post"]["responses"]["200"]["content"]
    assert httpx.get(f"{_url(stack)}/docs", timeout=30).status_code == 200


def test_an_ask_streams_its_events_with_the_callers_key(
    stack: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=3)
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))
    events = _ask(stack, "Give me the stars and contributors for acme/rocket")
    routed = [e for e in events if isinstance(e, Routed)]
    results = [e for e in events if isinstance(e, Result)]
    assert [r.process for r in routed] == ["github_repo_info"]
    assert results[0].value["stars"] == 42 and results[0].run.state == "Completed"
    assert isinstance(events[-2], ChatReply) or any(isinstance(e, ChatReply) for e in events)
    runs = httpx.get(f"{_url(stack)}/v1/runs", params={"limit": 1}, headers=_auth(stack), timeout=30).json()
    assert runs[0]["state"] == "Completed"
    one = httpx.get(f"{_url(stack)}/v1/runs/{runs[0]['id']}", headers=_auth(stack), timeout=30)
    assert one.status_code == 200 and one.json()["id"] == runs[0]["id"]


def test_a_process_runs_by_name_without_the_llm(stack: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    github.add_repo("acme/tiny", stars=7, contributors=1)
    url = f"{_url(stack)}/v1/processes/github_repo_info/runs"
    body = {"arguments": {"repo": "acme/tiny"}, "secrets": SECRETS}
    with httpx.stream("POST", url, json=body, headers=_auth(stack), timeout=120) as response:
        events = _events(response)
    assert [e.value["stars"] for e in events if isinstance(e, Result)] == [7]
    assert llm.calls() == []
    listed = httpx.get(f"{_url(stack)}/v1/processes", headers=_auth(stack), timeout=60).json()
    assert "github_repo_info" in {p["name"] for p in listed}


def test_settings_the_stack_cannot_serve_are_refused_in_one_line(stack: dict[str, str]) -> None:
    body = {"request": "hi", "secrets": SECRETS, "settings": {"processes": {"disable": ["text_transform"]}}}
    response = httpx.post(f"{_url(stack)}/v1/ask", json=body, headers=_auth(stack), timeout=30)
    assert response.status_code == 409 and "other processes" in response.json()["message"]
    bad = httpx.post(f"{_url(stack)}/v1/ask", json={**body, "settings": {"pool": {"size": 0}}}, headers=_auth(stack))
    assert bad.status_code == 400 and bad.json()["message"].startswith("settings: pool.size")


def test_a_client_that_goes_away_cancels_its_request(stack: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=3)
    gate = github.hold()
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))
    payload = {"request": "stars of acme/rocket", "secrets": SECRETS}
    try:
        with httpx.stream("POST", f"{_url(stack)}/v1/ask", json=payload, headers=_auth(stack), timeout=120) as response:
            lines = response.iter_lines()
            first = EVENTS.validate_json(next(line for line in lines if line))  # past the keep-alive
            assert isinstance(first, Routed)
            if not github.arrived.wait(timeout=20):
                gate.set()
                raise AssertionError([first, *lines])
        # The connection is closed: the request must end in its actor while GitHub still holds it.
        assert _newest_state(stack, "Cancelled") == "Cancelled"
        assert _idle(stack)
    finally:
        gate.set()


def _newest_state(env: dict[str, str], expected: str) -> str:
    """The newest run's state: ``expected`` once it has it, else the last seen in 30 s (the actor
    records the cancel after the client has gone: polled with a deadline)."""
    deadline = time.monotonic() + 30
    while True:
        runs = httpx.get(f"{_url(env)}/v1/runs", params={"limit": 1}, headers=_auth(env), timeout=30).json()
        if runs[0]["state"] == expected or time.monotonic() > deadline:
            return str(runs[0]["state"])
        time.sleep(0.2)


def _idle(env: dict[str, str]) -> bool:
    """Whether every actor is idle within 30 s (polled: a cancel reaches the actor after the client left)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = httpx.get(f"{_url(env)}/v1/status", headers=_auth(env), timeout=30).json()
        if all(a["busy"] == 0 for a in status["actors"]):
            return True
        time.sleep(0.2)
    return False


def test_concurrent_clients_stay_apart(stack: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    repos = {"acme/one": 1, "acme/two": 2, "acme/three": 3}
    for name, stars in repos.items():
        github.add_repo(name, stars=stars, contributors=1)
    llm.responder = _route_to_named_repo
    github.meet(*(f"/repos/{name}" for name in repos))  # each waits until all three are in flight
    found = at_once(lambda name: _ask(stack, f"stars of {name}"), list(repos))
    assert github.met
    for name, stars in repos.items():
        results = [e for e in found[name] if isinstance(e, Result)]
        assert [(r.value["full_name"], r.value["stars"]) for r in results] == [(name, stars)]


def _route_to_named_repo(body: dict[str, Any]) -> Reply:
    if body["messages"][-1]["role"] == "tool":  # the follow-up with the result: the answer
        return say("done")
    request = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    return tool_call("github_repo_info", {"repo": request.split()[-1]})


@pytest.fixture
def own_stack(tmp_path: Path, llm: FakeLLM, github: FakeGitHub) -> Iterator[dict[str, str]]:
    """A stack of this test's own, for killing its gateway."""
    env = base_env(tmp_path, llm, github)
    _up(env)
    yield env
    run_cli(env, "down")


def test_a_dead_gateway_shows_in_status_and_a_second_up_heals_it(own_stack: dict[str, str]) -> None:
    stack = own_stack
    old = _state(stack)["gateway_pid"]
    os.kill(old, signal.SIGKILL)
    assert _gone(old)
    status = run_cli(stack, "status", "--json")
    assert status.code == 1 and "gateway" in status.json()["dead"]
    again = run_cli(stack, "up", timeout=240)
    assert again.code == 0 and "already up" in again.stdout, again.stderr
    new = _state(stack)["gateway_pid"]
    assert new != old and httpx.get(f"{_url(stack)}/v1/health", headers=_auth(stack), timeout=30).is_success
    down = run_cli(stack, "down")
    assert f"stopped gateway (pid {new})" in down.stdout and _gone(new)


def _gone(pid: int) -> bool:
    """Whether ``pid`` is gone within 15 s (polled: a killed process is reaped by its parent)."""
    deadline = time.monotonic() + 15
    while proctree.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not proctree.alive(pid)


def at_once(work: Callable[[str], T], names: list[str]) -> dict[str, T]:
    """``work`` for each name, each in a thread of its own, all started before any is waited for."""
    found: dict[str, T] = {}

    def one(name: str) -> None:
        found[name] = work(name)

    threads = [threading.Thread(target=one, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    return found
