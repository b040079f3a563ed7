"""``agentctl repl`` driven as a user would: through a pseudo-terminal, and with piped input."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pexpect
import psutil
import pytest

from agentctl.events import PROCESS_TAG
from tests.conftest import AGENTCTL, base_env
from tests.servers import FakeGitHub, FakeLLM, fail, say, tool_call
from tests.test_stack import HELD, _holding

PROMPT = "agentctl> "
PROMPT_SEEN = "agentctl>"  # prompt_toolkit moves the cursor instead of printing the trailing space


@pytest.fixture
def terminal_env(tmp_path: Path, llm: FakeLLM, github: FakeGitHub) -> dict[str, str]:
    held = {"AGENTCTL_PROCESSES__PATHS": str(HELD / "held.py")}
    return {**base_env(tmp_path, llm, github), **held, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}


@pytest.fixture
def terminal(terminal_env: dict[str, str]) -> Iterator[pexpect.spawn]:
    child = pexpect.spawn(AGENTCTL, ["repl"], env=terminal_env, encoding="utf-8", timeout=90, dimensions=(50, 200))
    yield child
    child.close(force=True)


def test_interactive_session(
    tmp_path: Path,
    terminal: pexpect.spawn,
    terminal_env: dict[str, str],
    llm: FakeLLM,
    github: FakeGitHub,
    prefect_api: str,
    ray_cluster: dict[str, str],
) -> None:
    child = terminal
    seen = child.logfile_read = io.StringIO()
    child.expect(r"Prefect API (http://127\.0\.0\.1:\d+/api)")
    api = child.match.group(1)
    child.expect_exact(PROMPT_SEEN)
    session_processes = psutil.Process(child.pid).children(recursive=True)
    assert session_processes

    github.add_repo("acme/rocket", stars=42, contributors=3)
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))
    child.sendline("stars of acme/rocket")
    child.expect("acme/rocket has 3 contributors")
    child.expect("github_repo_info · flow run")
    child.expect_exact(PROMPT_SEEN)

    child.sendline("/help")
    child.expect("continue the request on the next line")
    child.expect_exact(PROMPT_SEEN)

    child.send("/sho\t")  # Tab completes the command, then the process name
    child.send(" git\t")
    child.send("\r")
    child.expect("entrypoint")
    child.expect("parameters")
    child.expect_exact(PROMPT_SEEN)

    child.sendline("/processes")
    child.expect("text_processing")
    child.expect_exact(PROMPT_SEEN)

    child.sendline("/bogus")
    child.expect("unknown command /bogus; the commands are: /help")
    child.expect_exact(PROMPT_SEEN)

    child.send("half-typed request")
    child.sendintr()  # Ctrl-C at the prompt clears the line: what follows is a command of its own
    child.sendline("/model")
    child.expect("model: gpt-4o-mini")
    child.expect_exact(PROMPT_SEEN)

    gate = github.hold()
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))
    child.sendline("stars of acme/rocket again")
    assert github.arrived.wait(timeout=60)
    child.sendintr()  # Ctrl-C during the request cancels it
    child.expect("cancelled")
    child.expect_exact(PROMPT_SEEN)
    gate.set()
    assert _latest_flow_run_state(api, "github_repo_info", "CANCELLED") == "CANCELLED"

    fifo = tmp_path / "gate"
    os.mkfifo(fifo)
    llm.script("route", tool_call("wait_for", {"gate": str(fifo)}))
    child.sendline("wait for the gate")
    with _holding(fifo, then=b"released-7f3a"):  # the sync process runs, reading the FIFO
        child.sendintr()  # its thread cannot be stopped: the prompt comes back at once all the same
        child.expect("cancelled")
        child.expect_exact(PROMPT_SEEN)
    assert _latest_flow_run_state(api, "wait_for", "COMPLETED") == "COMPLETED"  # it finished on its own

    llm.script("route", say("Paris."), say("Paris again."))
    child.send("capital of\x1b\r")  # Esc Enter: the request goes on on the next line
    child.sendline("France?")
    child.expect("Paris.")
    child.expect_exact(PROMPT_SEEN)
    child.send("\x12France")  # Ctrl-R finds the request in the history; Enter takes it, Enter sends it
    child.send("\r")
    child.send("\r")
    child.expect("Paris again.")
    child.expect_exact(PROMPT_SEEN)
    asked = [c.body["messages"][-1]["content"] for c in llm.calls("route")]
    assert asked[-2:] == ["capital of\nFrance?"] * 2

    child.sendeof()  # Ctrl-D
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    _, alive = psutil.wait_procs(session_processes, timeout=30)
    assert [p.pid for p in alive] == []
    history = (Path(terminal_env["AGENTCTL_DATA_DIR"]) / "repl_history").read_text()
    assert "stars of acme/rocket" in history and "+capital of\n+France?" in history
    assert "half-typed request" not in history
    assert "released-7f3a" not in seen.getvalue()  # the cancelled sync process's result was dropped

    # The next session, on a terminal prompt_toolkit cannot drive, reads plain lines and has the history.
    dumb = {**terminal_env, "PREFECT_API_URL": prefect_api, **ray_cluster, "TERM": "dumb"}
    child = pexpect.spawn(AGENTCTL, ["repl"], env=dumb, encoding="utf-8", timeout=90, dimensions=(50, 200))
    child.expect_exact(PROMPT)
    child.sendline("/history input")  # /history alone shows the conversation's turns
    child.expect(r"\d+  stars of acme/rocket again")
    child.expect_exact(PROMPT)
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def _latest_flow_run_state(api: str, process: str, expected: str) -> str:
    """The state of the newest flow run of ``process``: ``expected`` once it has it, else the last one
    seen in 30 s. Other tests' runs on the shared API are not looked at; a run Ctrl-C stopped before
    it started (a sync one runs on in its thread) is found once the actor has tagged it.

    The actor records the cancellation after the REPL has shown the prompt again, so it is awaited.
    """
    deadline = time.monotonic() + 30
    mine = {"tags": {"all_": [f"{PROCESS_TAG}{process}"]}}
    with httpx.Client(trust_env=False) as client:
        while True:
            runs = client.post(
                f"{api}/flow_runs/filter", json={"sort": "EXPECTED_START_TIME_DESC", "limit": 1, "flow_runs": mine}
            ).json()
            state = str(runs[0]["state"]["type"]) if runs else "not tagged yet"  # tagged once its id is known
            if state == expected or time.monotonic() > deadline:
                return state


def test_piped_input(env: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=3)
    llm.script(
        "route",
        tool_call("github_repo_info", {"repo": "acme/rocket"}),
        say("Paris."),
        tool_call("github_repo_info", {"repo": "acme/missing"}),
    )
    lines = "stars of acme/rocket\n/json on\ncapital of \\\nFrance?\n/json off\nstars of acme/missing\n"

    proc = subprocess.run(
        [AGENTCTL, "repl"],
        env={**env, "AGENTCTL_ROUTER__MAX_STEPS": "1"},  # one-shot: the failed run is the line's failure
        input=lines,
        text=True,
        capture_output=True,
        timeout=180,
    )

    assert proc.returncode == 1
    assert "acme/rocket has 42 stars" in proc.stdout
    assert '"chat": "Paris."' in proc.stdout
    assert proc.stdout.count('"request":') == 1  # one JSON document: after /json off, the failure is rich again
    assert "acme/missing not found or not accessible" in proc.stderr
    assert llm.calls("route")[1].body["messages"][-1]["content"] == "capital of \nFrance?"
    assert PROMPT not in proc.stdout


def test_piped_conversation_carries_the_earlier_turns_until_new(
    env: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=3)
    github.add_repo("octo/tiny", stars=5, contributors=1)
    llm.script(
        "route",
        tool_call("github_repo_info", {"repo": "acme/rocket"}),
        tool_call("github_repo_info", {"repo": "octo/tiny"}),
        say("Paris."),
    )
    lines = "stars of acme/rocket\nand for octo/tiny?\n/history\n/new\ncapital of France?\n/history input\n"

    proc = subprocess.run([AGENTCTL, "repl"], env=env, input=lines, text=True, capture_output=True, timeout=180)

    assert proc.returncode == 0, proc.stderr
    first, follow_up, fresh = (c.body["messages"] for c in llm.calls("route"))
    assert [m["role"] for m in follow_up] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert follow_up[1]["content"] == "stars of acme/rocket" and follow_up[5]["content"] == "and for octo/tiny?"
    assert follow_up[4]["content"] == "Done."  # the earlier turn's answer (the local LLM's, unscripted)
    assert follow_up[2]["tool_calls"][0]["function"]["arguments"] == '{"repo": "acme/rocket"}'
    assert json.loads(follow_up[3]["content"])["stars"] == 42
    assert [m["role"] for m in fresh] == ["system", "user"]  # /new: the earlier turns are not sent
    assert "octo/tiny has 5 stars" in proc.stdout
    turns = re.search(r"conversation (\w+) · 2 turns\n(.*?)\nnew conversation", proc.stdout, re.S)
    assert turns is not None, proc.stdout
    shown = [line.strip() for line in turns.group(2).splitlines()]
    assert shown[0] == "1  stars of acme/rocket" and shown[1] == "→ github_repo_info(repo='acme/rocket')"
    assert shown[2].startswith("← {") and shown[3] == "Done."  # the call's result, then the answer
    assert shown[4] == "2  and for octo/tiny?" and "octo/tiny" in shown[6]
    assert re.search(r"\d+  capital of France\?\n", proc.stdout)  # /history input: the lines typed
    assert len(list((Path(env["AGENTCTL_DATA_DIR"]) / "conversations").glob("*.json"))) == 2


def test_piped_input_all_good_exits_0(env: dict[str, str], llm: FakeLLM, github: FakeGitHub) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=3)
    llm.script("route", say("Paris."), say("Rome."), say("never asked"))
    lines = "/model gpt-x\ncapital?\n/model default\nagain?\n/run github_repo_info repo=acme/rocket\n/exit\nafter?\n"

    proc = subprocess.run([AGENTCTL, "repl"], env=env, input=lines, text=True, capture_output=True, timeout=180)

    assert proc.returncode == 0, proc.stderr
    assert "model: gpt-x" in proc.stdout and "Paris." in proc.stdout and "Rome." in proc.stdout
    # /model default goes back to the configured model; /exit leaves before the line after it.
    assert [c.body["model"] for c in llm.calls("route")] == ["gpt-x", "gpt-4o-mini"]
    assert "acme/rocket has 42 stars" in proc.stdout and "Completed" in proc.stdout  # /run, without the LLM
    assert not re.search(r"Traceback", proc.stderr)


def test_piped_exit_code_is_the_highest_failure_and_dry_run_runs_nothing(
    env: dict[str, str], llm: FakeLLM, github: FakeGitHub, prefect_api: str
) -> None:
    repo = f"acme/probe-{uuid.uuid4().hex[:8]}"  # names this test's runs in the shared Prefect API
    route = tool_call("github_repo_info", {"repo": repo})
    llm.script("route", fail(500), route, route)
    bad_quotes = "/run text_processing text=\"it's"
    lines = f"fails with 1?\n{bad_quotes}\n/dry-run on\nstars of {repo}?\n/dry-run off\nstars of {repo}?\n"

    proc = subprocess.run([AGENTCTL, "repl"], env=env, input=lines, text=True, capture_output=True, timeout=180)

    # 1, 2, 0 (the failed run went back to the model, which answered): the highest, neither first nor last
    assert proc.returncode == 2
    assert "cannot read that command" in proc.stderr and "check its quotes" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(llm.calls("route")) == 3
    # The dry run routed and stopped: no GitHub request, no Prefect run; the same request then ran (and failed).
    assert "dry run: nothing ran" in proc.stdout and f"{repo} not found or not accessible" in proc.stdout  # its panel
    assert [r.path for r in github.requests if repo in r.path] == [f"/repos/{repo}"]
    assert [r["state"]["type"] for r in _flow_runs_of(prefect_api, repo)] == ["FAILED"]


def _flow_runs_of(api: str, repo: str) -> list[dict[str, Any]]:
    """The flow runs of the Prefect API whose parameters name ``repo``."""
    with httpx.Client(trust_env=False) as client:
        runs = client.post(f"{api}/flow_runs/filter", json={"sort": "EXPECTED_START_TIME_DESC", "limit": 50}).json()
    return [r for r in runs if r["parameters"].get("repo") == repo]


def test_completion_of_commands_and_process_names(tmp_path: Path) -> None:
    from agentctl.cli.repl.lines import _completions
    from agentctl.cli.repl.loop import Repl
    from agentctl.processes.builtin import builtin_registry

    repl = Repl(None, None, builtin_registry(), None, None, str)  # type: ignore[arg-type]
    assert "/show" in _completions(repl, "/sh")[0]
    assert _completions(repl, "/show gi") == (["github_repo_info", "text_processing"], "gi")
    assert _completions(repl, "/run text_processing x")[0] == []


def test_a_line_that_is_not_utf8_is_refused_alone(env: dict[str, str], llm: FakeLLM) -> None:
    llm.script("route", say("first"), say("second"))
    lines = b"first?\n" + "caf\xe9?\n".encode("latin-1") + b"second?\n"

    proc = subprocess.run(
        [AGENTCTL, "repl"], env={**env, "LC_ALL": "C.UTF-8"}, input=lines, capture_output=True, timeout=180
    )

    stdout, stderr = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 2
    assert [s for s in stderr.splitlines() if "error" in s] == ["error: input line 2 is not utf-8 text; skipped it"]
    assert "first" in stdout and "second" in stdout  # the session carried on
    assert len(llm.calls("route")) == 2
