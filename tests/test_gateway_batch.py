"""``agentctl batch`` through the stack's gateway (``POST /v1/batch``), against a real ``agentctl up``
stack with its own HOME: the same records as through Ray, with no Ray, Prefect or openai in the CLI
process; items streamed in and records streamed out over plain HTTP, the caller's secrets never
echoed; a batch whose client goes away mid-way keeps what finished and its runs in flight end
Cancelled."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import h11
import httpx
import pytest

from tests.conftest import API_KEY, base_env, run_cli
from tests.servers import FakeGitHub, FakeLLM, Reply, say, tool_call
from tests.test_cli_batch import _asked_for, _flow_runs_of, _records, _wait_for
from tests.test_gateway import _auth, _gone, _idle, _state, _url
from tests.test_gateway_cli import HEAVY, WARNED, _imports
from tests.test_stack import _down, _up

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, llm_server: FakeLLM, github_server: FakeGitHub
) -> Iterator[dict[str, str]]:
    """A stack of two router actors, started with an LLM key the LLM server refuses: an item
    succeeds only when the batch brings its caller's key."""
    root = tmp_path_factory.mktemp("gateway-batch")
    env = {**base_env(root, llm_server, github_server), "AGENTCTL_POOL__SIZE": "2"}
    _up({**env, "OPENAI_API_KEY": "sk-up-time-key-not-the-callers"})
    yield env
    _down(env)


def _route_by_repo(body: dict[str, Any]) -> Reply:
    """A request naming ``acme/...`` calls github_repo_info with it, then answers; others are chat."""
    if body["messages"][-1]["role"] == "tool":
        return say("done")
    words = body["messages"][-1]["content"].split()
    repo = next((word for word in words if word.startswith("acme/")), None)
    return tool_call("github_repo_info", {"repo": repo}) if repo else say("Paris.")


def _masked(record: dict[str, Any]) -> str:
    """A record with what differs between two runs of one item hidden: ids, times, run names, durations."""
    text = json.dumps(record, sort_keys=True)
    text = UUID.sub("<id>", text)
    text = re.sub(r'"(time|start_time|end_time|duration)": [^,}]+', r'"\1": <n>', text)
    text = re.sub(r"\b[a-z]+-[a-z]+(-[0-9a-f]+)?\b", "<name>", text)  # Prefect's run names
    text = re.sub(r"\bcall_\d+\b", "<call>", text)
    return re.sub(r"\d+\.\d+", "<n>", text)


def test_a_batch_through_the_gateway_writes_what_the_ray_path_writes(
    stack: dict[str, str], llm: FakeLLM, github: FakeGitHub, tmp_path: Path
) -> None:
    github.add_repo("acme/rocket", stars=7, contributors=3)
    github.add_repo("acme/engine", stars=9, contributors=1)
    llm.responder = _route_by_repo
    requests = tmp_path / "requests.jsonl"
    requests.write_text(
        '{"id": "rocket", "request": "stars for acme/rocket"}\n'
        '{"id": "ghost", "request": "stars for acme/ghost"}\n'
        "this line is no JSON\n"
        '{"id": "engine", "request": "stars for acme/engine"}\n'
        '{"id": 5, "request": "capital of France?"}\n'
    )
    warm_out, ray_out = tmp_path / "warm.jsonl", tmp_path / "ray.jsonl"
    one_shot = {**stack, "AGENTCTL_ROUTER__MAX_STEPS": "1"}  # a failed run is its item's failure

    warm, modules = _imports(one_shot, "batch", str(requests), "--out", str(warm_out))
    ray = run_cli({**one_shot, "AGENTCTL_GATEWAY__ENABLED": "false"}, "batch", str(requests), "--out", str(ray_out))

    assert not modules & set(HEAVY), modules & set(HEAVY)
    assert warm.code == ray.code == 1, warm.stderr + ray.stderr
    assert WARNED not in warm.stderr and warm.stdout == ""
    malformed = f"error: {requests} line 3: not JSON (Expecting value); skipped"
    for result in (warm, ray):
        assert malformed in result.stderr.splitlines()
        assert result.stderr.splitlines()[-1].startswith("batch: 4 records (3 succeeded, 1 failed, 0 refused)")
    assert os.stat(warm_out).st_mode & 0o777 == 0o600
    by_id = {r["id"]: r for r in _records(warm_out)}
    assert by_id["rocket"]["result"]["stars"] == 7 and by_id["ghost"]["error"]["exit_code"] == 1
    assert by_id[5]["chat"] == "Paris."
    assert sorted(map(_masked, _records(warm_out))) == sorted(map(_masked, _records(ray_out)))

    github.add_repo("acme/ghost", stars=1, contributors=1)
    llm.requests.clear()
    again, modules = _imports(one_shot, "batch", str(requests), "--out", str(warm_out), "--resume")
    assert again.code == 2 and not modules & set(HEAVY), again.stderr  # the malformed line is still bad input
    routed = [
        call.body["messages"][-1]["content"] for call in llm.calls() if call.body["messages"][-1]["role"] == "user"
    ]
    assert routed == ["stars for acme/ghost"]
    assert [r["id"] for r in _records(warm_out)].count("ghost") == 1
    assert {r["id"]: r for r in _records(warm_out)}["ghost"]["result"]["stars"] == 1

    params = tmp_path / "params.jsonl"
    params.write_text('{"id": "r", "repo": "acme/rocket"}\n{"repo": "acme/engine"}\n')
    ran, modules = _imports(stack, "processes", "run", "github_repo_info", "--batch", str(params))
    assert ran.code == 0 and not modules & set(HEAVY), ran.stderr
    assert {r["id"]: r["result"]["stars"] for r in map(json.loads, ran.stdout.splitlines())} == {"r": 7, 2: 9}


class _Batch:
    """A ``POST /v1/batch`` over a plain socket and h11, whose body is sent piece by piece while its
    answer is read (what an HTTP client that streams both ways does)."""

    def __init__(self, env: dict[str, str]) -> None:
        place = urlsplit(_url(env))
        self._socket = socket.create_connection((place.hostname, place.port), timeout=120)
        self._http = h11.Connection(h11.CLIENT)
        headers = [("Host", place.netloc), *_auth(env).items(), ("Transfer-Encoding", "chunked")]
        self._write(h11.Request(method="POST", target="/v1/batch", headers=headers))
        self._pending = b""

    def _write(self, event: Any) -> None:
        self._socket.sendall(self._http.send(event) or b"")

    def send(self, line: str) -> None:
        self._write(h11.Data(data=(line + "\n").encode()))

    def end(self) -> None:
        self._write(h11.EndOfMessage())

    def status(self) -> int:
        response = self._next()
        assert isinstance(response, h11.Response)
        return int(response.status_code)

    def line(self) -> bytes:
        """The next line of the answer that is not a keep-alive (an empty line), b"" at its end."""
        while (line := self._line()) is not None and not line.strip():
            pass
        return line or b""

    def _line(self) -> bytes | None:
        while b"\n" not in self._pending:
            event = self._next()
            if not isinstance(event, h11.Data):
                return None
            self._pending += event.data
        line, _, self._pending = self._pending.partition(b"\n")
        return line

    def _next(self) -> Any:
        while (event := self._http.next_event()) is h11.NEED_DATA:
            self._http.receive_data(self._socket.recv(1 << 16))
        return event

    def close(self) -> None:
        self._socket.close()


def test_plain_http_streams_items_in_and_records_out_and_echoes_no_secret(
    stack: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    github.add_repo("acme/rocket", stars=7, contributors=3)
    llm.responder = _route_by_repo
    refused = httpx.post(f"{_url(stack)}/v1/batch", content=b"{}\n", timeout=30)
    assert refused.status_code == 401 and llm.calls() == []

    batch = _Batch(stack)
    try:
        batch.send(json.dumps({"secrets": {"OPENAI_API_KEY": API_KEY}, "concurrency": 2}))
        assert batch.status() == 200
        assert json.loads(batch.line()) == {"kind": "batch", "concurrency": 2}
        batch.send(json.dumps({"id": "a", "request": f"stars for acme/rocket with key {API_KEY}"}))
        first = batch.line()  # its record comes back while the body is still open
        batch.send("not an item")
        batch.send("capital of France?")  # text after JSON: judged as a JSON line, and refused
        batch.send(json.dumps({"id": "b", "request": "capital of France?"}))
        batch.end()
        rest = iter(batch.line, b"")
        lines = [first, *rest]
    finally:
        batch.close()
    assert API_KEY.encode() not in b"".join(lines)
    answer = [json.loads(line) for line in lines]
    assert answer[0]["kind"] == "record" and answer[0]["record"]["id"] == "a"
    assert answer[0]["record"]["result"]["stars"] == 7, answer[0]
    assert answer[0]["record"]["request"] == "stars for acme/rocket with key ***"
    assert [(a["line"], a["reason"]) for a in answer if a["kind"] == "malformed"] == [
        (2, "not JSON (Expecting value)"),
        (3, "not JSON (Expecting value)"),
    ]
    assert [a["record"]["chat"] for a in answer if a["kind"] == "record"][1:] == ["Paris."]


def test_a_client_that_goes_away_mid_batch_keeps_what_finished_and_its_runs_in_flight_end_cancelled(
    stack: dict[str, str], llm: FakeLLM, github: FakeGitHub, tmp_path: Path
) -> None:
    held = {f"acme/held-{uuid.uuid4().hex[:8]}", f"acme/held-{uuid.uuid4().hex[:8]}"}
    for repo in held:
        github.add_repo(repo, stars=1, contributors=1)
    gate = github.hold()
    llm.responder = _route_by_repo
    requests, out = tmp_path / "requests.txt", tmp_path / "results.jsonl"
    requests.write_text("capital of France?\ncapital of Spain?\n" + "".join(f"stars for {r}\n" for r in held))
    command = [
        sys.executable,
        "-X",
        "importtime",
        "-m",
        "agentctl",
        "batch",
        str(requests),
        "--out",
        str(out),
        "-c",
        "2",
    ]
    batch = subprocess.Popen(
        command,
        env=stack,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 2, "two records were never written")
        _wait_for(lambda: _asked_for(github) >= held, "the two runs never reached GitHub")
        os.killpg(batch.pid, signal.SIGINT)  # what the terminal does on Ctrl-C: the connection closes
        _, stderr = batch.communicate(timeout=90)
        api = _state(stack)["prefect_url"]
        # Checked while GitHub still holds the runs: the gateway cancelled them in their actors.
        _wait_for(
            lambda: sorted(r["state"]["type"] for r in _flow_runs_of(api, held)) == ["CANCELLED", "CANCELLED"],
            f"the runs in flight did not end Cancelled: {[r['state'] for r in _flow_runs_of(api, held)]}",
        )
    finally:
        gate.set()
        if batch.poll() is None:
            os.killpg(batch.pid, signal.SIGKILL)
    assert batch.returncode == 130, stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in stderr.splitlines() if "import time:" in line}
    assert not imported & set(HEAVY), imported & set(HEAVY)
    assert [line for line in stderr.splitlines() if "import time:" not in line][-1:] == ["interrupted"]
    assert sorted(r["id"] for r in _records(out)) == [1, 2]
    assert sorted(r["chat"] for r in _records(out)) == ["Paris.", "Paris."]
    assert _idle(stack)


def test_a_dead_gateway_is_one_warning_then_the_batch_goes_through_ray_and_up_heals_it(
    stack: dict[str, str], llm: FakeLLM, tmp_path: Path
) -> None:
    llm.responder = _route_by_repo
    requests, out = tmp_path / "requests.txt", tmp_path / "results.jsonl"
    requests.write_text("capital of France?\ncapital of Spain?\n")
    gateway = _state(stack)["gateway_pid"]
    os.kill(gateway, signal.SIGKILL)
    assert _gone(gateway)
    try:
        result, modules = _imports(stack, "batch", str(requests), "--out", str(out))
    finally:
        healed = run_cli(stack, "up", timeout=240)  # the other tests of this module need it
    assert result.code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if WARNED in line]
    assert len(warnings) == 1 and "agentctl up restarts it" in warnings[0], result.stderr
    assert "ray" in modules  # the CLI became a Ray driver on the same stack
    assert sorted(r["chat"] for r in _records(out)) == ["Paris.", "Paris."]
    assert healed.code == 0 and _state(stack)["gateway_pid"] != gateway


def test_a_gateway_that_takes_the_connection_and_never_answers_is_one_warning_then_the_batch_goes_through_ray(
    stack: dict[str, str], llm: FakeLLM, tmp_path: Path
) -> None:
    llm.responder = _route_by_repo
    requests, out = tmp_path / "requests.txt", tmp_path / "results.jsonl"
    requests.write_text("capital of France?\ncapital of Spain?\n")
    impatient = {**stack, "AGENTCTL_GATEWAY__READ_TIMEOUT": "2"}
    gateway = _state(stack)["gateway_pid"]
    os.kill(gateway, signal.SIGSTOP)  # its socket still accepts connections: no answer comes
    try:
        result = run_cli(impatient, "batch", str(requests), "--out", str(out), timeout=240)
    finally:
        os.kill(gateway, signal.SIGCONT)
    assert result.code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if WARNED in line]
    assert len(warnings) == 1 and "nothing within 2 s" in warnings[0], result.stderr
    assert sorted(r["chat"] for r in _records(out)) == ["Paris.", "Paris."]

    # Going on, the gateway reads the batch the CLI gave up on: it must not run it a second time.
    llm.requests.clear()
    again, modules = _imports(stack, "batch", str(requests))
    assert again.code == 0 and WARNED not in again.stderr and not modules & set(HEAVY), again.stderr
    assert len([c for c in llm.calls() if c.body["messages"][-1]["role"] == "user"]) == 2


def test_a_client_that_goes_away_while_its_items_wait_starts_nothing_more(
    stack: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    held = [f"acme/held-{uuid.uuid4().hex[:8]}" for _ in range(200)]  # far more than the gateway reads ahead
    for repo in held:
        github.add_repo(repo, stars=1, contributors=1)
    gate = github.hold()
    llm.responder = _route_by_repo
    api = _state(stack)["prefect_url"]
    batch = _Batch(stack)
    try:
        batch.send(json.dumps({"secrets": {"OPENAI_API_KEY": API_KEY}, "concurrency": 1}))
        assert batch.status() == 200 and json.loads(batch.line()) == {"kind": "batch", "concurrency": 1}
        for repo in held:
            batch.send(json.dumps({"request": f"stars for {repo}"}))
        assert github.arrived.wait(timeout=120)
        batch.close()  # the first item runs, the others wait in the gateway: the client goes
        # Checked while GitHub still holds the first run: only a batch that saw its client go cancels it.
        _wait_for(
            lambda: [r["state"]["type"] for r in _flow_runs_of(api, set(held))] == ["CANCELLED"],
            f"the run in flight did not end Cancelled: {[r['state'] for r in _flow_runs_of(api, set(held))]}",
        )
    finally:
        gate.set()
        batch.close()
    assert _idle(stack)
    assert len(_flow_runs_of(api, set(held))) == 1  # at most concurrency: no item started after the client went


def test_a_line_over_a_megabyte_is_a_malformed_line_and_the_batch_goes_on(stack: dict[str, str], llm: FakeLLM) -> None:
    llm.responder = _route_by_repo
    batch = _Batch(stack)
    try:
        batch.send(json.dumps({"secrets": {"OPENAI_API_KEY": API_KEY}}))
        assert batch.status() == 200 and json.loads(batch.line()) == {"kind": "batch", "concurrency": 8}
        batch.send(json.dumps({"id": "a", "request": "capital of France?"}))
        batch.send(json.dumps({"id": "big", "request": "x" * (2 << 20)}))
        batch.send(json.dumps({"id": "b", "request": "capital of France?"}))
        batch.end()
        answer = [json.loads(line) for line in iter(batch.line, b"")]
    finally:
        batch.close()
    assert [(a["line"], a["reason"]) for a in answer if a["kind"] == "malformed"] == [
        (2, "longer than 1 MB: one item a line")
    ]
    assert sorted(a["record"]["id"] for a in answer if a["kind"] == "record") == ["a", "b"]
    assert [a for a in answer if a["kind"] == "failed"] == []
