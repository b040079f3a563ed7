"""A request of several steps as a user reads it, in-process: synthetic event streams fed to the rich
and JSON renderers (no Ray, no Prefect, no subprocess)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from rich.console import Console

from agentctl.events import ChatReply, Event, Failed, Log, Result, Routed, RunInfo, Started, Usage
from agentctl.output.stream import JsonRenderer, RichRenderer

CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HOSTILE_ANSWER = "# Stars\n\n**acme/rocket** has 3 [bold]x[/] \x1b[31mred [docs](https://evil.example/x) &#x202e;rev"


def _run(name: str, state: str = "Completed") -> RunInfo:
    return RunInfo(id=f"{name}-id", name=name, state=state)


def _call(repo: str, step: int, call_id: str) -> Routed:
    return Routed(process="github_repo_info", process_kind="flow", arguments={"repo": repo}, step=step, call_id=call_id)


def _log(run: str, message: str, call_id: str) -> Log:
    return Log(time=0.0, level="INFO", run_name=run, message=message, call_id=call_id)


def _stars(run: str, stars: int, call_id: str) -> Result:
    return Result(process="github_repo_info", value={"stars": stars}, run=_run(run), call_id=call_id)


def steps(answer: str = "Both have stars.") -> list[Event]:
    """Two calls at once (logs interleaved, the second fails and the model is told), a second step
    of one call, then the answer."""
    return [
        _call("acme/rocket", 1, "c1"),
        _call("acme/missing", 1, "c2"),
        _log("run-rocket", "fetching acme/rocket", "c1"),
        _log("run-missing", "fetching acme/missing", "c2"),
        _log("run-rocket", "acme/rocket has 3 stars", "c1"),
        Failed(message="GitHub answered 404 for acme/missing", run=_run("run-missing", "Failed"), call_id="c2"),
        _stars("run-rocket", 3, "c1"),
        Usage(requests=1, prompt_tokens=10, completion_tokens=5, total_tokens=15, step=1),
        _call("acme/engine", 2, "c3"),
        _stars("run-engine", 7, "c3"),
        Usage(requests=1, prompt_tokens=20, completion_tokens=5, total_tokens=25, step=2),
        ChatReply(text=answer, step=3),
        Usage(requests=1, prompt_tokens=30, completion_tokens=10, total_tokens=40, step=3),
        Usage(requests=3, prompt_tokens=60, completion_tokens=20, total_tokens=80),
    ]


def rich(events: list[Event], verbose: bool = False, terminal: bool = False) -> tuple[int, str, str]:
    out = Console(file=StringIO(), width=100, force_terminal=terminal)
    err = Console(file=StringIO(), width=100)
    code = RichRenderer(out, err, str, verbose=verbose).render(events)
    return code, out.file.getvalue(), err.file.getvalue()  # type: ignore[attr-defined]


def document(events: list[Event]) -> tuple[int, dict[str, Any]]:
    out = Console(file=StringIO())
    code = JsonRenderer(out, "compare stars", str).render(events)
    return code, json.loads(out.file.getvalue())  # type: ignore[attr-defined]


def _index(lines: list[str], pattern: str) -> int:
    [found] = [n for n, line in enumerate(lines) if re.search(pattern, line)]
    return found


def test_rich_shows_each_step_its_calls_logs_and_panels_then_the_answer() -> None:
    code, out, err = rich(steps(), verbose=True)

    assert code == 0 and "error:" not in err  # a call failed on the way; the request answered
    lines = out.splitlines()
    order = [
        r"^→ github_repo_info\(repo='acme/rocket'\)",
        r"^→ github_repo_info\(repo='acme/missing'\)",
        r"run-rocket │ fetching acme/rocket$",
        r"run-missing │ fetching acme/missing$",
        r"run-rocket │ acme/rocket has 3 stars$",
        r"─ github_repo_info · flow run run-missing · Failed ─",
        r"│ GitHub answered 404 for acme/missing +│",
        r"─ github_repo_info · flow run run-rocket · Completed ─",
        r"^step 2 ─",
        r"^→ github_repo_info\(repo='acme/engine'\)",
        r"─ github_repo_info · flow run run-engine · Completed ─",
        r"─ answer ─",
        r"│ Both have stars\. +│",
    ]
    assert [_index(lines, pattern) for pattern in order] == sorted(_index(lines, p) for p in order), out
    assert not any(line.startswith("step 1") for line in lines)  # the first step needs no header
    assert [line for line in err.splitlines() if "tokens:" in line] == [
        "tokens: 80 (60 prompt + 20 completion) in 3 LLM requests"  # -v: the request's total, once
    ]


def test_the_answer_is_markdown_but_never_markup_links_or_control_characters() -> None:
    _, out, _ = rich(steps(HOSTILE_ANSWER))
    answer = out[out.index("─ answer ─") :]

    assert "Stars" in answer and "#" not in answer and "**" not in answer  # markdown rendered
    assert "acme/rocket has 3 [bold]x[/] \\x1b[31mred docs (https://evil.example/x) \\u202erev" in answer
    assert not CONTROL.search(out), CONTROL.findall(out)
    _, on_terminal, _ = rich(steps(HOSTILE_ANSWER), terminal=True)
    assert "\x1b]8;" not in on_terminal  # no hyperlink whose target the text could hide


def test_a_request_of_one_call_looks_as_it_always_did() -> None:
    run = _run("clever-fox")
    events: list[Event] = [
        Routed(process="github_repo_info", process_kind="flow", arguments={"repo": "acme/rocket"}),
        Log(time=0.0, level="INFO", run_name="clever-fox", message="acme/rocket has 3 stars"),
        Result(process="github_repo_info", value={"stars": 3}, run=run),
        Usage(requests=1),
    ]
    code, out, _ = rich(events)

    assert code == 0
    route, log, *panel = [line.rstrip() for line in out.splitlines()]
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO    clever-fox │ acme/rocket has 3 stars", log)
    assert [route, *panel] == [
        "→ github_repo_info(repo='acme/rocket')  [flow]",
        "╭─ github_repo_info · flow run clever-fox · Completed " + "─" * 45 + "╮",
        "│ stars  3" + " " * 89 + "│",
        "╰" + "─" * 98 + "╯",
    ]
    _, reply, _ = rich([ChatReply(text="**no** process fits [bold]"), Usage(requests=1)])
    assert "─ reply ─" in reply and "│ **no** process fits [bold]" in reply  # a reply with no call: as typed


def test_a_request_that_ends_in_failure_after_steps_keeps_its_exit_code() -> None:
    events = [*steps()[:8], Failed(message="the model used its 1 step; raise router.max_steps", exit_code=1)]
    code, _, err = rich(events)
    assert code == 1
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: the model used its 1 step; raise router.max_steps"
    ]
    json_code, doc = document(events)
    assert json_code == 1 and doc["error"]["message"].startswith("the model used its 1 step")
    assert doc["answer"] is None and doc["steps"][0]["calls"][1]["error"]["message"].endswith("acme/missing")


def test_json_has_the_steps_their_calls_and_usage_and_the_answer() -> None:
    code, doc = document(steps())

    assert code == 0 and doc["error"] is None and doc["answer"] == "Both have stars." and doc["chat"] is None
    first, second, answered = doc["steps"]
    rocket, missing = first["calls"]
    assert set(rocket) == {"route", "arguments", "run", "result", "error", "logs"}
    assert (rocket["arguments"], rocket["result"], rocket["error"]) == ({"repo": "acme/rocket"}, {"stars": 3}, None)
    assert [log["message"] for log in rocket["logs"]] == ["fetching acme/rocket", "acme/rocket has 3 stars"]
    assert "kind" not in rocket["logs"][0]
    assert missing["result"] is None and missing["run"]["state"] == "Failed"
    error = {"message": "GitHub answered 404 for acme/missing", "type": "AgentctlError", "exit_code": 1}
    assert missing["error"] == error
    assert [log["message"] for log in missing["logs"]] == ["fetching acme/missing"]
    assert [call["arguments"]["repo"] for call in second["calls"]] == ["acme/engine"] and answered["calls"] == []
    assert [step["usage"]["total_tokens"] for step in doc["steps"]] == [15, 25, 40]
    assert doc["usage"]["total_tokens"] == 80 and "kind" not in doc["usage"] and "step" not in doc["usage"]
    # The top-level fields are the last call's; logs are the whole request's.
    assert (doc["route"], doc["arguments"]) == ("github_repo_info", {"repo": "acme/engine"})
    assert doc["result"] == {"stars": 7}
    assert doc["run"]["name"] == "run-engine" and len(doc["logs"]) == 3


def test_ctrl_c_names_each_deployment_run_still_going_of_calls_running_at_once() -> None:
    def two_runs() -> Iterator[Event]:
        runs = (("c1", "brave-otter"), ("c2", "calm-heron"))
        for call_id, _ in runs:
            yield Routed(process="nightly", process_kind="deployment", arguments={}, call_id=call_id)
        for call_id, name in runs:
            yield Started(process="nightly", run=_run(name, "Running"), call_id=call_id)
        yield Result(process="nightly", value=1, run=_run("calm-heron"), call_id="c2")
        raise KeyboardInterrupt

    out, err = Console(file=StringIO(), width=300), Console(file=StringIO(), width=300)
    with pytest.raises(KeyboardInterrupt):
        RichRenderer(out, err, str).render(two_runs())
    assert [line for line in err.file.getvalue().splitlines() if "goes on" in line] == [  # type: ignore[attr-defined]
        "stopped following: flow run brave-otter (brave-otter-id) goes on in its worker; "
        "to cancel it: agentctl runs cancel brave-otter-id"
    ]


def test_a_one_shot_deployment_run_that_failed_is_not_said_to_go_on() -> None:
    def failed_run() -> Iterator[Event]:
        yield Routed(process="nightly", process_kind="deployment", arguments={}, call_id="c1")
        yield Started(process="nightly", run=_run("tidy-lynx", "Running"), call_id="c1")
        yield Failed(message="nightly ended Failed: boom", run=_run("tidy-lynx", "Failed"))  # one-shot: no call id

    out, err = Console(file=StringIO(), width=300), Console(file=StringIO(), width=300)
    assert RichRenderer(out, err, str).render(failed_run()) == 1
    assert "goes on" not in err.file.getvalue()  # type: ignore[attr-defined]
