"""What a one-call session starts and stops on a fresh machine: its own Prefect API and loopback-only
Ray cluster, its files its user's alone, the local history after it; and Ctrl-C."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import stat
import subprocess
import tempfile
from pathlib import Path

import psutil

from tests.conftest import AGENTCTL, base_env, run_cli
from tests.servers import FakeGitHub, FakeLLM, tool_call
from tests.test_private_files import open_to_others


def test_a_first_ask_runs_on_its_own_loopback_cluster_and_api_and_leaves_nothing_behind(
    tmp_path: Path, llm: FakeLLM, github: FakeGitHub
) -> None:
    # No PREFECT_API_URL, no RAY_ADDRESS: the call starts both, on a HOME without ~/.ray.
    env = {**base_env(tmp_path, llm, github), "AGENTCTL_POOL__SIZE": "2"}
    data = Path(env["AGENTCTL_DATA_DIR"])
    (data / "prefect").mkdir(mode=0o755, parents=True)  # left by an older agentctl, or made by hand
    data.chmod(0o755)
    github.add_repo("acme/rocket", stars=3, contributors=1)
    gate = github.hold()
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))
    proc = subprocess.Popen(
        [AGENTCTL, "ask", "--json", "stars for acme/rocket"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert github.arrived.wait(timeout=120), "the run never reached GitHub"
        tree = psutil.Process(proc.pid).children(recursive=True)
        listening = _listening({proc.pid, *(p.pid for p in tree)})
        temp_dirs = _ray_temp_dirs(tree)
    finally:
        gate.set()
        stdout, stderr = proc.communicate(timeout=120)

    assert proc.returncode == 0, stderr
    doc = json.loads(stdout)
    run, request = doc["run"], doc["request_run"]
    assert run["state"] == "Completed"
    assert listening, "found no listening sockets of the session"
    assert [(ip, name) for ip, name in listening if not _loopback(ip)] == []
    _gone([p.pid for p in tree])  # the Prefect server and Ray daemons take their time to exit
    assert len(temp_dirs) == 1, temp_dirs
    private = Path(temp_dirs.pop()).parent
    assert private.parent == Path(tempfile.gettempdir()) and private.name.startswith("agentctl-ray-")
    assert not private.exists(), "the session leaves its Ray temp dir behind"
    assert (data / "prefect" / "prefect.db").is_file()
    assert open_to_others(data) == [] and _mode(Path(env["HOME"]) / ".ray" / "auth_token") == 0o600

    # Without a stack or a configured API, runs reads the local history through a temporary server.
    listed = run_cli(env, "runs", "--json")
    assert listed.code == 0, listed.stderr
    assert [(r["id"], r["kind"], r["state"]) for r in listed.json()] == [(request["id"], "request", "Completed")]
    _gone(_alive_with(str(data)))


def _listening(pids: set[int]) -> list[tuple[str, str]]:
    """The addresses ``pids`` listen on, with their programs' names."""
    return [
        (c.laddr.ip, psutil.Process(c.pid).name())
        for c in psutil.net_connections("inet")
        if c.status == "LISTEN" and c.pid in pids
    ]


def _ray_temp_dirs(tree: list[psutil.Process]) -> set[str]:
    """The temp dirs the Ray daemons in ``tree`` name on their command lines; each in a 0700 one."""
    found = set()
    for child in tree:
        for match in re.finditer(r"(/\S+?)/session_\d{4}-", " ".join(child.cmdline())):
            found.add(match.group(1))
    for path in found:
        assert _mode(Path(path).parent) == 0o700, path
    return found


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


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
