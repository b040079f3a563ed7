"""In-process tests of how a followed deployment run is shown: Ctrl-C, --detach, a result not persisted.
No Ray, no Prefect, no subprocess: the renderers get the events an actor would send."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO

import pytest
from rich.console import Console

from agentctl.events import Event, Log, Result, Routed, RunInfo, Started
from agentctl.output.stream import JsonRenderer, RichRenderer

RUN = RunInfo(id="4d1c2b3a-0000-4000-8000-000000000001", name="brave-otter", state="Scheduled", url="http://ui/r/1")
CANCEL = "agentctl runs cancel 4d1c2b3a-0000-4000-8000-000000000001"


def _consoles() -> tuple[Console, Console]:
    return Console(file=StringIO(), width=300), Console(file=StringIO(), width=300)


def _text(console: Console) -> str:
    return console.file.getvalue()  # type: ignore[attr-defined,no-any-return]


def _following(*, then_interrupt: bool) -> Iterator[Event]:
    yield Routed(process="nightly", process_kind="deployment", arguments={})
    yield Started(process="nightly", run=RUN, work_pool="etl")
    yield Log(time=1.0, level="INFO", run_name="brave-otter", message="loading")
    if then_interrupt:
        raise KeyboardInterrupt


def test_ctrl_c_while_following_says_the_run_goes_on_and_how_to_cancel_it() -> None:
    out, err = _consoles()
    with pytest.raises(KeyboardInterrupt):
        RichRenderer(out, err, str).render(_following(then_interrupt=True))
    assert "loading" in _text(out)
    assert f"stopped following: flow run brave-otter ({RUN.id}) goes on in its worker; to cancel it: {CANCEL}" in _text(
        err
    )


class _InterruptedWhilePrinting(StringIO):
    """A terminal where Ctrl-C lands while a log line is being printed, not while events are awaited."""

    def write(self, text: str) -> int:
        if "loading" in text:
            raise KeyboardInterrupt
        return super().write(text)


def test_ctrl_c_landing_while_a_line_is_printed_says_the_same() -> None:
    out, err = Console(file=_InterruptedWhilePrinting(), width=300), Console(file=StringIO(), width=300)
    with pytest.raises(KeyboardInterrupt):
        RichRenderer(out, err, str).render(_following(then_interrupt=False))
    assert f"stopped following: flow run brave-otter ({RUN.id})" in _text(err) and CANCEL in _text(err)


def test_ctrl_c_before_any_deployment_run_exists_says_nothing_of_cancelling() -> None:
    def routed_only() -> Iterator[Event]:
        yield Routed(process="count", process_kind="flow", arguments={})
        raise KeyboardInterrupt

    out, err = _consoles()
    with pytest.raises(KeyboardInterrupt):
        RichRenderer(out, err, str).render(routed_only())
    assert "runs cancel" not in _text(err)


def test_detached_shows_the_run_id_and_link_and_exits_0() -> None:
    out, err = _consoles()
    assert RichRenderer(out, err, str).render(_following(then_interrupt=False)) == 0
    assert f"flow run brave-otter ({RUN.id}) on pool etl · http://ui/r/1" in _text(out)
    assert f"detached: flow run brave-otter ({RUN.id}) goes on in its worker; to cancel it: {CANCEL}" in _text(err)


def test_detached_json_is_the_record_with_its_run() -> None:
    out, err = _consoles()
    assert JsonRenderer(out, "nightly", str, err).render(_following(then_interrupt=False)) == 0
    document = json.loads(_text(out))
    assert document["run"] == RUN.model_dump() and document["error"] is None and "note" not in document
    assert CANCEL in _text(err)


def test_a_result_not_persisted_shows_the_note_in_its_panel_and_json() -> None:
    note = "result not persisted (the flow's persist_result is off); last log lines:\n  [bold]done[/bold]"
    result = Result(process="nightly", value=None, run=RUN.model_copy(update={"state": "Completed"}), note=note)
    out, err = _consoles()
    RichRenderer(out, err, str).render([result])
    assert "result not persisted" in _text(out) and "[bold]done[/bold]" in _text(out)  # shown, not applied
    out, err = _consoles()
    JsonRenderer(out, "nightly", str, err).render([result])
    assert json.loads(_text(out))["note"] == note
