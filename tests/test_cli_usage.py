"""What a user sees for command-line mistakes and help: one error line and exit 2, or the help."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import AGENTCTL, base_env, run_cli
from tests.servers import FakeGitHub, FakeLLM, Reply, garbage, say
from tests.test_declare import install_example

# Nothing listens here: a dry run that tried to use Ray or Prefect would fail.
NOWHERE = {"RAY_ADDRESS": "127.0.0.1:1", "PREFECT_API_URL": "http://127.0.0.1:1/api"}


@pytest.fixture
def user(tmp_path: Path, llm: FakeLLM, github: FakeGitHub) -> dict[str, str]:
    return base_env(tmp_path, llm, github)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--foo"], "error: no such option: --foo; see agentctl --help"),
        (["ask", "--foo", "x"], "error: no such option: --foo; see agentctl ask --help"),
        (["nope"], "error: no such command 'nope'; see agentctl --help"),
        (["processes", "nope"], "error: no such command 'nope'; see agentctl processes --help"),
        (["ask"], "error: missing argument 'request'; see agentctl ask --help"),
        (["ask", ""], "error: invalid value for REQUEST: the request is empty; see agentctl ask --help"),
        (["ask", "--model"], "error: option '--model' requires an argument; see agentctl ask --help"),
    ],
)
def test_a_usage_mistake_is_one_line_and_exit_2(user: dict[str, str], args: list[str], line: str) -> None:
    result = run_cli(user, *args)

    assert (result.code, result.stderr.splitlines(), result.stdout) == (2, [line], "")


@pytest.mark.parametrize(
    ("args", "option", "command"),
    [
        (["ask", "--pool-size", "abc", "x"], "'--pool-size'", "agentctl ask"),
        (["runs", "--limit", "-1"], "'--limit' / '-n'", "agentctl runs"),
        (["eval", "cases.toml", "--concurrency", "0"], "'--concurrency'", "agentctl eval"),
    ],
)
def test_a_bad_option_value_names_the_option(user: dict[str, str], args: list[str], option: str, command: str) -> None:
    result = run_cli(user, *args)

    assert result.code == 2 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"error: invalid value for {option}: ")
    assert result.stderr.rstrip().endswith(f"; see {command} --help")


@pytest.mark.parametrize("args", [[], ["processes"]])
def test_a_bare_group_shows_its_help_and_exits_0(user: dict[str, str], args: list[str]) -> None:
    result = run_cli(user, *args)

    assert (result.code, result.stderr) == (0, "")
    assert f"Usage: agentctl {' '.join([*args, ''])}[OPTIONS] COMMAND" in result.stdout


HELP_PAGES = [["--help"], ["ask", "--help"], ["eval", "--help"], ["processes", "run", "--help"], ["up", "--help"]]


@pytest.mark.parametrize("args", HELP_PAGES)
def test_help_shows_flags_as_flags_and_rewraps_paragraphs(user: dict[str, str], args: list[str]) -> None:
    result = run_cli({**user, "COLUMNS": "80"}, *args)

    assert result.code == 0 and "--help" in result.stdout
    assert "<bool>" not in result.stdout
    for paragraph in _description(result.stdout):
        assert all(len(line) > 60 for line in paragraph[:-1]), paragraph  # no hard break mid-paragraph


def test_help_keeps_examples_on_their_own_line_and_brackets_literal(user: dict[str, str]) -> None:
    env = {**user, "COLUMNS": "80"}
    ask = run_cli(env, "ask", "--help").stdout.splitlines()
    run = run_cli(env, "processes", "run", "--help").stdout.splitlines()
    cases = run_cli(env, "eval", "--help").stdout

    assert 'agentctl ask "Give me the stars and contributors for PrefectHQ/prefect"' in [s.strip() for s in ask]
    assert "agentctl processes run github_repo_info --param repo=PrefectHQ/prefect" in [s.strip() for s in run]
    assert "A TOML file of [[case]] tables" in cases


def _description(help_text: str) -> list[list[str]]:
    """The paragraphs between the usage line and the first panel, as lists of stripped lines."""
    lines = help_text.split("Usage:", 1)[1].splitlines()[1:]
    text = [line.strip() for line in lines[: next(i for i, s in enumerate(lines) if s.startswith("╭"))]]
    return [[line for line in p.splitlines() if line] for p in "\n".join(text).split("\n\n") if p.strip()]


def test_a_config_file_that_is_not_utf8_is_named(user: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "latin1.toml"
    config.write_bytes('[llm]\nmodel = "caf\xe9"\n'.encode("latin-1"))

    result = run_cli(user, "--config", str(config), "processes", "list")

    assert result.code == 2
    assert result.stderr.splitlines() == [f"error: config file {config} is not UTF-8 text (line 2): save it as UTF-8"]


def test_config_given_a_directory_says_so(user: dict[str, str], tmp_path: Path) -> None:
    result = run_cli(user, "--config", str(tmp_path), "processes", "list")

    assert result.code == 2
    assert result.stderr.splitlines() == [
        f"error: config file {tmp_path} is a directory: give --config or AGENTCTL_CONFIG a file"
    ]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html><body>Sign in to the guest Wi-Fi</body></html>", "text/html"),
        (b"{not json", "application/json"),
        (b'{"status": "ok"}', "application/json"),
    ],
)
def test_an_llm_answering_200_with_no_completion_is_one_line(
    user: dict[str, str], llm: FakeLLM, body: bytes, content_type: str
) -> None:
    llm.script("route", garbage(body, content_type))

    result = run_cli({**user, **NOWHERE}, "ask", "--dry-run", "stars for acme/rocket")

    assert result.code == 1
    assert result.stderr.splitlines() == [
        f"error: the LLM at {llm.url}/v1 answered 200 with no chat completion: check llm.base_url / OPENAI_BASE_URL"
    ]


def test_a_process_is_described_by_its_docstrings_first_paragraph(
    user: dict[str, str], llm: FakeLLM, tmp_path: Path
) -> None:
    env = {**user, **NOWHERE, "PYTHONPATH": str(install_example(tmp_path))}
    llm.script("route", say("no process needed"))

    shown = run_cli(env, "processes", "show", "fibonacci", "--json").json()
    run_cli(env, "ask", "--dry-run", "fibonacci numbers?")

    first_paragraph = "List the first numbers of the Fibonacci sequence."
    assert shown["description"] == first_paragraph
    assert [p["description"] for p in shown["parameters"]] == [
        "How many numbers to list (1 to 90).",
        "ascending or descending.",
    ]
    offered = {t["function"]["name"]: t["function"] for t in llm.calls("route")[0].body["tools"]}
    assert offered["fibonacci"]["description"] == first_paragraph


def test_ctrl_c_while_routing_prints_one_interrupted_line(user: dict[str, str], llm: FakeLLM) -> None:
    llm.script("route", Reply(content="too late", delay=60))  # the LLM is still thinking at Ctrl-C
    asking = subprocess.Popen(
        [AGENTCTL, "ask", "--dry-run", "stars for acme/rocket"],
        env={**user, **NOWHERE},
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: llm.calls("route") != [] or asking.poll() is not None)
        os.killpg(asking.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        _, stderr = asking.communicate(timeout=60)
    finally:
        if asking.poll() is None:
            os.killpg(asking.pid, signal.SIGKILL)
    assert (asking.returncode, stderr.splitlines()) == (130, ["interrupted"])


def _wait_for(condition: Callable[[], bool]) -> None:
    """Readiness polling of a process we started, up to a minute."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)
