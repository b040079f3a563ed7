"""What reaches the terminal: foreign text as typed, unwrapped pipes, a spinner that keeps to itself, whole names.

Hostile text comes from where it would in use: the local GitHub and LLM servers, the process's
result and logs, Prefect's state messages. Rich markup in it must be shown as typed, never
interpreted; escape sequences and other control characters must be shown escaped, never sent raw.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pexpect

from tests.conftest import AGENTCTL, run_cli
from tests.servers import FakeGitHub, FakeLLM, fail, say, tool_call

HOSTILE = "[bold red]PWNED[/bold red] [link=https://evil]x[/link] [/red] \x1b[31mred\r \x1b]8;;http://evil\x07 \x07!"
# What a user must see: the same characters, the control ones as escapes.
SHOWN = r"[bold red]PWNED[/bold red] [link=https://evil]x[/link] [/red] \x1b[31mred\r \x1b]8;;http://evil\x07 \x07!"
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def _piped(env: dict[str, str]) -> dict[str, str]:
    """The environment of a pipe with no width given: rich would assume 80 columns."""
    return {k: v for k, v in env.items() if k != "COLUMNS"}


def _no_control(*texts: str) -> None:
    for text in texts:
        assert not CONTROL.search(text), CONTROL.findall(text)


def test_repository_name_with_markup_and_escapes_is_shown_as_typed(
    env: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    github.add_repo("acme/rocket", stars=42, contributors=1)
    github.fields["acme/rocket"] = {"full_name": HOSTILE, "description": HOSTILE}
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))

    result = run_cli({**env, "COLUMNS": "400"}, "ask", "stars of acme/rocket")

    assert result.code == 0, result.stderr
    assert f"{SHOWN} has 42 stars" in result.stdout  # the log line
    assert re.search(rf"│ full_name +{re.escape(SHOWN)}", result.stdout)  # the result panel, not lost
    _no_control(result.stdout, result.stderr)


def test_failure_with_markup_is_one_literal_line_and_runs_show_it(
    env: dict[str, str], llm: FakeLLM, github: FakeGitHub
) -> None:
    github.add_repo("acme/rocket", stars=1, contributors=1)
    github.fault_message = HOSTILE
    github.fail_next(422)
    llm.script("route", tool_call("github_repo_info", {"repo": "acme/rocket"}))

    # One-shot routing: the failure is the request's own (in steps it would go back to the model).
    result = run_cli({**_piped(env), "AGENTCTL_ROUTER__MAX_STEPS": "1"}, "ask", "stars of acme/rocket")

    assert result.code == 1
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error.endswith(f": GitHub answered 422 for acme/rocket: {SHOWN}")  # whole, though longer than 80
    _no_control(result.stdout, result.stderr)
    run_id = re.search(r"run: \S+/runs/flow-run/(\S+)", result.stderr).group(1)  # type: ignore[union-attr]

    shown = run_cli({**env, "COLUMNS": "400"}, "runs", "show", run_id)
    assert shown.code == 0, shown.stderr
    assert SHOWN in shown.stdout  # the state message, as typed
    _no_control(shown.stdout, shown.stderr)
    recorded = run_cli(env, "runs", "show", run_id, "--json").json()
    assert any(HOSTILE in (state["message"] or "") for state in recorded["states"])  # the exact data

    listed = run_cli({**env, "COLUMNS": "80"}, "runs", "--process", "github_repo_info", "--limit", "200")
    assert listed.code == 0, listed.stderr
    assert run_id in listed.stdout and "github_repo_info" in listed.stdout


def test_chat_reply_with_markup_and_escapes_is_shown_as_typed(env: dict[str, str], llm: FakeLLM) -> None:
    llm.script("route", say(HOSTILE))

    result = run_cli(env, "ask", "--dry-run", "hello")

    assert result.code == 0, result.stderr
    assert SHOWN in result.stdout
    _no_control(result.stdout, result.stderr)


def test_reason_and_request_are_shown_as_typed(env: dict[str, str], llm: FakeLLM) -> None:
    reply = tool_call("github_repo_info", {"repo": "acme/rocket"})
    reply.content = HOSTILE
    llm.script("route", reply)

    result = run_cli(env, "ask", "--dry-run", "--json", HOSTILE)
    doc = result.json()
    assert doc["reason"] == HOSTILE and doc["request"] == HOSTILE  # JSON keeps the exact data
    llm.script("route", reply)

    result = run_cli(env, "ask", "--dry-run", HOSTILE)

    assert result.code == 0, result.stderr
    assert f"reason: {SHOWN}" in result.stdout
    _no_control(result.stdout, result.stderr)


def test_cli_error_line_shows_escapes(env: dict[str, str], llm: FakeLLM) -> None:
    llm.script("route", fail(400, HOSTILE))

    result = run_cli(_piped(env), "ask", "--dry-run", "hello")

    assert result.code != 0
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and SHOWN in line
    _no_control(result.stderr)


def test_piped_schema_is_valid_json(env: dict[str, str]) -> None:
    result = run_cli(_piped(env), "processes", "show", "github_repo_info")

    assert result.code == 0, result.stderr
    schema = json.loads(result.stdout[result.stdout.index("\n{") :])
    assert schema["properties"]["repo"]["description"].endswith("for example PrefectHQ/prefect.")


def test_control_characters_of_every_kind_are_escaped() -> None:
    from agentctl.output.untrusted import literal, printable

    assert printable("a\x9b31mb\u202ec\x7fd\x00") == r"a\x9b31mb\u202ec\x7fd\x00"  # C1 CSI, bidi, DEL, NUL
    assert printable("one\n\ttwo") == "one\n\ttwo" and printable("one\n\ttwo", lines=False) == r"one\n\ttwo"
    assert literal("[/red]").plain == "[/red]"


def _screen(raw: str) -> list[str]:
    """The lines a terminal shows for ``raw``: carriage return, erase-line, other escapes dropped."""
    lines: list[str] = []
    line: list[str] = []
    column = 0
    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\n|.", raw, re.S):
        if token == "\n":
            lines.append("".join(line).rstrip())
            line, column = [], 0
        elif token == "\r":
            column = 0
        elif token == "\x1b[2K":
            line = [" "] * len(line)
        elif not token.startswith("\x1b"):
            line[column : column + 1] = [token]
            column += 1
    return [*lines, "".join(line).rstrip()]


def test_spinner_never_shares_a_line_with_output(env: dict[str, str], llm: FakeLLM) -> None:
    # The LLM takes a second, long enough for the spinner to be drawn before the route line comes.
    reply = tool_call("github_repo_info", {"repo": "acme/rocket"})
    reply.delay = 1.0
    llm.script("route", reply)
    term = {**env, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "40"}

    child = pexpect.spawn(
        AGENTCTL,
        ["ask", "--dry-run", "stars of acme/rocket"],
        env=term,
        encoding="utf-8",
        dimensions=(40, 100),
        timeout=120,
    )
    child.expect(pexpect.EOF)
    child.close()

    assert child.exitstatus == 0, child.before
    assert any(ch in child.before for ch in SPINNER), "the spinner was never drawn"
    screen = _screen(child.before)
    route = [line for line in screen if "github_repo_info(" in line]
    assert route and all(line.startswith("→ github_repo_info(") for line in route), screen
    assert not [line for line in screen if any(ch in line for ch in SPINNER) and "→" in line], screen


EVAL_CASES = """
[[case]]
prompt = "stars of acme/rocket [/red] \\u001b[31m"
process = "github_repo_info"
"""


def test_eval_keeps_model_names_whole_at_80_columns(env: dict[str, str], llm: FakeLLM, tmp_path: Path) -> None:
    cases = tmp_path / "cases.toml"
    cases.write_text(EVAL_CASES)
    llm.responder = lambda body: say("[/red] I would rather chat \x1b[31m")

    result = run_cli(
        {**env, "COLUMNS": "80", "AGENTCTL_POOL__SIZE": "2"}, "eval", str(cases), "--models", "gpt-4o-mini,gpt-4o"
    )

    assert result.code == 0, result.stderr
    rows = [line.strip("│ ").split()[0] for line in result.stdout.splitlines() if line.startswith("│ gpt")]
    assert {"gpt-4o-mini", "gpt-4o"} <= set(rows), result.stdout
    assert "[/red]" in result.stdout
    _no_control(result.stdout, result.stderr)


def test_repl_shows_requests_and_replies_as_typed(env: dict[str, str], llm: FakeLLM) -> None:
    llm.script("route", say(HOSTILE))
    lines = "/dry-run on\n" + HOSTILE.replace("\r", "") + "\n/history input\n"

    proc = subprocess.run([AGENTCTL, "repl"], env=env, input=lines, text=True, capture_output=True, timeout=180)

    assert proc.returncode == 0, proc.stderr
    assert SHOWN in proc.stdout  # the reply
    assert "2  " + SHOWN.replace(r"\r", "") in proc.stdout  # the request, in /history input
    _no_control(proc.stdout, proc.stderr)
