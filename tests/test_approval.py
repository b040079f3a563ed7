"""Approval before side effects, in process: the one decision, the actor's gate, asking and refusing."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from agentctl import process
from agentctl.calls.approval import Answer, Approval, ApprovalRequired, NotApproved, approved_events
from agentctl.cli.approve import TerminalAsk
from agentctl.config import Settings
from agentctl.events import (
    ApprovalNeeded,
    ChatReply,
    Event,
    Log,
    Paused,
    PendingCall,
    Result,
    Routed,
    RunInfo,
    Started,
    Usage,
)
from agentctl.execution.actor import RouterActor, _Gate
from agentctl.output.stream import JsonRenderer, RichRenderer
from agentctl.processes.approval import EVERYTHING, NOTHING, Approved, needs_approval
from agentctl.processes.python_source import to_process
from agentctl.processes.registry import Process
from tests.actors import bare_actor
from tests.test_sources import _collect, echo_process


def settings(confirm: list[str] | None = None, auto_approve: list[str] | None = None) -> Settings:
    return Settings.model_validate({"processes": {"confirm": confirm or [], "auto_approve": auto_approve or []}})


def confirmed(name: str = "deploy_site") -> Process:
    def deploy_site(target: str) -> str:
        return target

    return to_process(process(name=name, confirm=True)(deploy_site))


def test_process_confirm_is_declared_and_off_by_default() -> None:
    def plain(x: int) -> int:
        return x

    assert confirmed().confirm is True
    assert to_process(process(plain)).confirm is False


@pytest.mark.parametrize(
    ("declared", "confirm", "auto_approve", "expected"),
    [
        (False, [], [], False),
        (True, [], [], True),
        (True, [], ["deploy_*"], False),  # auto_approve turns the declared flag off
        (False, ["deploy_site"], [], True),  # confirm turns it on
        (False, ["*"], [], True),
        (True, ["deploy_*"], ["deploy_site"], True),  # in both: asked, the safe side
        (False, ["deploy_site"], ["*"], True),
        (True, ["other"], ["other_*"], True),  # patterns that match another name change nothing
    ],
)
def test_needs_approval(declared: bool, confirm: list[str], auto_approve: list[str], expected: bool) -> None:
    chosen = replace(confirmed(), confirm=declared)
    assert needs_approval(chosen, settings(confirm, auto_approve)) is expected


def test_the_lists_come_comma_separated_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentctl.config import load

    monkeypatch.setenv("AGENTCTL_PROCESSES__CONFIRM", "deploy_*, text_processing")
    monkeypatch.setenv("AGENTCTL_PROCESSES__AUTO_APPROVE", "reports_daily")
    loaded = load(None, {})
    assert loaded.processes.confirm == ["deploy_*", "text_processing"]
    assert loaded.processes.auto_approve == ["reports_daily"]


def _execute(chosen: Process, approved: Approved, config: Settings | None = None) -> list[Event]:
    actor = bare_actor()  # the actor's run path, without Ray or Prefect
    gate = _Gate(config or Settings(), approved)
    return asyncio.run(_collect(RouterActor._execute(actor, chosen, {"word": "hi"}, None, None, gate)))  # type: ignore[arg-type]


def test_the_actor_stops_before_running_what_needs_approval() -> None:
    chosen = _echo(confirm=True)
    assert [e.kind for e in _execute(chosen, NOTHING)] == ["routed", "approval"]
    assert [e.kind for e in _execute(chosen, Approved(names=frozenset({"other"})))] == ["routed", "approval"]
    assert [e.kind for e in _execute(chosen, Approved(names=frozenset({"echo"})))] == ["routed", "log", "result"]
    assert [e.kind for e in _execute(chosen, EVERYTHING)] == ["routed", "log", "result"]
    assert [e.kind for e in _execute(_echo(confirm=False), NOTHING, settings(confirm=["ec*"]))][-1] == "approval"


def _echo(confirm: bool) -> Process:
    return replace(echo_process(), confirm=confirm)


NEEDED = [
    Routed(process="echo", process_kind="task", arguments={"word": "hi"}),
    ApprovalNeeded(process="echo", arguments={"word": "hi"}),
    Usage(),
]


class Runs:
    """A stand-in for the session's run by name: what it was asked to run, and its events."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], Approved]] = []

    def __call__(self, name: str, arguments: dict[str, Any], approved: Approved) -> Iterator[Event]:
        self.calls.append((name, arguments, approved))
        yield Routed(process=name, process_kind="task", arguments=arguments)
        yield Result(process=name, value="done", run=RunInfo())


class ApprovingPool:
    """A stand-in for the session's pool: each request stops for approval; a run by name starts a deployment run."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, dict[str, Any], Approved, bool]] = []

    def ask(self, request: str, model: str | None, **options: Any) -> Iterator[Event]:
        return iter(NEEDED)

    def run(self, name: str, arguments: dict[str, Any], **options: Any) -> Iterator[Event]:
        if not options["approved"].covers(name):
            return iter(NEEDED)
        self.runs.append((name, arguments, options["approved"], options["detach"]))
        return iter([Started(process=name, run=RunInfo(id="r1"))])


@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("how", ["ask", "run"])
def test_the_approved_run_detaches_as_its_request_does(how: str, detach: bool) -> None:
    from agentctl.calls.session import Session

    session, pool = Session(Settings()), ApprovingPool()
    session._pool = pool  # type: ignore[assignment]
    approval = Approval(ask=lambda needed: Answer.YES)
    if how == "ask":
        events = session.ask("mark it", None, approval, detach=detach)
    else:
        events = session.run("echo", {"word": "hi"}, approval, detach=detach)
    assert [e.kind for e in events] == ["routed", "usage", "started"]
    assert pool.runs == [("echo", {"word": "hi"}, Approved(names=frozenset({"echo"})), detach)]


def test_nobody_to_ask_refuses_with_exit_2_naming_yes() -> None:
    runs = Runs()
    events = approved_events(NEEDED, Approval(), runs)
    with pytest.raises(ApprovalRequired) as refused:
        list(events)
    assert refused.value.exit_code == 2
    assert "--yes" in str(refused.value) and "processes.auto_approve" in str(refused.value)
    assert runs.calls == []


def test_no_runs_nothing_and_exits_1() -> None:
    runs = Runs()
    with pytest.raises(NotApproved) as declined:
        list(approved_events(NEEDED, Approval(ask=lambda needed: Answer.NO), runs))
    assert declined.value.exit_code == 1 and str(declined.value) == "not approved: echo did not run"
    assert runs.calls == []


def test_yes_runs_exactly_the_validated_arguments_once_and_always_remembers() -> None:
    runs, asked = Runs(), []
    approval = Approval(ask=lambda needed: asked.append(needed) or Answer.YES)
    kinds = [e.kind for e in approved_events(NEEDED, approval, runs)]
    assert kinds == ["routed", "usage", "result"]  # the route is not shown twice
    assert runs.calls == [("echo", {"word": "hi"}, Approved(names=frozenset({"echo"})))]
    assert approval.approved == NOTHING and len(asked) == 1
    always = Approval(ask=lambda needed: Answer.ALWAYS)
    list(approved_events(NEEDED, always, Runs()))
    assert always.approved.covers("echo") and not always.approved.covers("other")


def test_the_question_shows_arguments_literally_with_the_spinner_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    err, paused = Console(file=io.StringIO(), force_terminal=True, width=200), []

    @contextlib.contextmanager
    def pause() -> Iterator[None]:
        paused.append("stopped")
        yield
        paused.append("started")

    ask = TerminalAsk(err, pause, lambda text: text.replace("sk-1", "***"), always=True)
    needed = ApprovalNeeded(process="echo", arguments={"word": "[bold]hi[/bold] sk-1"})
    replies = iter(["always\n", "Y\n", "\n", "maybe\n"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(replies).strip())
    assert [ask(needed) for _ in range(4)] == [Answer.ALWAYS, Answer.YES, Answer.NO, Answer.NO]
    shown = err.file.getvalue()  # type: ignore[attr-defined]
    assert "approval needed: echo runs with" in shown and json.dumps("[bold]hi[/bold] ***") in shown
    assert "Run it? [y/N/always]" in shown and paused[:2] == ["stopped", "started"]
    monkeypatch.setattr("builtins.input", lambda prompt="": (_ for _ in ()).throw(EOFError))
    assert TerminalAsk(err, pause, str)(needed) is Answer.NO  # end of input: no


def test_a_dry_run_says_whether_approval_is_needed_and_only_a_dry_run() -> None:
    from tests.test_views import policy

    routed = Routed(process="echo", process_kind="task", arguments={}, policy=policy(), needs_approval=True)
    out = Console(file=io.StringIO())
    JsonRenderer(out, "req", str).render([routed])
    assert json.loads(out.file.getvalue())["needs_approval"] is True  # type: ignore[attr-defined]
    plain = Console(file=io.StringIO())
    JsonRenderer(plain, "req", str).render([Routed(process="echo", process_kind="task", arguments={})])
    assert "needs_approval" not in json.loads(plain.file.getvalue())  # type: ignore[attr-defined]
    text = Console(file=io.StringIO(), width=200)
    RichRenderer(text, Console(file=io.StringIO()), str).render(
        [routed, Log(time=0, level="INFO", run_name="r", message="m")]
    )
    assert "approval: asked before it runs (--yes approves)" in text.file.getvalue()  # type: ignore[attr-defined]


def test_processes_list_and_show_say_which_ask_first() -> None:
    from agentctl.output.emit import emit
    from agentctl.output.views import process_output, processes_output

    out = Console(file=io.StringIO(), width=200)
    config = settings(confirm=["echo"])
    emit(processes_output([confirmed(), echo_process(), _echo(confirm=False)], settings()), json=False, out=out)
    rows = [line for line in out.file.getvalue().splitlines() if "deploy_site" in line or "echo" in line]  # type: ignore[attr-defined]
    assert ["asks first" in row for row in rows] == [True, False, False]
    emit(process_output(echo_process(), config), json=False, out=out)
    assert "approval     asked before each run (--yes approves)" in out.file.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "call"),
    [
        (["ask", "mark it"], "ask_once"),
        (["processes", "run", "github_repo_info", "-p", "repo=acme/rocket"], "run_once"),
    ],
)
def test_yes_approves_everything_of_the_call_and_a_pipe_has_nobody_to_ask(
    monkeypatch: pytest.MonkeyPatch, args: list[str], call: str
) -> None:
    from agentctl.cli.app import _run

    given: list[Approval] = []

    def recorded(*positional: Any, **named: Any) -> Iterator[Event]:
        given.append(positional[-1])
        yield Usage()

    monkeypatch.setattr(f"agentctl.calls.gateway.warm.{call}", recorded)  # what the commands call
    monkeypatch.setattr("sys.stdin", io.StringIO())  # not a terminal
    assert _run([*args, "--yes"]) == 0 and _run([*args, "-y"]) == 0 and _run(args) == 0
    assert [(a.approved, a.ask) for a in given] == [(EVERYTHING, None), (EVERYTHING, None), (NOTHING, None)]


class ActorLikeSession:
    """A session whose requests all route to ``echo``, which asks first, as the actor would decide."""

    notice, on_stack, prefect_url = None, False, ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.runs = Runs()

    def open(self) -> None: ...
    def warm(self) -> None: ...
    def close(self) -> None: ...

    def ask(self, text: str, model: str | None, approval: Approval, **_: Any) -> Iterator[Event]:
        covered = approval.approved.covers("echo")
        events = [NEEDED[0], Result(process="echo", value="done", run=RunInfo())] if covered else NEEDED
        return approved_events(events, approval, self.runs)


@pytest.mark.parametrize(("flags", "code"), [([], 2), (["--yes"], 0)])
def test_a_piped_repl_refuses_what_needs_approval_unless_yes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flags: list[str], code: int
) -> None:
    from agentctl.cli.app import _run

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setattr("agentctl.calls.session.Session", ActorLikeSession)
    monkeypatch.setattr("sys.stdin", io.StringIO("mark it\n"))
    assert _run(["repl", *flags]) == code
    refusals = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert refusals == ([] if flags else [f"error: {REFUSAL}"])


REFUSAL = (
    "echo needs approval before it runs and there is no terminal to ask (stdin is not one, or --json): "
    "pass --yes, or list it in processes.auto_approve"
)


def test_a_terminal_can_be_asked_unless_the_output_is_json(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentctl.cli.approve import can_ask

    monkeypatch.setattr("sys.stdin", SimpleNamespace(isatty=lambda: True))
    assert can_ask(json_output=False) and not can_ask(json_output=True)
    monkeypatch.setattr("sys.stdin", io.StringIO())
    assert not can_ask(json_output=False)


PAUSED = [
    Routed(process="echo", process_kind="task", arguments={"word": "hi"}, call_id="c1"),
    ApprovalNeeded(process="echo", arguments={"word": "hi"}, call_id="c1"),
    Paused(
        messages=[],
        turn_from=1,
        step=1,
        calls=[PendingCall(call_id="c1", process="echo", arguments={"word": "hi"})],
        usage={},
    ),
    Usage(),
]


class Resumes:
    """A stand-in for the session's resume: the pauses it was sent back, and the rest of the request."""

    def __init__(self) -> None:
        self.sent: list[tuple[Paused, Approved]] = []

    def __call__(self, paused: Paused, approved: Approved) -> Iterator[Event]:
        self.sent.append((paused, approved))
        yield ChatReply(text="answered", step=2)


@pytest.mark.parametrize(("answer", "ids"), [(Answer.YES, ["c1"]), (Answer.ALWAYS, ["c1"]), (Answer.NO, [])])
def test_a_paused_request_goes_on_with_the_answers_and_a_refusal_ends_it_not_approved(
    answer: Answer, ids: list[str]
) -> None:
    resumes, runs = Resumes(), Runs()
    approval = Approval(ask=lambda needed: answer)
    seen: list[str] = []
    events = approved_events(PAUSED, approval, runs, resumes)
    if answer is Answer.NO:
        with pytest.raises(NotApproved, match="^not approved: echo did not run$"):
            seen.extend(e.kind for e in events)
    else:
        seen.extend(e.kind for e in events)
    assert seen == ["routed", "usage", "chat"]  # the model's answer comes before the refusal's error
    [(paused, approved)] = resumes.sent
    assert paused.approved == ids and paused.calls == PAUSED[2].calls and runs.calls == []  # type: ignore[union-attr]
    assert approved.covers("echo") is (answer is Answer.ALWAYS)
