"""What a session starts and stops: its own Prefect API, a loopback-only Ray cluster, Ctrl-C."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
from pathlib import Path

import psutil

from tests.conftest import AGENTCTL, base_env, run_cli
from tests.servers import FakeGitHub, FakeLLM, tool_call


def test_session_starts_its_own_prefect_api(tmp_path: Path, llm: FakeLLM, github: FakeGitHub) -> None:
    env = {**base_env(tmp_path, llm, github), "AGENTCTL_POOL__SIZE": "2"}  # no PREFECT_API_URL: one is started
    github.add_repo("acme/rocket", stars=3, contributors=1)
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))

    result = run_cli(env, "ask", "--json", "stars for acme/rocket")

    assert result.code == 0, result.stderr
    assert result.json()["run"]["state"] == "Completed"
    assert (tmp_path / "data" / "prefect" / "prefect.db").is_file()
    _gone(_alive_with(str(tmp_path / "data")))  # the Prefect server and Ray daemons take their time to exit


def test_ctrl_c_exits_130_and_leaves_nothing_behind(tmp_path: Path, llm: FakeLLM, github: FakeGitHub) -> None:
    env = base_env(tmp_path, llm, github)
    github.add_repo("acme/rocket", stars=3, contributors=1)
    gate = github.hold()
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))
    proc = subprocess.Popen(
        [AGENTCTL, "ask", "stars for acme/rocket"],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert github.arrived.wait(timeout=120), "the run never reached GitHub"
        tree = psutil.Process(proc.pid).children(recursive=True)
        assert tree, "the session started no processes"
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        _, stderr = proc.communicate(timeout=60)
    finally:
        gate.set()
        if proc.poll() is None:  # a failed test must not leave its session to disturb the next ones
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert stderr.splitlines()[-1:] == ["interrupted"] and stderr.count("interrupted") == 1, stderr
    _, alive = psutil.wait_procs(tree, timeout=30)
    assert [p.pid for p in alive] == []


def test_everything_listens_on_loopback_only(tmp_path: Path, llm: FakeLLM, github: FakeGitHub) -> None:
    env = base_env(tmp_path, llm, github)
    github.add_repo("acme/rocket", stars=3, contributors=1)
    gate = github.hold()
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))
    proc = subprocess.Popen(
        [AGENTCTL, "ask", "stars for acme/rocket"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert github.arrived.wait(timeout=120)
        pids = {proc.pid, *(p.pid for p in psutil.Process(proc.pid).children(recursive=True))}
        listening = [
            (c.laddr, psutil.Process(c.pid).name())
            for c in psutil.net_connections("inet")
            if c.status == "LISTEN" and c.pid in pids
        ]
    finally:
        gate.set()
        proc.wait(timeout=60)
    assert listening, "found no listening sockets of the session"
    assert [(addr.ip, name) for addr, name in listening if not _loopback(addr.ip)] == []
    assert proc.returncode == 0


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def _gone(pids: list[int]) -> None:
    """Every one of ``pids`` exits within 30 s (signals are delivered, exits take their time)."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=30)
    assert [p.pid for p in alive] == []


def _alive_with(marker: str) -> list[int]:
    found = []
    for p in psutil.process_iter(["pid", "cmdline", "environ"]):
        try:
            text = " ".join(p.info["cmdline"] or []) + " ".join((p.info["environ"] or {}).values())
        except (psutil.Error, TypeError):
            continue
        if marker in text:
            found.append(p.info["pid"])
    return found
